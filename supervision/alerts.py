"""Per-ticket wait alerts: a resident waiting past their line's threshold alerts the line's
department heads, in the app and by SMS, once per ticket across every node and restart.

Every node's sweep looks for overdue tickets and tries to insert their alert; the unique
ticket_id lets exactly one insert win, and only the winner queues the notice and the SMS, in
the same transaction as its row. An alert resolves itself once the ticket leaves the queue.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from sqlalchemy import update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core import audit
from core.access import Principal, require_line
from core.errors import Conflict, NotFound
from core.events import Audience, Outbox
from core.models import Role, Staff, StaffLine, StaffSite, WindowLine
from core.settings import Settings
from core.sms import SmsGateway
from signaling.models import Ticket, TicketStatus
from supervision.events import AlertChanged, AlertRaised
from supervision.models import OPEN_ALERT, AlertRead, AlertStatus, LineThreshold, WaitAlert

# Overdue tickets raised per sweep round; a backlog is worked off over the next rounds.
RAISE_BATCH = 200


@dataclass
class RaiseReport:
    raised: list[int] = field(default_factory=list)  # alert ids this node raised
    resolved: int = 0


def _nf(alert_id: int) -> NotFound:
    return NotFound(f"预警 {alert_id}", f"Alert {alert_id}")


async def thresholds(session: AsyncSession, settings: Settings) -> tuple[int, dict[int, int]]:
    """The default wait threshold in seconds, and the lines that set their own."""
    rows = await session.exec(select(LineThreshold))
    own = {r.line_id: r.wait_alert_seconds for r in rows.all() if r.wait_alert_seconds}
    return settings.wait_alert_minutes * 60, own


async def department_heads(session: AsyncSession, line: WindowLine) -> list[Staff]:
    """Supervisors bound to the line; failing those, the supervisors of its hall."""
    by_line = await session.exec(
        select(Staff)
        .join(StaffLine, col(StaffLine.staff_id) == col(Staff.id))
        .where(StaffLine.line_id == line.id, Staff.role == Role.supervisor, col(Staff.active))
        .order_by(col(Staff.id))
    )
    heads = list(by_line.all())
    if heads:
        return heads
    by_hall = await session.exec(
        select(Staff)
        .join(StaffSite, col(StaffSite.staff_id) == col(Staff.id))
        .where(StaffSite.site_id == line.site_id, Staff.role == Role.supervisor, col(Staff.active))
        .order_by(col(Staff.id))
    )
    return list(by_hall.all())


async def _claim(
    session: AsyncSession, ticket: Ticket, threshold: int, waited: int, node_id: str
) -> int | None:
    """Insert the ticket's alert unless one exists; the id when this call inserted it."""
    dialect = session.bind.dialect.name if session.bind else "sqlite"
    ins = (postgresql if dialect == "postgresql" else sqlite).insert(WaitAlert)
    stmt = (
        ins.values(
            ticket_id=ticket.id,
            line_id=ticket.line_id,
            threshold_seconds=threshold,
            waited_seconds=waited,
            status=AlertStatus.raised,
            raised_by_node=node_id[:100],
        )
        .on_conflict_do_nothing(index_elements=["ticket_id"])
        .returning(WaitAlert.id)
    )
    row = (await session.exec(stmt)).first()  # type: ignore[call-overload]
    return int(row[0]) if row is not None else None


def _sms_text(line: WindowLine, ticket: Ticket, waited: int) -> str:
    return (
        f"【云窗口】{line.name} {ticket.number}（{ticket.item_name}）已等待 {waited // 60} 分钟，"
        "请及时安排办理。"
    )


async def raise_due(
    *,
    session: AsyncSession,
    settings: Settings,
    sms: SmsGateway,
    outbox: Outbox,
    now: dt.datetime,
    node_id: str,
) -> RaiseReport:
    """Raise the alerts of tickets waiting past their threshold; resolve those that moved on."""
    report = RaiseReport()
    default, own = await thresholds(session, settings)
    shortest = min([default, *own.values()])
    overdue = await session.exec(
        select(Ticket)
        .outerjoin(WaitAlert, col(WaitAlert.ticket_id) == col(Ticket.id))
        .where(
            Ticket.status == TicketStatus.waiting,
            col(Ticket.waiting_since) <= now - dt.timedelta(seconds=shortest),
            col(WaitAlert.id).is_(None),
        )
        .order_by(col(Ticket.waiting_since))
        .limit(RAISE_BATCH)
    )
    for ticket in overdue.all():
        threshold = own.get(ticket.line_id, default)
        waited = int((now - ticket.waiting_since).total_seconds())
        if waited < threshold:
            continue
        alert_id = await _claim(session, ticket, threshold, waited, node_id)
        if alert_id is None:
            continue  # another node raised it first
        report.raised.append(alert_id)
        line = await session.get(WindowLine, ticket.line_id)
        assert line is not None
        alert = await session.get(WaitAlert, alert_id)
        assert alert is not None
        read = await read_alert(session, alert)
        audit.record(
            session,
            actor=None,
            action="alert.raise",
            target_type="wait_alert",
            target_id=alert_id,
            detail={"ticket": ticket.id, "line": line.id, "waited_s": waited},
        )
        for head in await department_heads(session, line):
            outbox.emit(AlertRaised(alert=read), Audience.staff(head.id or 0))
            if head.phone:
                await sms.send(
                    session, phone=head.phone, body=_sms_text(line, ticket, waited), kind="alert"
                )
    report.resolved = await _resolve_moved_on(session, now)
    return report


async def _resolve_moved_on(session: AsyncSession, now: dt.datetime) -> int:
    """Open alerts whose ticket was called, cancelled or left the queue resolve themselves."""
    rows = await session.exec(
        select(WaitAlert, Ticket.status)
        .join(Ticket, col(Ticket.id) == col(WaitAlert.ticket_id))
        .where(col(WaitAlert.status).in_(OPEN_ALERT), Ticket.status != TicketStatus.waiting)
    )
    done = 0
    for alert, status in rows.all():
        moved = await session.exec(
            update(WaitAlert)
            .where(col(WaitAlert.id) == alert.id, col(WaitAlert.status).in_(OPEN_ALERT))
            .values(status=AlertStatus.resolved, resolved_at=now, resolution=str(status)[:16])
        )
        if moved.rowcount:  # type: ignore[attr-defined]
            done += 1
    return done


async def read_alert(session: AsyncSession, alert: WaitAlert) -> AlertRead:
    ticket = await session.get(Ticket, alert.ticket_id)
    line = await session.get(WindowLine, alert.line_id)
    return AlertRead(
        id=alert.id or 0,
        ticket_id=alert.ticket_id,
        ticket_number=ticket.number if ticket else "",
        item_name=ticket.item_name if ticket else "",
        line_id=alert.line_id,
        line_name=line.name if line else "",
        threshold_seconds=alert.threshold_seconds,
        waited_seconds=alert.waited_seconds,
        status=AlertStatus(alert.status),
        raised_at=alert.raised_at,
        acknowledged_at=alert.acknowledged_at,
        acknowledged_by=alert.acknowledged_by,
        note=alert.note,
        resolved_at=alert.resolved_at,
        resolution=alert.resolution,
    )


async def list_alerts(
    *, session: AsyncSession, principal: Principal, open_only: bool, limit: int
) -> list[AlertRead]:
    """Alerts of the lines in the caller's area, newest first."""
    q = select(WaitAlert).order_by(col(WaitAlert.raised_at).desc(), col(WaitAlert.id).desc())
    if open_only:
        q = q.where(col(WaitAlert.status).in_(OPEN_ALERT))
    out: list[AlertRead] = []
    lines: dict[int, bool] = {}
    for alert in (await session.exec(q)).all():
        if alert.line_id not in lines:
            line = await session.get(WindowLine, alert.line_id)
            lines[alert.line_id] = line is not None and await _sees(session, principal, line)
        if lines[alert.line_id]:
            out.append(await read_alert(session, alert))
            if len(out) >= limit:
                break
    return out


async def _sees(session: AsyncSession, principal: Principal, line: WindowLine) -> bool:
    try:
        await require_line(session, principal, line)
    except NotFound:
        return False
    return True


async def _mine(session: AsyncSession, principal: Principal, alert_id: int) -> WaitAlert:
    alert = await session.get(WaitAlert, alert_id)
    line = await session.get(WindowLine, alert.line_id) if alert else None
    if alert is None or line is None:
        raise _nf(alert_id)
    await require_line(session, principal, line, not_found=_nf(alert_id))
    return alert


async def acknowledge(
    *,
    session: AsyncSession,
    principal: Principal,
    outbox: Outbox,
    alert_id: int,
    note: str,
    now: dt.datetime,
    request_id: str = "",
    ip: str = "",
) -> AlertRead:
    """A department head takes the alert on: who, when and what they will do."""
    alert = await _mine(session, principal, alert_id)
    if alert.status != AlertStatus.raised:
        raise Conflict("alert.state", status=alert.status)
    alert.status = AlertStatus.acknowledged
    alert.acknowledged_at, alert.acknowledged_by, alert.note = now, principal.staff_id, note
    session.add(alert)
    return await _changed(session, principal, outbox, alert, "alert.acknowledge", request_id, ip)


async def resolve(
    *,
    session: AsyncSession,
    principal: Principal,
    outbox: Outbox,
    alert_id: int,
    note: str,
    now: dt.datetime,
    request_id: str = "",
    ip: str = "",
) -> AlertRead:
    """Close an alert by hand (the resident was helped another way, for example)."""
    alert = await _mine(session, principal, alert_id)
    if alert.status == AlertStatus.resolved:
        raise Conflict("alert.state", status=alert.status)
    alert.status, alert.resolved_at, alert.resolved_by = (
        AlertStatus.resolved,
        now,
        principal.staff_id,
    )
    alert.resolution = "manual"
    if note:
        alert.note = note
    session.add(alert)
    return await _changed(session, principal, outbox, alert, "alert.resolve", request_id, ip)


async def _changed(
    session: AsyncSession,
    principal: Principal,
    outbox: Outbox,
    alert: WaitAlert,
    action: str,
    request_id: str,
    ip: str,
) -> AlertRead:
    await session.flush()
    audit.record(
        session,
        actor=principal,
        action=action,
        target_type="wait_alert",
        target_id=alert.id or 0,
        detail={"note": alert.note} if alert.note else None,
        request_id=request_id,
        ip=ip,
    )
    read = await read_alert(session, alert)
    line = await session.get(WindowLine, alert.line_id)
    if line is not None:
        for head in await department_heads(session, line):
            outbox.emit(AlertChanged(alert=read), Audience.staff(head.id or 0))
    return read
