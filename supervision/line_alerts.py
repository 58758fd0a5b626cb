"""Line alerts: yellow and red on a line's people waiting and on its tickets taken in a rolling
period, with hysteresis, raised once per episode across every node and restart.

An episode is one row, from the moment a measure reaches yellow (or straight red) until it
drops below yellow's release level. Every node's sweep reads the measures and the running
episodes; a new episode is an insert that the partial unique index lets only one node win, and
a change of level is an update conditional on the level that node read, so each step is
announced (event, SMS, audit) by exactly one node, in the transaction that made it. Taking an
alert on and closing it are supervision/lifecycle.py's, kind LINE.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, or_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.access import Principal, site_ancestry
from core.events import Outbox
from core.models import Role, Staff, StaffLine, StaffSite, WindowLine
from core.settings import Settings
from core.sms import SmsGateway
from signaling.models import Ticket, TicketStatus
from supervision import lifecycle, thresholds
from supervision.alerts import department_heads
from supervision.events import LineAlertChanged, LineAlertRaised
from supervision.lifecycle import Kind, Scope
from supervision.models import (
    AlertCounts,
    AlertLevel,
    AlertStatus,
    LineAlert,
    LineAlertRead,
    LineMeasure,
    WaitAlert,
)
from supervision.thresholds import Limits

__all__ = ["LINE", "Limits", "LineReport", "counts", "next_level", "sweep"]

TARGET = "line_alert"
TIDAL_NOTE = "tidal windows are not built yet"


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
    return await site_supervisors(session, line.site_id, line_id=line.id)


async def site_supervisors(
    session: AsyncSession, site_id: int, *, line_id: int | None = None
) -> list[int]:
    """Supervisors bound to the site or a site above it (or to the line, when given)."""
    sites = [s.id for s in await site_ancestry(session, site_id)]
    bound = col(StaffSite.site_id).in_(sites)
    rows = await session.exec(
        select(Staff.id)
        .outerjoin(StaffLine, col(StaffLine.staff_id) == col(Staff.id))
        .outerjoin(StaffSite, col(StaffSite.staff_id) == col(Staff.id))
        .where(
            Staff.role == Role.supervisor,
            col(Staff.active),
            or_(StaffLine.line_id == line_id, bound) if line_id is not None else bound,
        )
        .distinct()
    )
    return sorted(i for i in rows.all() if i is not None)


async def read(session: AsyncSession, alert: LineAlert) -> LineAlertRead:
    line = await session.get(WindowLine, alert.line_id)
    out = LineAlertRead.model_validate(alert, from_attributes=True)
    out.line_name = line.name if line else ""
    return out


def _sms(line: WindowLine, alert: LineAlert) -> tuple[dict[str, str], str]:
    """The template's parameters and the text they render to."""
    level = "红色" if alert.level == AlertLevel.red else "黄色"
    if alert.measure == LineMeasure.waiting:
        what = f"等候 {alert.value} 人（阈值 {alert.threshold}）"
    else:
        what = f"近 {alert.window_minutes} 分钟取号 {alert.value} 张（阈值 {alert.threshold}）"
    waiting = alert.measure == LineMeasure.waiting
    measure = "等候人数" if waiting else f"近{alert.window_minutes}分钟取号"
    params = {
        "line": line.name,
        "level": level,
        "measure": measure,
        "value": str(alert.value),
        "threshold": str(alert.threshold),
    }
    return params, f"【云窗口】{line.name}{level}预警：{what}，请及时调配窗口。"


async def _page(session: AsyncSession, sms: SmsGateway, alert: LineAlert, now: dt.datetime) -> None:
    """An SMS to each of the line's department heads that has a phone number."""
    line = await session.get(WindowLine, alert.line_id)
    if line is None:
        return
    params, body = _sms(line, alert)
    # One message per head and step: the same step retried is not sent twice.
    step = f"{alert.level}:{int(now.timestamp())}"
    for head in await department_heads(session, line):
        if head.phone:
            await sms.send(
                session,
                phone=head.phone,
                kind="alert.line",
                params=params,
                body=body,
                key=f"line-alert:{alert.id}:{step}:{head.id}",
            )


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
    book = await thresholds.load(session, settings)
    values = await measures(session, now=now, window_minutes=window)
    running = {
        (a.line_id, LineMeasure(a.measure)): a
        for a in (await session.exec(select(LineAlert).where(col(LineAlert.cleared_at).is_(None))))
    }
    running_ = col(LineAlert.cleared_at).is_(None)
    for key in sorted(set(values) | set(running)):
        line_id, measure = key
        lim = book.limits(line_id).of(measure)
        value = values.get(key, 0)
        episode = running.get(key)
        current = AlertLevel(episode.level) if episode else None
        level = next_level(current, value, lim, hysteresis)
        if level == current:
            continue
        facts = {"line": line_id, "measure": str(measure), "value": value}
        if level is None:
            assert episode is not None
            alert_id = episode.id or 0
            if await lifecycle.resolve_by_itself(
                session,
                outbox,
                LINE,
                alert_id,
                now=now,
                resolution="auto",
                where=[running_],
                detail=facts,
                cleared_at=now,
                value=value,
            ):
                report.resolved.append(alert_id)
            else:  # closed by hand earlier: the episode ends quietly
                await _update(session, alert_id, [running_], cleared_at=now, value=value)
            continue
        if episode is None:
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
            step = "raise"
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
            step = "escalate" if level == AlertLevel.red else "ease"
        detail = {"level": str(level), **facts}
        if step == "ease":  # back to yellow: a change to see, not a new call to act
            alert = await session.get(LineAlert, alert_id, populate_existing=True)
            assert alert is not None
            lifecycle.record(session, LINE, alert_id, step, detail=detail)
            await lifecycle.announce(session, outbox, LINE, alert, raised=False)
        else:
            alert, _ = await lifecycle.raised(session, outbox, LINE, alert_id, detail, step=step)
            await _page(session, sms, alert, now)
    return report


async def _may_see(scope: Scope, alert: LineAlert) -> bool:
    return await scope.line(alert.line_id)


async def _area(session: AsyncSession, alert: LineAlert) -> list[int]:
    line = await session.get(WindowLine, alert.line_id)
    return await area_supervisors(session, line) if line else []


LINE: Kind[LineAlert, LineAlertRead] = Kind(
    name="line",
    table=LineAlert,
    target=TARGET,
    prefix="line_alert",
    what=("窗口预警", "Line alert"),
    read=read,
    audience=_area,
    may_see=_may_see,
    raised_event=lambda a: LineAlertRaised(alert=a),
    changed_event=lambda a: LineAlertChanged(alert=a),
)


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
    mine = await Scope(session, principal).lines([r[0] for r in line_rows + wait_rows])
    out = AlertCounts(start=start, end=end, yellow=0, red=0, wait=0, note=TIDAL_NOTE)
    for line_id, red, n in line_rows:
        if line_id in mine:
            if red:
                out.red += int(n)
            else:
                out.yellow += int(n)
    out.wait = sum(int(n) for line_id, n in wait_rows if line_id in mine)
    # -- tidal openings: counted by the tidal windows' own module (supervision/tidal.py)
    from supervision import tidal

    out.tidal = await tidal.openings(session=session, principal=principal, start=start, end=end)
    out.note = ""
    # -- end of tidal openings
    return out
