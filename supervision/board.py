"""The live board of a supervisor's area: figures per line and per hall, a line's waiting
tickets, and the hall's wall display.

The board's cost does not follow the queue. Each figure is one grouped statement over an
index, never a loop over tickets in Python:

- what waits (count, oldest, past target, taken in the last hour) is read from the queue index
  `ix_ticket_queue` alone, which holds every column it needs;
- what happened today (called within target, served, handling times) reads the same index
  for the other states, bounded by `waiting_since` from today's start. Those range scans run
  per (line, state, priority), which is why PRIORITIES is spelled out: with every priority
  named, the index bounds the scan to today's tickets instead of the line's whole history;
- clerks come from presence (a few rows per clerk), alerts from their open rows.

So a refresh costs about ten statements whatever the number of waiting tickets, and a
drill-down reads one page of them. Definitions of every figure: docs/supervision.md, "Board".
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.access import Principal, lines_in_scope, require_line
from core.db import UTCDateTime
from core.errors import NotFound
from core.models import Site, SiteKind, StaffLine, WindowLine
from core.settings import Settings
from signaling.models import Presence, PresenceStatus, Ticket, TicketStatus
from supervision import thresholds
from supervision.board_models import (
    BoardFigures,
    BoardHall,
    BoardLine,
    BoardRead,
    LineQueue,
    WaitingTicket,
    WallLine,
    WallNumber,
    WallRead,
)
from supervision.models import OPEN_ALERT, AlertLevel, LineAlert, WaitAlert

# Every priority signaling.queue gives a ticket: 0 normal; 1 aged 80+, disabled, or an
# appointment checked in. tests/supervision/test_board.py takes a ticket of each kind.
PRIORITIES = (0, 1)
ACTIVE = (TicketStatus.called, TicketStatus.serving)
NOT_WAITING = tuple(s for s in TicketStatus if s is not TicketStatus.waiting)
HOUR = dt.timedelta(hours=1)
# Numbers shown per line on the wall: the next three to be called. A fourth is rarely read
# from across a hall before the display changes anyway.
WALL_NEXT = 3

_T = Ticket.__table__  # type: ignore[attr-defined]


def _seconds(dialect: str, later: Any, earlier: Any) -> Any:
    """`later - earlier` in seconds, in SQL (SQLite stores timestamps as text)."""
    if dialect == "postgresql":
        return sa.func.extract("epoch", later - earlier)
    return (sa.func.julianday(later) - sa.func.julianday(earlier)) * 86400.0


def _target(default: int, own: dict[int, int]) -> Any:
    """Each line's target in seconds, as SQL over the ticket's line."""
    if not own:
        return sa.literal(default)
    return sa.case(own, value=_T.c.line_id, else_=default)


def day_start(settings: Settings, now: dt.datetime) -> dt.datetime:
    """Midnight of the working day that holds `now`, in the district's time zone."""
    tz = ZoneInfo(settings.timezone)
    return dt.datetime.combine(now.astimezone(tz).date(), dt.time(), tzinfo=tz)


@dataclass
class _Line:
    """What is gathered for one line before it becomes figures."""

    line: WindowLine
    target: int
    waiting: int = 0
    oldest: dt.datetime | None = None
    over_target: int = 0
    arrivals: int = 0
    served: int = 0
    within: int = 0
    called: int = 0
    abandoned: int = 0
    handled: int = 0
    handling_sum: float = 0.0
    online: set[int] = field(default_factory=set)
    free: set[int] = field(default_factory=set)
    serving: set[int] = field(default_factory=set)
    red: int = 0
    yellow: int = 0
    wait_alerts: int = 0
    numbers: list[str] = field(default_factory=list)  # called or being served, oldest call first


def _figures(parts: list[_Line], now: dt.datetime) -> dict[str, Any]:
    """The figures of one line, or of several totalled (clerks counted once each)."""
    oldest = min((p.oldest for p in parts if p.oldest), default=None)
    within = sum(p.within for p in parts)
    counted = sum(p.called + p.abandoned + p.over_target for p in parts)
    handled = sum(p.handled for p in parts)
    handling = sum(p.handling_sum for p in parts)
    return {
        "waiting": sum(p.waiting for p in parts),
        "oldest_waiting_since": oldest,
        "longest_wait_seconds": max(0, int((now - oldest).total_seconds())) if oldest else 0,
        "clerks_serving": len(set().union(*(p.serving for p in parts))),
        "clerks_free": len(set().union(*(p.free for p in parts))),
        "clerks_online": len(set().union(*(p.online for p in parts))),
        "arrivals_last_hour": sum(p.arrivals for p in parts),
        "served_last_hour": sum(p.served for p in parts),
        "sl_within": within,
        "sl_counted": counted,
        "service_level": round(within / counted, 4) if counted else None,
        "handling_seconds": round(handling / handled) if handled else None,
        "handled_today": handled,
        "alerts_red": sum(p.red for p in parts),
        "alerts_yellow": sum(p.yellow for p in parts),
        "alerts_wait": sum(p.wait_alerts for p in parts),
    }


async def _gather(
    session: AsyncSession, settings: Settings, lines: list[WindowLine], now: dt.datetime
) -> dict[int, _Line]:
    """Every line's raw figures, in a fixed number of statements."""
    book = await thresholds.load(session, settings)
    acc = {ln.id or 0: _Line(ln, book.limits(ln.id or 0).wait_seconds) for ln in lines}
    ids = sorted(acc)
    if not ids:
        return acc
    dialect = session.bind.dialect.name if session.bind else "sqlite"
    default = book.default["wait_alert_seconds"]
    target = _target(default, {k: a.target for k, a in acc.items() if a.target != default})
    at = sa.literal(now, UTCDateTime())
    hour_ago = now - HOUR
    midnight = day_start(settings, now)
    one = sa.literal(1)

    def count_if(cond: Any) -> Any:
        return sa.func.sum(sa.case((cond, one), else_=0))

    # What waits: the queue index alone.
    waiting = await session.exec(
        sa.select(
            _T.c.line_id,
            sa.func.count(),
            sa.func.min(_T.c.waiting_since),
            count_if(_seconds(dialect, at, _T.c.waiting_since) > target),
            count_if(_T.c.waiting_since > hour_ago),
        )
        .where(_T.c.line_id.in_(ids), _T.c.status == TicketStatus.waiting)
        .group_by(_T.c.line_id)
    )
    for line_id, n, oldest, over, arrived in waiting.all():
        a = acc[line_id]
        a.waiting, a.oldest, a.over_target, a.arrivals = int(n), oldest, int(over), int(arrived)

    # What happened today: the same index over the other states, from today's start.
    waited = _seconds(dialect, _T.c.called_at, _T.c.waiting_since)
    handled = sa.and_(
        _T.c.status == TicketStatus.done,
        _T.c.finished_at >= midnight,
        _T.c.answered_at.is_not(None),
    )
    today = await session.exec(
        sa.select(
            _T.c.line_id,
            count_if(_T.c.waiting_since > hour_ago),
            count_if(sa.and_(_T.c.status == TicketStatus.done, _T.c.finished_at > hour_ago)),
            count_if(_T.c.called_at >= midnight),
            count_if(sa.and_(_T.c.called_at >= midnight, waited <= target)),
            count_if(
                sa.and_(
                    _T.c.status == TicketStatus.cancelled,
                    _T.c.called_at.is_(None),
                    _T.c.finished_at >= midnight,
                    _seconds(dialect, _T.c.finished_at, _T.c.waiting_since) > target,
                )
            ),
            count_if(handled),
            sa.func.sum(
                sa.case(
                    (handled, _seconds(dialect, _T.c.finished_at, _T.c.answered_at)), else_=None
                )
            ),
        )
        .where(
            _T.c.line_id.in_(ids),
            _T.c.status.in_(NOT_WAITING),
            _T.c.priority.in_(PRIORITIES),
            _T.c.waiting_since >= min(midnight, hour_ago),
        )
        .group_by(_T.c.line_id)
    )
    for line_id, arrived, served, called, within, abandoned, n_handled, secs in today.all():
        a = acc[line_id]
        a.arrivals += int(arrived or 0)
        a.served, a.called, a.within = int(served or 0), int(called or 0), int(within or 0)
        a.abandoned, a.handled = int(abandoned or 0), int(n_handled or 0)
        a.handling_sum = float(secs or 0)

    await _clerks(session, settings, acc, ids, now)
    await _alerts(session, acc, ids)
    return acc


async def _clerks(
    session: AsyncSession,
    settings: Settings,
    acc: dict[int, _Line],
    ids: list[int],
    now: dt.datetime,
) -> None:
    """Online, free and serving clerks per line, as signaling counts them for line:status."""
    fresh = now - dt.timedelta(seconds=settings.presence_ttl_seconds)
    present = await session.exec(
        select(StaffLine.line_id, Presence.staff_id, Presence.status)
        .join(StaffLine, col(StaffLine.staff_id) == col(Presence.staff_id))
        .where(col(StaffLine.line_id).in_(ids), col(Presence.updated_at) >= fresh)
    )
    willing: dict[int, set[int]] = defaultdict(set)
    for line_id, staff_id, status in present.all():
        acc[line_id].online.add(staff_id)
        if status == PresenceStatus.available:
            willing[line_id].add(staff_id)
    active = await session.exec(
        sa.select(_T.c.line_id, _T.c.called_by, _T.c.number)
        .where(_T.c.line_id.in_(ids), _T.c.status.in_(ACTIVE))
        .order_by(_T.c.called_at)
    )
    for line_id, clerk, number in active.all():
        if clerk is not None:
            acc[line_id].serving.add(clerk)
        acc[line_id].numbers.append(number)
    online = set().union(*(a.online for a in acc.values()))
    busy: set[int] = set()
    if online:
        # A clerk serving on a line outside this board is not free on its lines either.
        rows = await session.exec(
            sa.select(_T.c.called_by).where(
                _T.c.called_by.in_(sorted(online)), _T.c.status.in_(ACTIVE)
            )
        )
        busy = {r[0] for r in rows.all()}
    for line_id, staff in willing.items():
        acc[line_id].free = staff - busy


async def _alerts(session: AsyncSession, acc: dict[int, _Line], ids: list[int]) -> None:
    lines = await session.exec(
        select(LineAlert.line_id, LineAlert.level, sa.func.count())
        .where(col(LineAlert.line_id).in_(ids), col(LineAlert.status).in_(OPEN_ALERT))
        .group_by(col(LineAlert.line_id), col(LineAlert.level))
    )
    for line_id, level, n in lines.all():
        if level == AlertLevel.red:
            acc[line_id].red += int(n)
        else:
            acc[line_id].yellow += int(n)
    waits = await session.exec(
        select(WaitAlert.line_id, sa.func.count())
        .where(col(WaitAlert.line_id).in_(ids), col(WaitAlert.status).in_(OPEN_ALERT))
        .group_by(col(WaitAlert.line_id))
    )
    for line_id, n in waits.all():
        acc[line_id].wait_alerts = int(n)


def _hall_nf(hall_id: int) -> NotFound:
    return NotFound(f"办事大厅 {hall_id}", f"Hall {hall_id}")


async def _halls(session: AsyncSession, lines: list[WindowLine]) -> list[Site]:
    """The halls of these lines: the district centre first, then the towns by code."""
    ids = {ln.site_id for ln in lines}
    if not ids:
        return []
    rows = await session.exec(select(Site).where(col(Site.id).in_(ids)))
    return sorted(rows.all(), key=lambda s: (s.kind != SiteKind.district, s.code))


async def _area(
    session: AsyncSession, principal: Principal, hall_id: int | None
) -> tuple[list[WindowLine], list[Site]]:
    lines = [ln for ln in await lines_in_scope(session, principal) if ln.active]
    if hall_id is not None:
        lines = [ln for ln in lines if ln.site_id == hall_id]
        if not lines:
            raise _hall_nf(hall_id)
    lines.sort(key=lambda ln: ln.code)
    return lines, await _halls(session, lines)


def _line_read(a: _Line, now: dt.datetime) -> BoardLine:
    ln = a.line
    return BoardLine(
        line_id=ln.id or 0,
        line_name=ln.name,
        department=ln.department,
        site_id=ln.site_id,
        target_seconds=a.target,
        **_figures([a], now),
    )


async def snapshot(
    *,
    session: AsyncSession,
    principal: Principal,
    settings: Settings,
    now: dt.datetime,
    hall_id: int | None = None,
) -> BoardRead:
    """The board of the caller's area (or of one hall in it) at `now`."""
    lines, halls = await _area(session, principal, hall_id)
    acc = await _gather(session, settings, lines, now)
    out = []
    for site in halls:
        parts = [a for a in acc.values() if a.line.site_id == site.id]
        out.append(
            BoardHall(
                site_id=site.id or 0,
                site_name=site.name,
                site_kind=site.kind,
                lines=[_line_read(a, now) for a in parts],
                **_figures(parts, now),
            )
        )
    return BoardRead(at=now, total=BoardFigures(**_figures(list(acc.values()), now)), halls=out)


async def line_queue(
    *,
    session: AsyncSession,
    principal: Principal,
    settings: Settings,
    now: dt.datetime,
    line_id: int,
    limit: int,
    offset: int,
) -> LineQueue:
    """A page of the line's waiting tickets, longest waiting first (404 outside my area)."""
    line = await session.get(WindowLine, line_id)
    nf = NotFound(f"窗口 {line_id}", f"Window line {line_id}")
    if line is None:
        raise nf
    await require_line(session, principal, line, not_found=nf)
    target = (await thresholds.load(session, settings)).limits(line_id).wait_seconds
    where = (_T.c.line_id == line_id, _T.c.status == TicketStatus.waiting)
    count = sa.select(sa.func.count()).where(*where)
    total = (await session.exec(count)).scalar_one()  # type: ignore[call-overload]
    open_alert = (
        sa.select(WaitAlert.id)
        .where(WaitAlert.ticket_id == _T.c.id, col(WaitAlert.status).in_(OPEN_ALERT))
        .exists()
    )
    rows = await session.exec(
        sa.select(
            _T.c.id,
            _T.c.number,
            _T.c.item_code,
            _T.c.item_name,
            _T.c.priority,
            _T.c.priority_reason,
            _T.c.waiting_since,
            open_alert,
        )
        .where(*where)
        .order_by(_T.c.waiting_since, _T.c.id)
        .limit(limit)
        .offset(offset)
    )
    tickets = []
    for tid, number, code, item, priority, reason, since, alerted in rows.all():
        waited = max(0, int((now - since).total_seconds()))
        tickets.append(
            WaitingTicket(
                ticket_id=tid,
                number=number,
                item_code=code,
                item_name=item,
                priority=priority,
                priority_reason=reason,
                waiting_since=since,
                wait_seconds=waited,
                over_target=waited > target,
                alerted=bool(alerted),
            )
        )
    return LineQueue(
        line_id=line_id,
        line_name=line.name,
        target_seconds=target,
        total=int(total),
        limit=limit,
        offset=offset,
        tickets=tickets,
    )


def _when(value: dt.datetime | str) -> dt.datetime:
    """A timestamp read through a union (SQLite may hand it back as its stored text)."""
    return value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(value)


async def _next_numbers(session: AsyncSession, line_ids: list[int]) -> dict[int, list[WallNumber]]:
    """The next WALL_NEXT numbers of each line in call order (priority, then longest waiting).

    One statement of small index reads: per line and priority the first few by waiting_since,
    merged here. A sort over a whole queue is never needed.
    """
    if not line_ids:
        return {}
    parts = [
        sa.select(
            _T.c.line_id, _T.c.priority, _T.c.waiting_since, _T.c.id, _T.c.number, _T.c.item_name
        )
        .where(_T.c.line_id == line_id, _T.c.status == TicketStatus.waiting, _T.c.priority == p)
        .order_by(_T.c.waiting_since, _T.c.id)
        .limit(WALL_NEXT)
        .subquery()
        for line_id in line_ids
        for p in PRIORITIES
    ]
    union = sa.union_all(*(sa.select(s) for s in parts))
    rows = (await session.exec(union)).all()  # type: ignore[call-overload]
    by_line: dict[int, list[Any]] = defaultdict(list)
    for row in rows:
        by_line[row.line_id].append(row)
    out = {}
    for line_id, found in by_line.items():
        found.sort(key=lambda r: (-r.priority, _when(r.waiting_since), r.id))
        out[line_id] = [WallNumber(number=r.number, item_name=r.item_name) for r in found][
            :WALL_NEXT
        ]
    return out


async def wall(
    *,
    session: AsyncSession,
    principal: Principal,
    settings: Settings,
    now: dt.datetime,
    hall_id: int | None = None,
) -> WallRead:
    """One hall's wall display (the first hall of my area when none is named)."""
    lines, halls = await _area(session, principal, hall_id)
    if not halls:
        raise NotFound("辖区内的办事大厅", "A hall of your area")
    site = halls[0]
    lines = [ln for ln in lines if ln.site_id == site.id]
    acc = await _gather(session, settings, lines, now)
    upcoming = await _next_numbers(session, sorted(acc))
    out = []
    for line_id, a in acc.items():
        out.append(
            WallLine(
                **_line_read(a, now).model_dump(),
                serving=a.numbers,
                next=upcoming.get(line_id, []),
            )
        )
    return WallRead(
        at=now,
        hall=BoardFigures(**_figures(list(acc.values()), now)),
        site_id=site.id or 0,
        site_name=site.name,
        lines=out,
    )
