"""Statistics rollups: every ticket's figures summed per line per 15-minute slot of taking the
number (`stats_slot`), per local day × line × item × clerk (`stats_day`), and per calendar month
of those (`stats_month`, kept by adding each day row's change).

How they stay current (docs/statistics.md, "Rollups"). A round every
`stats_rollup_interval_seconds` is the node's periodic work (core/jobs.py: one node per
period); within it the round holds the `stats_rollup` row (its watermark) for its transaction,
so rounds never overlap. A round recomputes from the ticket rows every slot that can have
changed since the last one:

- slots of tickets taken since the last round (less a margin for clocks and late commits);
- slots that still had an open ticket or call at the last round (`pending`);
- slots of tickets rated since the last round;

then every (day, line) whose slot rows changed or were pending. A finished ticket never changes
again (each queue action needs an open one), so nothing else can move. Recomputing is
idempotent: a round run twice writes the same rows. The queue's statements are untouched: a
round reads the tickets through their `created_at` and status indexes and writes only its own
tables.
"""

from __future__ import annotations

import asyncio
import bisect
import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel.ext.asyncio.session import AsyncSession

from core.db import UTCDateTime, utcnow
from core.jobs import Every, Jobs, Run
from core.models import Call, CallStatus, CaseEvent, CaseRating, WindowLine
from core.settings import Settings
from signaling.models import Outcome, Ticket, TicketStatus
from supervision import bulk, thresholds
from supervision.models import (
    HOURS,
    STAT_COUNTS,
    STAT_MAXES,
    STAT_SUMS,
    WAIT_BIN_EDGES,
    WAIT_BINS,
    stats_day,
    stats_month,
    stats_rollup,
    stats_slot,
)

SLOT_SECONDS = 15 * 60
# A ticket's created_at is the taking node's clock, committed a moment later: each round looks
# again at tickets taken this long before the last round, so neither skew between nodes nor a
# slow commit lets one slip past.
MARGIN = dt.timedelta(minutes=5)
# A round brings at most this much of a backlog up to date (a first start on old tickets, a
# long outage) and the loop runs the next one at once, so no round holds the database long.
BACKLOG_STEP = dt.timedelta(days=1)
ROLLUP_ROW = 1
# A call is poor when its worst moment was past any of these (packet loss %, round trip ms,
# frames per second): roughly where video stops being usable for showing a document.
POOR_LOSS_PCT = 5.0
POOR_RTT_MS = 400.0
POOR_FPS = 10.0
# Slots of one statement: nearby dirty slots are recomputed together, up to this gap.
SLOT_GAP = 8
IN_CHUNK = 500

MEASURES = (*STAT_COUNTS, *STAT_SUMS, *STAT_MAXES, *WAIT_BINS)
DAY_MEASURES = (*MEASURES, *HOURS)
OPEN = (TicketStatus.waiting, TicketStatus.called, TicketStatus.serving)
TRANSFER_EVENT = "status.transferred"
# Events that say which line a ticket was on: the transfer's source is the one before it.
LINE_EVENTS = ("created", "ticket.taken", TRANSFER_EVENT)

_T = Ticket.__table__  # type: ignore[attr-defined]
_C = Call.__table__  # type: ignore[attr-defined]
_R = CaseRating.__table__  # type: ignore[attr-defined]
_E = CaseEvent.__table__  # type: ignore[attr-defined]
_L = WindowLine.__table__  # type: ignore[attr-defined]


@dataclass
class RollReport:
    claimed: bool = False
    slots: int = 0  # slots recomputed
    day_lines: int = 0  # (day, line) pairs recomputed
    rolled_at: dt.datetime | None = None
    caught_up: bool = True


# -- SQL pieces that differ between SQLite (timestamps as text) and PostgreSQL


def seconds(dialect: str, later: Any, earlier: Any) -> Any:
    """`later - earlier` in seconds; NULL when either is."""
    if dialect == "postgresql":  # a double, not the numeric extract gives (Decimal is slow)
        return sa.cast(sa.func.extract("epoch", later - earlier), sa.Float)
    return (sa.func.julianday(later) - sa.func.julianday(earlier)) * 86400.0


def slot_of(dialect: str, ts: Any) -> Any:
    """The unix second at which the 15-minute slot holding `ts` starts."""
    if dialect == "postgresql":
        epoch = sa.func.floor(sa.func.extract("epoch", ts) / SLOT_SECONDS)
        return sa.cast(epoch, sa.BigInteger) * SLOT_SECONDS
    return sa.cast(sa.func.strftime("%s", ts), sa.Integer) // SLOT_SECONDS * SLOT_SECONDS


def _at(ts: dt.datetime) -> Any:
    return sa.literal(ts, UTCDateTime())


def slot_start(ts: dt.datetime) -> int:
    return int(ts.timestamp()) // SLOT_SECONDS * SLOT_SECONDS


def slot_time(slot: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(slot, dt.UTC)


@dataclass(frozen=True)
class Context:
    """What one round needs beside the session: the backend, the time zone, each line's target."""

    dialect: str
    zone: ZoneInfo
    default_target: int
    targets: dict[int, int]  # lines whose wait target is not the default

    def target(self) -> Any:
        if not self.targets:
            return sa.literal(self.default_target)
        return sa.case(self.targets, value=_T.c.line_id, else_=self.default_target)

    def day_of(self, slot: int) -> dt.date:
        return slot_time(slot).astimezone(self.zone).date()

    def day_bounds(self, day: dt.date) -> tuple[dt.datetime, dt.datetime]:
        start = dt.datetime.combine(day, dt.time(), self.zone).astimezone(dt.UTC)
        end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), self.zone)
        return start, end.astimezone(dt.UTC)


async def context(session: AsyncSession, settings: Settings) -> Context:
    """The backend, the zone, and the wait target each line works to now (its service level)."""
    book = await thresholds.load(session, settings)
    default = book.default["wait_alert_seconds"]
    line_ids = (await session.exec(sa.select(_L.c.id))).scalars().all()  # type: ignore[call-overload]
    own = {i: book.limits(i).wait_seconds for i in line_ids}
    dialect = session.bind.dialect.name if session.bind else "sqlite"
    return Context(
        dialect,
        ZoneInfo(settings.timezone),
        default,
        {k: v for k, v in own.items() if v != default},
    )


# -- what a recomputation reads: one row per ticket, per call, per transfer. The arithmetic on
# timestamps is done by the database, the sums here: a hundred CASE sums cost SQLite ten times
# what reading the rows does, and one pass over the rows feeds both the slot and the day rows.


def _range(lo: dt.datetime, hi: dt.datetime, line_ids: Iterable[int] | None) -> list[Any]:
    where = [_T.c.created_at >= _at(lo), _T.c.created_at < _at(hi)]
    if line_ids is not None:
        where.append(_T.c.line_id.in_(sorted(line_ids)))
    return where


def _ticket_stmt(
    ctx: Context, lo: dt.datetime, hi: dt.datetime, line_ids: Iterable[int] | None
) -> Any:
    d = ctx.dialect
    called_at = sa.func.coalesce(_C.c.created_at, _T.c.called_at)
    return (
        sa.select(
            _T.c.line_id,
            _T.c.item_id,
            sa.func.coalesce(_T.c.called_by, -1),
            slot_of(d, _T.c.created_at),
            _T.c.status,
            _T.c.outcome,
            # from taking the number to the first call on the line it is on (recalls aside)
            seconds(d, called_at, _T.c.waiting_since),
            seconds(d, _T.c.finished_at, _T.c.answered_at),
            sa.case(
                (called_at.is_(None), seconds(d, _T.c.finished_at, _T.c.waiting_since)),
                else_=None,
            ),
            ctx.target(),
            _R.c.score,
        )
        .select_from(
            _T.outerjoin(_C, _C.c.id == _T.c.call_id).outerjoin(_R, _R.c.case_id == _T.c.case_id)
        )
        .where(*_range(lo, hi, line_ids))
    )


def _call_stmt(
    ctx: Context, lo: dt.datetime, hi: dt.datetime, line_ids: Iterable[int] | None
) -> Any:
    d = ctx.dialect
    q = _C.c.quality
    return (
        sa.select(
            _T.c.line_id,
            _T.c.item_id,
            sa.func.coalesce(_T.c.called_by, -1),
            slot_of(d, _T.c.created_at),
            _C.c.status,
            seconds(d, _C.c.connected_at, _C.c.created_at),
            seconds(d, _C.c.first_media_at, _C.c.created_at),
            seconds(d, _C.c.ended_at, _C.c.connected_at),
            q["rtt_ms"].as_float(),
            q["packet_loss_pct"].as_float(),
            q["fps"].as_float(),
        )
        .select_from(_C.join(_T, _T.c.id == _C.c.ticket_id))
        .where(*_range(lo, hi, line_ids))
    )


def _transfer_stmt(ctx: Context, lo: dt.datetime, hi: dt.datetime) -> Any:
    """Transfers of the tickets taken in [lo, hi): (line left, item, clerk who moved it, slot).

    Only tickets that were transferred are read further: such a ticket has a call that is not
    its current one (each visit to a line is called at most once; a transfer starts a visit).
    The line a transfer left is the one named by the ticket's line event before it.
    """
    moved = sa.exists().where(
        _C.c.ticket_id == _T.c.id, sa.or_(_T.c.call_id.is_(None), _C.c.id != _T.c.call_id)
    )
    line = _E.c.data["line"].as_string()
    ev = (
        sa.select(
            _E.c.kind.label("kind"),
            sa.func.coalesce(_E.c.actor_id, -1).label("clerk_id"),
            sa.func.lag(line).over(partition_by=_E.c.case_id, order_by=_E.c.id).label("code"),
            _T.c.item_id.label("item_id"),
            slot_of(ctx.dialect, _T.c.created_at).label("slot"),
        )
        .select_from(_E.join(_T, _T.c.case_id == _E.c.case_id))
        .where(*_range(lo, hi, None), moved, _E.c.kind.in_(LINE_EVENTS))
        .subquery("e")
    )
    return (
        sa.select(_L.c.id, ev.c.item_id, ev.c.clerk_id, ev.c.slot)
        .select_from(ev.join(_L, _L.c.code == ev.c.code))
        .where(ev.c.kind == TRANSFER_EVENT)
    )


@dataclass
class Rows:
    """The rows one recomputation folds: tickets, calls, transfers."""

    tickets: list[Any]
    calls: list[Any]
    transfers: list[Any]


async def fetch(
    session: AsyncSession,
    ctx: Context,
    lo: dt.datetime,
    hi: dt.datetime,
    line_ids: Iterable[int] | None = None,
) -> Rows:
    """Every ticket taken in [lo, hi) (of the lines, if given), its calls and transfers."""
    lines = set(line_ids) if line_ids is not None else None
    tickets = (await session.exec(_ticket_stmt(ctx, lo, hi, lines))).all()  # type: ignore[call-overload]
    calls = (await session.exec(_call_stmt(ctx, lo, hi, lines))).all()  # type: ignore[call-overload]
    moves = (await session.exec(_transfer_stmt(ctx, lo, hi))).all()  # type: ignore[call-overload]
    if lines is not None:
        moves = [m for m in moves if m[0] in lines]
    return Rows(list(tickets), list(calls), list(moves))


# Positions of the measures in a folded row (a list, for speed: a day is thousands of tickets).
POS = {n: i for i, n in enumerate(DAY_MEASURES)}
FLOAT = frozenset(POS[n] for n in (*STAT_SUMS, *STAT_MAXES))
MAX_POS = POS["wait_max"]
_P = POS
_OPEN = frozenset(str(s) for s in OPEN)
_OUTCOME = {str(o): _P[str(o)] for o in (Outcome.completed, Outcome.accepted, Outcome.returned)}
_SCORE = {k: _P[f"r{k}"] for k in range(1, 6)}
_BIN0 = _P[WAIT_BINS[0]]
_HOUR0 = _P[HOURS[0]]
YIELD_EVERY = 2000  # rows folded between two turns of the event loop


def _new() -> list[Any]:
    return [0.0 if i in FLOAT else 0 for i in range(len(DAY_MEASURES))]


async def fold(
    rows: Rows, *, slots: bool, day0: int | None = None
) -> dict[tuple[int, ...], list[Any]]:
    """The rows summed by (slot, line), or by (line, item, clerk) with the hours counted from
    `day0` (the unix second of the local day's start)."""
    out: dict[tuple[int, ...], list[Any]] = {}

    def acc(line: int, item: int, clerk: int, slot: int) -> list[Any]:
        key = (int(slot), int(line)) if slots else (int(line), int(item), int(clerk))
        row = out.get(key)
        if row is None:
            row = out[key] = _new()
        return row

    for n, (
        line,
        item,
        clerk,
        slot,
        status,
        outcome,
        wait,
        handle,
        gave_up,
        target,
        score,
    ) in enumerate(rows.tickets):
        if n % YIELD_EVERY == YIELD_EVERY - 1:
            await asyncio.sleep(0)
        r = acc(line, item, clerk, slot)
        r[_P["taken"]] += 1
        if status == TicketStatus.done:
            r[_P["served"]] += 1
            if outcome in _OUTCOME:
                r[_OUTCOME[outcome]] += 1
            if handle is not None:
                r[_P["handled"]] += 1
                r[_P["handle_sum"]] += float(handle)
        elif status == TicketStatus.no_show:
            r[_P["no_show"]] += 1
        elif status == TicketStatus.cancelled:
            r[_P["cancelled"]] += 1
            if gave_up is not None and float(gave_up) > target:
                r[_P["abandoned_late"]] += 1
        if status in _OPEN:
            r[_P["open_tickets"]] += 1
        if wait is not None:
            w = float(wait)
            r[_P["called"]] += 1
            r[_P["wait_sum"]] += w
            if w > r[MAX_POS]:
                r[MAX_POS] = w
            if w <= target:
                r[_P["within_target"]] += 1
            r[_BIN0 + bisect.bisect_left(WAIT_BIN_EDGES, w)] += 1
        if score is not None:
            r[_P["rated"]] += 1
            r[_SCORE[int(score)]] += 1
        if day0 is not None:
            r[_HOUR0 + min(23, max(0, (int(slot) - day0) // 3600))] += 1
    for n, (line, item, clerk, slot, status, setup, media, duration, rtt, loss, fps) in enumerate(
        rows.calls
    ):
        if n % YIELD_EVERY == YIELD_EVERY - 1:
            await asyncio.sleep(0)
        r = acc(line, item, clerk, slot)
        r[_P["calls"]] += 1
        if status != CallStatus.ended:
            r[_P["calls_open"]] += 1
        if setup is not None:
            r[_P["calls_connected"]] += 1
            r[_P["setup_sum"]] += float(setup)
        if media is not None:
            r[_P["calls_media"]] += 1
            r[_P["media_sum"]] += float(media)
        if duration is not None:
            r[_P["calls_timed"]] += 1
            r[_P["duration_sum"]] += float(duration)
        if rtt is not None:
            r[_P["calls_rtt"]] += 1
            r[_P["rtt_sum"]] += float(rtt)
        if loss is not None:
            r[_P["calls_loss"]] += 1
            r[_P["loss_sum"]] += float(loss)
        poor = (
            (loss is not None and loss > POOR_LOSS_PCT)
            or (rtt is not None and rtt > POOR_RTT_MS)
            or (fps is not None and fps < POOR_FPS)
        )
        if poor:
            r[_P["calls_poor"]] += 1
    for line, item, clerk, slot in rows.transfers:
        acc(line, item, clerk, slot)[_P["transferred"]] += 1
    return out


# -- writing


def with_sets(finest: dict[tuple[int, ...], list[Any]]) -> dict[tuple[int, ...], list[Any]]:
    """The finest (line, item, clerk) rows and the coarser sets beside them (0 = all)."""
    out: dict[tuple[int, ...], list[Any]] = dict(finest)
    for (line, item, clerk), row in finest.items():
        for key in ((line, item, 0), (line, 0, clerk), (line, 0, 0)):
            acc = out.get(key)
            if acc is None:
                out[key] = list(row)
                continue
            top = max(acc[MAX_POS], row[MAX_POS])
            acc[:] = [a + b for a, b in zip(acc, row, strict=True)]
            acc[MAX_POS] = top
    return out


def _chunks(values: list[Any]) -> Iterable[list[Any]]:
    for i in range(0, len(values), IN_CHUNK):
        yield values[i : i + IN_CHUNK]


def slot_runs(slots: Iterable[int]) -> list[tuple[int, int]]:
    """Dirty slots as runs [first, last] merged across small gaps."""
    runs: list[tuple[int, int]] = []
    for s in sorted(set(slots)):
        if runs and s - runs[-1][1] <= SLOT_GAP * SLOT_SECONDS:
            runs[-1] = (runs[-1][0], s)
        else:
            runs.append((s, s))
    return runs


N_SLOT = len(MEASURES)  # a slot row keeps the measures without the hours
_PENDING_POS = (_P["open_tickets"], _P["calls_open"])


async def write_slots(
    session: AsyncSession,
    ctx: Context,
    first: int,
    last: int,
    new: dict[tuple[int, ...], list[Any]],
) -> dict[dt.date, set[int]]:
    """Replace the slot rows of [first, last] by `new`; the (day -> lines) whose day rows must
    follow (a slot row that changed, appeared, went or was pending)."""
    follow: dict[dt.date, set[int]] = defaultdict(set)
    in_run = sa.and_(stats_slot.c.slot >= first, stats_slot.c.slot <= last)
    cols = [stats_slot.c[n] for n in ("slot", "line_id", "pending", *MEASURES)]
    old = {
        (int(r[0]), int(r[1])): tuple(r[2:])
        for r in await session.exec(sa.select(*cols).where(in_run))  # type: ignore[call-overload]
    }
    await session.exec(sa.delete(stats_slot).where(in_run))  # type: ignore[call-overload]
    rows = []
    for key, m in new.items():
        pending = sum(m[i] for i in _PENDING_POS)
        row = (pending, *m[:N_SLOT])
        rows.append((*key, *row))
        was = old.get(key)
        if was is None or was[0] or tuple(was) != row:
            follow[ctx.day_of(key[0])].add(key[1])
    for key in old.keys() - new.keys():
        follow[ctx.day_of(key[0])].add(key[1])
    await bulk.insert_rows(session, stats_slot, rows, [c.name for c in cols])
    return follow


async def recompute_slots(
    session: AsyncSession, ctx: Context, runs: Iterable[tuple[int, int]]
) -> dict[dt.date, set[int]]:
    """Recompute the runs of slots [first, last] on every line (see write_slots)."""
    follow: dict[dt.date, set[int]] = defaultdict(set)
    for first, last in runs:
        lo, hi = slot_time(first), slot_time(last + SLOT_SECONDS)
        new = await fold(await fetch(session, ctx, lo, hi), slots=True)
        for day, lines in (await write_slots(session, ctx, first, last, new)).items():
            follow[day] |= lines
    return follow


Months = dict[tuple[dt.date, int, int, int], list[Any]]  # (month, item, clerk, line) -> change


def month_of(day: dt.date) -> dt.date:
    return day.replace(day=1)


async def write_day(
    session: AsyncSession,
    day: dt.date,
    lines: set[int] | None,
    finest: dict[tuple[int, ...], list[Any]],
    months: Months,
) -> int:
    """Replace the day rows of the lines (None: every line) by `finest` and its sets, and add
    what changed to `months` (applied by apply_months)."""
    c = stats_day.c
    where = [c.day == day]
    chunks = [None] if lines is None else list(_chunks(sorted(lines)))
    old: dict[tuple[int, int, int], tuple[Any, ...]] = {}
    for chunk in chunks:
        w = where if chunk is None else [*where, c.line_id.in_(chunk)]
        q = sa.select(c.line_id, c.item_id, c.clerk_id, *(c[n] for n in MEASURES)).where(*w)
        for r in await session.exec(q):  # type: ignore[call-overload]
            old[(int(r[0]), int(r[1]), int(r[2]))] = tuple(r[3:])
        await session.exec(sa.delete(stats_day).where(*w))  # type: ignore[call-overload]
    cols = ["item_id", "clerk_id", "day", "line_id", *DAY_MEASURES]
    sets = with_sets(finest)
    # Written set by set (every line's day row first, then per item, per clerk, the finest):
    # a query reads one set over many days, and finds each day's rows of it on a few pages.
    rows = sorted((item, clerk, day, line, *m) for (line, item, clerk), m in sets.items())
    await bulk.insert_rows(session, stats_day, rows, cols)
    month = month_of(day)
    zero = (0,) * N_SLOT
    for key in sets.keys() | old.keys():
        new = sets[key][:N_SLOT] if key in sets else zero
        was = old.get(key, zero)
        change = [a - b for a, b in zip(new, was, strict=True)]
        change[MAX_POS] = 0.0
        if any(change):
            line, item, clerk = key
            acc = months.get((month, item, clerk, line))
            if acc is None:
                months[(month, item, clerk, line)] = change
            else:
                acc[:] = [a + b for a, b in zip(acc, change, strict=True)]
    return len({k[0] for k in finest}) if lines is None else len(lines)


async def apply_months(session: AsyncSession, months: Months) -> None:
    """Add the day rows' changes to the month rows (an upsert that adds on both backends)."""
    if not months:
        return
    dialect = session.bind.dialect.name if session.bind else "sqlite"
    ins = (postgresql if dialect == "postgresql" else sqlite).insert(stats_month)
    stmt = ins.on_conflict_do_update(
        index_elements=["item_id", "clerk_id", "month", "line_id"],
        set_={n: stats_month.c[n] + ins.excluded[n] for n in MEASURES},
    )
    rows = [
        {
            "month": m,
            "item_id": i,
            "clerk_id": k,
            "line_id": ln,
            **dict(zip(MEASURES, v, strict=True)),
        }
        for (m, i, k, ln), v in months.items()
    ]
    for start in range(0, len(rows), 5000):
        await session.exec(stmt, params=rows[start : start + 5000])  # type: ignore[call-overload]
    months.clear()


async def recompute_days(
    session: AsyncSession, ctx: Context, days: dict[dt.date, set[int] | None]
) -> int:
    """Recompute the day rows of the given lines (None: every line) of each day, and their
    months."""
    pairs = 0
    months: Months = {}
    for day, lines in sorted(days.items()):
        lo, hi = ctx.day_bounds(day)
        rows = await fetch(session, ctx, lo, hi, lines)
        finest = await fold(rows, slots=False, day0=int(lo.timestamp()))
        pairs += await write_day(session, day, lines, finest, months)
    await apply_months(session, months)
    return pairs


# -- rounds


async def _claim(
    session: AsyncSession, now: dt.datetime, interval: float, node_id: str
) -> tuple[bool, dt.datetime | None]:
    """Take this round, or learn that another node has it or had it too recently."""
    await _ensure_row(session)
    q = sa.select(stats_rollup.c.rolled_at).where(stats_rollup.c.id == ROLLUP_ROW)
    # Another node in the middle of a round holds the row: skip, do not queue behind it.
    row = (await session.exec(q.with_for_update(skip_locked=True))).first()  # type: ignore[call-overload]
    if row is None:
        return False, None
    last: dt.datetime | None = row[0]
    if last is not None and last > now - dt.timedelta(seconds=interval / 2):
        return False, last
    return True, last


async def _ensure_row(session: AsyncSession) -> None:
    dialect = session.bind.dialect.name if session.bind else "sqlite"
    ins = (postgresql if dialect == "postgresql" else sqlite).insert(stats_rollup)
    await session.exec(  # type: ignore[call-overload]
        ins.values(id=ROLLUP_ROW, rolled_at=None, rolled_by_node="").on_conflict_do_nothing()
    )


async def _mark(session: AsyncSession, at: dt.datetime, node_id: str) -> None:
    await session.exec(  # type: ignore[call-overload]
        sa.update(stats_rollup)
        .where(stats_rollup.c.id == ROLLUP_ROW)
        .values(rolled_at=at, rolled_by_node=node_id[:100])
    )


async def rolled_at(session: AsyncSession) -> dt.datetime | None:
    """Until when every ticket is in the rollups."""
    q = sa.select(stats_rollup.c.rolled_at).where(stats_rollup.c.id == ROLLUP_ROW)
    return (await session.exec(q)).scalar()  # type: ignore[call-overload]


async def _first_ticket(session: AsyncSession) -> dt.datetime | None:
    return (await session.exec(sa.select(sa.func.min(_T.c.created_at)))).scalar()  # type: ignore[call-overload]


async def roll(
    *,
    session: AsyncSession,
    settings: Settings,
    now: dt.datetime | None = None,
    node_id: str = "",
    force: bool = False,
) -> RollReport:
    """One round, unless another node did one within half an interval (`force`: regardless).

    Does not commit: the caller's unit of work does, which also ends the claim.
    """
    now = now or utcnow()
    interval = 0.0 if force else settings.stats_rollup_interval_seconds
    claimed, last = await _claim(session, now, interval, node_id)
    if not claimed:
        return RollReport(rolled_at=last)
    if last is None:
        last = await _first_ticket(session) or now
    since = last - MARGIN
    upto = min(now, last + BACKLOG_STEP)
    ctx = await context(session, settings)
    d = ctx.dialect
    slots: set[int] = set()
    new = sa.select(slot_of(d, _T.c.created_at)).where(*_range(since, upto, None)).distinct()
    slots.update(int(s) for s in (await session.exec(new)).scalars())  # type: ignore[call-overload]
    pending = sa.select(stats_slot.c.slot).where(stats_slot.c.pending > 0)
    slots.update(int(s) for s in (await session.exec(pending)).scalars())  # type: ignore[call-overload]
    rated = (
        sa.select(slot_of(d, _T.c.created_at))
        .select_from(_R.join(_T, _T.c.case_id == _R.c.case_id))
        .where(_R.c.rated_at >= _at(since))
        .distinct()
    )
    slots.update(int(s) for s in (await session.exec(rated)).scalars())  # type: ignore[call-overload]
    follow = await recompute_slots(session, ctx, slot_runs(slots))
    pairs = await recompute_days(session, ctx, dict(follow))
    await _mark(session, upto, node_id)
    return RollReport(
        claimed=True, slots=len(slots), day_lines=pairs, rolled_at=upto, caught_up=upto >= now
    )


async def rebuild(
    *, session: AsyncSession, settings: Settings, start: dt.datetime, end: dt.datetime
) -> RollReport:
    """Recompute every slot and day of the local days touching [start, end) from the ticket
    rows (after a bulk load), a day at a time so memory stays flat at a year of tickets.

    Does not commit. Rollups that were behind `end` are then as of `end`; never rolled ones
    first take in every ticket there is.
    """
    ctx = await context(session, settings)
    last = await rolled_at(session)
    if last is None:
        start = min(start, await _first_ticket(session) or start)
    report = RollReport(claimed=True)
    months: Months = {}
    day = start.astimezone(ctx.zone).date()
    while (bounds := ctx.day_bounds(day))[0] < end:
        lo, hi = bounds
        rows = await fetch(session, ctx, lo, hi)
        s0, s1 = slot_start(lo), slot_start(hi) - SLOT_SECONDS
        await write_slots(session, ctx, s0, s1, await fold(rows, slots=True))
        finest = await fold(rows, slots=False, day0=int(lo.timestamp()))
        report.day_lines += await write_day(session, day, None, finest, months)
        if month_of(day + dt.timedelta(days=1)) != month_of(day):
            await apply_months(session, months)
        report.slots += (s1 - s0) // SLOT_SECONDS + 1
        day += dt.timedelta(days=1)
    await apply_months(session, months)
    await _ensure_row(session)
    if last is None or last < end:
        await _mark(session, end, "rebuild")
    report.rolled_at = await rolled_at(session)
    return report


JOB = "statistics.rollup"
LEASE = dt.timedelta(minutes=5)


async def _rollup_job(run: Run, *, settings: Settings) -> dict[str, Any]:
    """A period's round (and, after an outage, the rounds that catch the backlog up), each
    step its own transaction."""
    done = RollReport(claimed=False)
    while True:
        async with run.db.session() as session:
            report = await roll(
                session=session, settings=settings, now=run.now(), node_id=run.node_id, force=True
            )
            await session.commit()
        done.slots += report.slots
        done.day_lines += report.day_lines
        done.rolled_at = report.rolled_at or done.rolled_at
        if not report.claimed or report.caught_up:
            break
        await asyncio.sleep(0)
    return {
        "slots": done.slots,
        "day_lines": done.day_lines,
        "rolled_at": done.rolled_at.isoformat() if done.rolled_at else None,
    }


def register_jobs(jobs: Jobs, *, settings: Settings) -> None:
    """The rollup as the node's periodic work: one round per interval across every node."""
    every = Every(max(1, round(settings.stats_rollup_interval_seconds)))
    jobs.add(JOB, every, partial(_rollup_job, settings=settings), lease=LEASE)
