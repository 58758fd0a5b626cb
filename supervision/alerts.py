"""Per-ticket wait alerts: a resident waiting past their line's threshold alerts the line's
department heads, in the app and by SMS, once per ticket across every node and restart.

Every node's sweep looks for overdue tickets and tries to insert their alert; the unique
ticket_id lets exactly one insert win, and only the winner queues the notice and the SMS, in
the same transaction as its row. An alert resolves itself once the ticket leaves the queue;
its lifecycle (acknowledge, resolve, audit) is supervision/lifecycle.py's, kind WAIT.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.events import Outbox
from core.models import Role, Staff, StaffLine, StaffSite, WindowLine
from core.settings import Settings
from core.sms import SmsGateway
from signaling.models import Ticket, TicketStatus
from supervision import lifecycle, thresholds
from supervision.events import AlertChanged, AlertRaised
from supervision.lifecycle import Kind, Scope
from supervision.models import OPEN_ALERT, AlertRead, AlertStatus, WaitAlert

# Overdue tickets raised per sweep round; a backlog is worked off over the next rounds.
RAISE_BATCH = 200


@dataclass
class RaiseReport:
    raised: list[int] = field(default_factory=list)  # alert ids this node raised
    resolved: int = 0


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


def _sms(line: WindowLine, ticket: Ticket, waited: int) -> tuple[dict[str, str], str]:
    """The template's parameters and the text they render to."""
    params = {
        "line": line.name,
        "number": ticket.number,
        "item": ticket.item_name,
        "minutes": str(waited // 60),
    }
    body = (
        f"【云窗口】{line.name} {ticket.number}（{ticket.item_name}）已等待 {waited // 60} 分钟，"
        "请及时安排办理。"
    )
    return params, body


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
    book = await thresholds.load(session, settings)
    overdue = await session.exec(
        select(Ticket)
        .outerjoin(WaitAlert, col(WaitAlert.ticket_id) == col(Ticket.id))
        .where(
            Ticket.status == TicketStatus.waiting,
            col(Ticket.waiting_since) <= now - dt.timedelta(seconds=book.shortest_wait()),
            col(WaitAlert.id).is_(None),
        )
        .order_by(col(Ticket.waiting_since))
        .limit(RAISE_BATCH)
    )
    for ticket in overdue.all():
        threshold = book.limits(ticket.line_id).wait_seconds
        waited = int((now - ticket.waiting_since).total_seconds())
        if waited < threshold:
            continue
        alert_id = await _claim(session, ticket, threshold, waited, node_id)
        if alert_id is None:
            continue  # another node raised it first
        report.raised.append(alert_id)
        line = await session.get(WindowLine, ticket.line_id)
        assert line is not None
        detail = {"ticket": ticket.id, "line": line.id, "waited_s": waited}
        await lifecycle.raised(session, outbox, WAIT, alert_id, detail)
        params, body = _sms(line, ticket, waited)
        for head in await department_heads(session, line):
            if head.phone:
                await sms.send(
                    session,
                    phone=head.phone,
                    kind="alert.wait",
                    params=params,
                    body=body,
                    key=f"alert:{alert_id}:{head.id}",
                )
    report.resolved = await _resolve_moved_on(session, outbox, now)
    return report


async def _resolve_moved_on(session: AsyncSession, outbox: Outbox, now: dt.datetime) -> int:
    """Open alerts whose ticket was called, cancelled or left the queue resolve themselves."""
    rows = await session.exec(
        select(WaitAlert.id, Ticket.status)
        .join(Ticket, col(Ticket.id) == col(WaitAlert.ticket_id))
        .where(col(WaitAlert.status).in_(OPEN_ALERT), Ticket.status != TicketStatus.waiting)
    )
    done = 0
    for alert_id, status in rows.all():
        if await lifecycle.resolve_by_itself(
            session, outbox, WAIT, alert_id or 0, now=now, resolution=str(status)[:16]
        ):
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


async def _heads(session: AsyncSession, alert: WaitAlert) -> list[int]:
    line = await session.get(WindowLine, alert.line_id)
    return [h.id or 0 for h in await department_heads(session, line)] if line else []


async def _may_see(scope: Scope, alert: WaitAlert) -> bool:
    return await scope.line(alert.line_id)


WAIT: Kind[WaitAlert, AlertRead] = Kind(
    name="wait",
    table=WaitAlert,
    target="wait_alert",
    prefix="alert",
    what=("预警", "Alert"),
    read=read_alert,
    audience=_heads,
    may_see=_may_see,
    raised_event=lambda a: AlertRaised(alert=a),
    changed_event=lambda a: AlertChanged(alert=a),
)
