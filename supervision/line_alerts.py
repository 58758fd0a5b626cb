"""Line alerts: yellow and red on a line's people waiting and on its tickets taken in a rolling
period, with hysteresis, raised once per episode across every node and restart.

An episode is one row, from the moment a measure reaches yellow (or straight red) until it
drops below yellow's release level. Every node's sweep reads the measures and the running
episodes; a new episode is an insert that the partial unique index lets only one node win, and
a change of level is an update conditional on the level that node read, so each step is
announced (event, SMS, audit) by exactly one node, in the transaction that made it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, or_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core import audit
from core.access import Principal, may_see_line, require_line, site_ancestry
from core.errors import Conflict, NotFound
from core.events import Audience, Outbox
from core.models import Role, Staff, StaffLine, StaffSite, WindowLine
from core.settings import Settings
from core.sms import SmsGateway
from signaling.models import Ticket, TicketStatus
from supervision.alerts import department_heads
from supervision.events import LineAlertChanged, LineAlertRaised
from supervision.models import (
    OPEN_ALERT,
    AlertCounts,
    AlertLevel,
    AlertStatus,
    LineAlert,
    LineAlertRead,
    LineMeasure,
    LineThreshold,
    WaitAlert,
)

TARGET = "line_alert"
TIDAL_NOTE = "tidal windows are not built yet"


@dataclass(frozen=True)
class Limits:
    yellow: int
    red: int

    def of(self, level: AlertLevel) -> int:
        return self.red if level == AlertLevel.red else self.yellow


@dataclass
class LineReport:
    raised: list[int] = field(default_factory=list)  # new episodes this node raised
    escalated: list[int] = field(default_factory=list)  # yellow -> red
    eased: list[int] = field(default_factory=list)  # red -> yellow
    resolved: list[int] = field(default_factory=list)  # back under yellow's release level


def release(threshold: int, hysteresis: float) -> float:
    """A level is left only when the measure drops below this."""
    return threshold * (1 - hysteresis)


def next_level(
    current: AlertLevel | None, value: int, limits: Limits, hysteresis: float
) -> AlertLevel | None:
    """The level for `value`: entered at its threshold, left only below its release level."""
    if value >= limits.red:
        return AlertLevel.red
    if current == AlertLevel.red and value >= release(limits.red, hysteresis):
        return AlertLevel.red
    if value >= limits.yellow:
        return AlertLevel.yellow
    if current is not None and value >= release(limits.yellow, hysteresis):
        return AlertLevel.yellow
    return None


def _nf(alert_id: int) -> NotFound:
    return NotFound(f"窗口预警 {alert_id}", f"Line alert {alert_id}")


async def limits(
    session: AsyncSession, settings: Settings
) -> tuple[dict[LineMeasure, Limits], dict[int, dict[LineMeasure, Limits]]]:
    """The default limits per measure, and the lines that set any of their own."""
    s = settings
    default = {
        LineMeasure.waiting: Limits(s.line_alert_waiting_yellow, s.line_alert_waiting_red),
        LineMeasure.taken: Limits(s.line_alert_taken_yellow, s.line_alert_taken_red),
    }
    own: dict[int, dict[LineMeasure, Limits]] = {}
    for r in (await session.exec(select(LineThreshold))).all():
        w, t = default[LineMeasure.waiting], default[LineMeasure.taken]
        own[r.line_id] = {
            LineMeasure.waiting: Limits(r.waiting_yellow or w.yellow, r.waiting_red or w.red),
            LineMeasure.taken: Limits(r.taken_yellow or t.yellow, r.taken_red or t.red),
        }
    return default, own


async def measures(
    session: AsyncSession, *, now: dt.datetime, window_minutes: int
) -> dict[tuple[int, LineMeasure], int]:
    """People waiting per line now, and tickets taken per line in the rolling period."""
    out: dict[tuple[int, LineMeasure], int] = {}
    waiting = await session.exec(
        select(Ticket.line_id, func.count())
        .where(Ticket.status == TicketStatus.waiting)
        .group_by(col(Ticket.line_id))
    )
    for line_id, n in waiting.all():
        out[(line_id, LineMeasure.waiting)] = int(n)
    since = now - dt.timedelta(minutes=window_minutes)
    taken = await session.exec(
        select(Ticket.line_id, func.count())
        .where(col(Ticket.created_at) > since, col(Ticket.created_at) <= now)
        .group_by(col(Ticket.line_id))
    )
    for line_id, n in taken.all():
        out[(line_id, LineMeasure.taken)] = int(n)
    return out


async def area_supervisors(session: AsyncSession, line: WindowLine) -> list[int]:
    """Supervisors whose area holds the line: bound to it, or to its hall or a site above."""
    sites = [s.id for s in await site_ancestry(session, line.site_id)]
    rows = await session.exec(
        select(Staff.id)
        .outerjoin(StaffLine, col(StaffLine.staff_id) == col(Staff.id))
        .outerjoin(StaffSite, col(StaffSite.staff_id) == col(Staff.id))
        .where(
            Staff.role == Role.supervisor,
            col(Staff.active),
            or_(StaffLine.line_id == line.id, col(StaffSite.site_id).in_(sites)),
        )
        .distinct()
    )
    return sorted(i for i in rows.all() if i is not None)


async def read(session: AsyncSession, alert: LineAlert) -> LineAlertRead:
    line = await session.get(WindowLine, alert.line_id)
    out = LineAlertRead.model_validate(alert, from_attributes=True)
    out.line_name = line.name if line else ""
    return out


async def _tell(
    session: AsyncSession, outbox: Outbox, alert: LineAlert, *, raised: bool
) -> LineAlertRead:
    """The alert's event to every supervisor of the line's area."""
    out = await read(session, alert)
    line = await session.get(WindowLine, alert.line_id)
    event = LineAlertRaised(alert=out) if raised else LineAlertChanged(alert=out)
    for staff_id in await area_supervisors(session, line) if line else []:
        outbox.emit(event, Audience.staff(staff_id))
    return out


def _sms_text(line: WindowLine, alert: LineAlert) -> str:
    level = "红色" if alert.level == AlertLevel.red else "黄色"
    if alert.measure == LineMeasure.waiting:
        what = f"等候 {alert.value} 人（阈值 {alert.threshold}）"
    else:
        what = f"近 {alert.window_minutes} 分钟取号 {alert.value} 张（阈值 {alert.threshold}）"
    return f"【云窗口】{line.name}{level}预警：{what}，请及时调配窗口。"


async def _page(session: AsyncSession, sms: SmsGateway, alert: LineAlert) -> None:
    """An SMS to each of the line's department heads that has a phone number."""
    line = await session.get(WindowLine, alert.line_id)
    if line is None:
        return
    for head in await department_heads(session, line):
        if head.phone:
            await sms.send(session, phone=head.phone, body=_sms_text(line, alert), kind="alert")


async def _claim(session: AsyncSession, values: dict[str, object], node_id: str) -> int | None:
    """Insert the episode unless one is running for the line and measure; its id if inserted."""
    dialect = session.bind.dialect.name if session.bind else "sqlite"
    ins = (postgresql if dialect == "postgresql" else sqlite).insert(LineAlert)
    stmt = (
        ins.values(**values, status=AlertStatus.raised, raised_by_node=node_id[:100])
        .on_conflict_do_nothing(
            index_elements=["line_id", "measure"], index_where=col(LineAlert.cleared_at).is_(None)
        )
        .returning(LineAlert.id)
    )
    row = (await session.exec(stmt)).first()  # type: ignore[call-overload]
    return int(row[0]) if row is not None else None


async def _update(session: AsyncSession, alert_id: int, where: list[Any], **values: object) -> bool:
    stmt = update(LineAlert).where(col(LineAlert.id) == alert_id, *where).values(**values)
    done = await session.exec(stmt)  # type: ignore[call-overload]
    return bool(done.rowcount)


async def sweep(
    *,
    session: AsyncSession,
    settings: Settings,
    sms: SmsGateway,
    outbox: Outbox,
    now: dt.datetime,
    node_id: str,
) -> LineReport:
    """Raise, escalate, ease and resolve the line alerts for the measures as they are now."""
    report = LineReport()
    hysteresis = settings.line_alert_hysteresis
    window = settings.line_alert_taken_window_minutes
    default, own = await limits(session, settings)
    values = await measures(session, now=now, window_minutes=window)
    running = {
        (a.line_id, LineMeasure(a.measure)): a
        for a in (await session.exec(select(LineAlert).where(col(LineAlert.cleared_at).is_(None))))
    }
    running_ = col(LineAlert.cleared_at).is_(None)
    for key in sorted(set(values) | set(running)):
        line_id, measure = key
        lim = own.get(line_id, default)[measure]
        value = values.get(key, 0)
        episode = running.get(key)
        current = AlertLevel(episode.level) if episode else None
        level = next_level(current, value, lim, hysteresis)
        if level == current:
            continue
        if episode is None:
            assert level is not None
            alert_id = await _claim(
                session,
                {
                    "line_id": line_id,
                    "measure": measure,
                    "level": level,
                    "value": value,
                    "threshold": lim.of(level),
                    "window_minutes": window if measure == LineMeasure.taken else 0,
                    "raised_at": now,
                    "red_at": now if level == AlertLevel.red else None,
                },
                node_id,
            )
            if alert_id is None:
                continue  # another node raised it first
            report.raised.append(alert_id)
            action, detail = "line_alert.raise", {"level": str(level)}
        elif level is None:
            alert_id = episode.id or 0
            open_ = col(LineAlert.status).in_(OPEN_ALERT)
            if await _update(
                session,
                alert_id,
                [running_, open_],
                cleared_at=now,
                value=value,
                status=AlertStatus.resolved,
                resolved_at=now,
                resolution="auto",
            ):
                report.resolved.append(alert_id)
                action, detail = "line_alert.resolve", {"resolution": "auto"}
            else:  # closed by hand earlier: the episode ends quietly
                await _update(session, alert_id, [running_], cleared_at=now, value=value)
                continue
        else:
            alert_id = episode.id or 0
            change: dict[str, object] = {"level": level, "value": value, "threshold": lim.of(level)}
            if level == AlertLevel.red:  # red asks to be taken on again, even if closed by hand
                change |= {
                    "red_at": func.coalesce(col(LineAlert.red_at), now),
                    "status": AlertStatus.raised,
                    "resolved_at": None,
                    "resolved_by": None,
                    "resolution": "",
                }
            if not await _update(
                session, alert_id, [running_, col(LineAlert.level) == current], **change
            ):
                continue  # another node moved it first
            (report.escalated if level == AlertLevel.red else report.eased).append(alert_id)
            action = "line_alert.escalate" if level == AlertLevel.red else "line_alert.ease"
            detail = {"level": str(level)}
        alert = await session.get(LineAlert, alert_id, populate_existing=True)
        assert alert is not None
        audit.record(
            session,
            actor=None,
            action=action,
            target_type=TARGET,
            target_id=alert_id,
            detail={**detail, "line": line_id, "measure": str(measure), "value": value},
        )
        loud = action in ("line_alert.raise", "line_alert.escalate")
        await _tell(session, outbox, alert, raised=loud)
        if loud:
            await _page(session, sms, alert)
    return report


async def _visible(session: AsyncSession, principal: Principal, line_ids: set[int]) -> set[int]:
    out = set()
    for line_id in line_ids:
        line = await session.get(WindowLine, line_id)
        if line is not None and await may_see_line(session, principal, line):
            out.add(line_id)
    return out


async def list_alerts(
    *, session: AsyncSession, principal: Principal, open_only: bool, limit: int
) -> list[LineAlertRead]:
    """Line alerts of the lines in the caller's area, newest first."""
    q = select(LineAlert).order_by(col(LineAlert.raised_at).desc(), col(LineAlert.id).desc())
    if open_only:
        q = q.where(col(LineAlert.status).in_(OPEN_ALERT))
    rows = list((await session.exec(q)).all())
    mine = await _visible(session, principal, {a.line_id for a in rows})
    return [await read(session, a) for a in rows if a.line_id in mine][:limit]


async def _mine(session: AsyncSession, principal: Principal, alert_id: int) -> LineAlert:
    alert = await session.get(LineAlert, alert_id)
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
) -> LineAlertRead:
    """A supervisor takes the line alert on: who, when and what they will do."""
    alert = await _mine(session, principal, alert_id)
    if alert.status != AlertStatus.raised:
        raise Conflict("alert.state", status=alert.status)
    alert.status = AlertStatus.acknowledged
    alert.acknowledged_at, alert.acknowledged_by, alert.note = now, principal.staff_id, note
    return await _acted(session, principal, outbox, alert, "line_alert.acknowledge", request_id, ip)


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
) -> LineAlertRead:
    """Close a line alert by hand; its episode stays quiet until the line is back under yellow."""
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
    return await _acted(session, principal, outbox, alert, "line_alert.resolve", request_id, ip)


async def _acted(
    session: AsyncSession,
    principal: Principal,
    outbox: Outbox,
    alert: LineAlert,
    action: str,
    request_id: str,
    ip: str,
) -> LineAlertRead:
    session.add(alert)
    await session.flush()
    audit.record(
        session,
        actor=principal,
        action=action,
        target_type=TARGET,
        target_id=alert.id or 0,
        detail={"note": alert.note} if alert.note else None,
        request_id=request_id,
        ip=ip,
    )
    return await _tell(session, outbox, alert, raised=False)


async def counts(
    *, session: AsyncSession, principal: Principal, start: dt.datetime, end: dt.datetime
) -> AlertCounts:
    """Yellow, red and per-ticket alerts raised in [start, end) on the lines of my area."""
    lines = await session.exec(
        select(LineAlert.line_id, col(LineAlert.red_at).is_not(None), func.count())
        .where(col(LineAlert.raised_at) >= start, col(LineAlert.raised_at) < end)
        .group_by(col(LineAlert.line_id), col(LineAlert.red_at).is_not(None))
    )
    waits = await session.exec(
        select(WaitAlert.line_id, func.count())
        .where(col(WaitAlert.raised_at) >= start, col(WaitAlert.raised_at) < end)
        .group_by(col(WaitAlert.line_id))
    )
    line_rows, wait_rows = list(lines.all()), list(waits.all())
    mine = await _visible(session, principal, {r[0] for r in line_rows} | {r[0] for r in wait_rows})
    out = AlertCounts(start=start, end=end, yellow=0, red=0, wait=0, note=TIDAL_NOTE)
    for line_id, red, n in line_rows:
        if line_id in mine:
            if red:
                out.red += int(n)
            else:
                out.yellow += int(n)
    out.wait = sum(int(n) for line_id, n in wait_rows if line_id in mine)
    return out
