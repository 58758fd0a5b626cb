"""Tidal windows (潮汐窗口): the clerks each line needs now, and which clerks can be moved.

For every line: arrivals λ are the tickets taken in the last window blended with the same
weekday and time in past weeks; the handling time is measured from the line's served tickets
(the default until there are enough); N is the clerks online on the line. Erlang C
(supervision/erlang.py) gives the service level SL(N) against the line's wait target and the
clerks needed to reach the goal level. A line is short when SL(N) is below the goal.

A move is suggested only for a line short now and short in the window before (kept in
tidal_shortfall, so every node and a restarted one agree), from a line that stays at or above
its own goal without the clerk, for a clerk who fits the target (same department elsewhere,
a skill naming it, or a comprehensive window) and is not on a move or just back from one.
The rule is pure (`suggest`) over what `assess` and `candidates` read.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from sqlalchemy import and_, case, delete, func
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.access import Principal, lines_in_scope, may_see_line
from core.models import Department, Role, Staff, StaffLine, WindowLine
from core.settings import Settings
from signaling.models import Presence, PresenceStatus, Ticket, TicketStatus
from supervision import erlang, thresholds
from supervision.models import (
    TidalFit,
    TidalLineRead,
    TidalMove,
    TidalShortfall,
    TidalStatus,
    TidalSuggestion,
)

# Erlang C assumes steady arrivals and many servers; with fewer clerks it sizes roughly.
ROUGH_BELOW = 5
# Served tickets a line needs before its own mean handling time replaces the default, and how
# far back they are read (a week of a line's work; older habits say less about today).
MIN_HANDLING_SAMPLES = 5
HANDLING_DAYS = 7
# The skill that qualifies a clerk for every department (一窗受理 / comprehensive window).
COMPREHENSIVE = "综合窗口"
# Shortfall rows older than this are pruned: only the previous window's is ever read.
KEEP_SHORTFALL = dt.timedelta(days=2)
FIT_ORDER = {TidalFit.department: 0, TidalFit.skill: 1, TidalFit.qualification: 2}


# -- windows and the blend


def window_start(now: dt.datetime, *, minutes: int, tz: str) -> dt.datetime:
    """The start (UTC) of the window holding `now`; windows run from local midnight."""
    local = now.astimezone(ZoneInfo(tz))
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    k = int((local - midnight).total_seconds() // (minutes * 60))
    return (midnight + dt.timedelta(minutes=k * minutes)).astimezone(dt.UTC)


def previous_window(start: dt.datetime, *, minutes: int, tz: str) -> dt.datetime:
    return window_start(start - dt.timedelta(seconds=1), minutes=minutes, tz=tz)


def default_until(now: dt.datetime, settings: Settings) -> dt.datetime:
    """Now plus the default stay, rounded up to a window boundary, within the allowed stay."""
    w = settings.tidal_window_minutes
    want = now + dt.timedelta(minutes=settings.tidal_default_stay_minutes)
    start = window_start(want, minutes=w, tz=settings.timezone)
    until = start if start == want else start + dt.timedelta(minutes=w)
    low = now + dt.timedelta(minutes=settings.tidal_min_stay_minutes)
    high = now + dt.timedelta(minutes=settings.tidal_max_stay_minutes)
    return min(max(until, low), high)


def blend(current: float, history: list[float], weight: float) -> float:
    """weight x current + (1 - weight) x the mean of history; current alone without history."""
    if not history:
        return current
    return weight * current + (1 - weight) * sum(history) / len(history)


# -- one line's state


@dataclass
class LineState:
    """What the sizing of one line reads, and what Erlang C makes of it."""

    line_id: int
    line_name: str
    department: str
    department_name: str
    current_per_hour: float
    history: list[float]  # per hour, one per past week that had the line open that day
    arrivals_per_hour: float
    handling_seconds: int
    handling_measured: bool
    waiting: int
    clerks: int
    target_seconds: int
    target_level: float

    def sl(self, clerks: int) -> float:
        return erlang.service_level(
            clerks, self.arrivals_per_hour / 3600, self.handling_seconds, self.target_seconds
        )

    @property
    def needed(self) -> int:
        return erlang.agents_needed(
            self.arrivals_per_hour / 3600,
            self.handling_seconds,
            self.target_seconds,
            self.target_level,
        )

    @property
    def short(self) -> bool:
        return self.sl(self.clerks) < self.target_level

    def read(self, *, short_before: bool) -> TidalLineRead:
        h = self.history
        return TidalLineRead(
            line_id=self.line_id,
            line_name=self.line_name,
            department=self.department,
            department_name=self.department_name,
            current_per_hour=round(self.current_per_hour, 2),
            history_per_hour=round(sum(h) / len(h), 2) if h else None,
            history_weeks=len(h),
            arrivals_per_hour=round(self.arrivals_per_hour, 2),
            handling_seconds=self.handling_seconds,
            handling_measured=self.handling_measured,
            waiting=self.waiting,
            clerks=self.clerks,
            needed=self.needed,
            service_level=round(self.sl(self.clerks), 4),
            target_seconds=self.target_seconds,
            target_level=self.target_level,
            short_now=self.short,
            short_before=short_before,
            rough=self.clerks < ROUGH_BELOW or self.needed < ROUGH_BELOW,
        )


@dataclass
class Candidate:
    """An online clerk who could be moved: their lines and skills."""

    staff_id: int
    name: str
    skills: tuple[str, ...]
    line_ids: frozenset[int]


@dataclass
class Situation:
    """The running moves, as the rule needs them."""

    on_move: dict[int, int] = field(default_factory=dict)  # clerk on an active move -> target
    back_recently: set[int] = field(default_factory=set)  # moves ended within the minimum stay
    receiving: set[int] = field(default_factory=set)  # lines given a clerk by an active move
    giving: set[int] = field(default_factory=set)  # lines a clerk was moved from


# -- reading


def _local_day(at: dt.datetime, tz: str) -> tuple[dt.datetime, dt.datetime]:
    local = at.astimezone(ZoneInfo(tz))
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    return midnight.astimezone(dt.UTC), (midnight + dt.timedelta(days=1)).astimezone(dt.UTC)


async def _history(
    session: AsyncSession, settings: Settings, line_ids: list[int], now: dt.datetime
) -> dict[int, list[float]]:
    """Per line, tickets per hour in the same clock window of the same weekday, past weeks.

    A week counts only if the line took any ticket that day: a closed day (a holiday) says
    nothing about demand. One GROUP BY per week over the created_at index.
    """
    window = dt.timedelta(minutes=settings.tidal_window_minutes)
    per_hour = 60 / settings.tidal_window_minutes
    out: dict[int, list[float]] = defaultdict(list)
    zone = ZoneInfo(settings.timezone)
    for k in range(1, settings.tidal_history_weeks + 1):
        at = (now.astimezone(zone) - dt.timedelta(days=7 * k)).astimezone(dt.UTC)
        day0, day1 = _local_day(at, settings.timezone)
        created = col(Ticket.created_at)
        in_slot = case((and_(created > at - window, created <= at), 1), else_=0)
        rows = await session.exec(
            select(Ticket.line_id, func.count(), func.sum(in_slot))
            .where(created >= day0, created < day1, col(Ticket.line_id).in_(line_ids))
            .group_by(col(Ticket.line_id))
        )
        for line_id, day_count, slot_count in rows.all():
            if day_count:
                out[line_id].append(float(slot_count or 0) * per_hour)
    return out


async def _handling(
    session: AsyncSession, line_ids: list[int], now: dt.datetime
) -> dict[int, tuple[float, int]]:
    """Per line, the mean answered-to-finished time of served tickets of the last week."""
    answered, finished = col(Ticket.answered_at), col(Ticket.finished_at)
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        span = func.extract("epoch", finished - answered)
    else:
        span = (func.julianday(finished) - func.julianday(answered)) * 86400.0
    rows = await session.exec(
        select(Ticket.line_id, func.avg(span), func.count())
        .where(
            Ticket.status == TicketStatus.done,
            answered.is_not(None),
            finished.is_not(None),
            col(Ticket.created_at) >= now - dt.timedelta(days=HANDLING_DAYS),
            col(Ticket.line_id).in_(line_ids),
        )
        .group_by(col(Ticket.line_id))
    )
    return {line_id: (float(avg or 0), int(n)) for line_id, avg, n in rows.all()}


async def situation(session: AsyncSession, settings: Settings, now: dt.datetime) -> Situation:
    s = Situation()
    for m in await session.exec(select(TidalMove).where(TidalMove.status == TidalStatus.active)):
        s.on_move[m.staff_id] = m.to_line_id
        s.receiving.add(m.to_line_id)
        s.giving.add(m.from_line_id)
    since = now - dt.timedelta(minutes=settings.tidal_min_stay_minutes)
    back = await session.exec(
        select(TidalMove.staff_id).where(
            TidalMove.status == TidalStatus.ended, col(TidalMove.ended_at) >= since
        )
    )
    s.back_recently = set(back.all())
    return s


async def _online_clerks(
    session: AsyncSession, settings: Settings, now: dt.datetime
) -> dict[int, set[int]]:
    """Clerks online now (available or busy, not away) -> the lines they are bound to."""
    fresh = now - dt.timedelta(seconds=settings.presence_ttl_seconds)
    rows = await session.exec(
        select(Presence.staff_id, StaffLine.line_id)
        .join(StaffLine, col(StaffLine.staff_id) == col(Presence.staff_id))
        .join(Staff, col(Staff.id) == col(Presence.staff_id))
        .where(
            col(Presence.updated_at) >= fresh,
            Presence.status != PresenceStatus.away,
            Staff.role == Role.clerk,
            col(Staff.active),
        )
        .distinct()
    )
    out: dict[int, set[int]] = defaultdict(set)
    for staff_id, line_id in rows.all():
        out[staff_id].add(line_id)
    return out


async def assess(
    *,
    session: AsyncSession,
    settings: Settings,
    lines: list[WindowLine],
    now: dt.datetime,
    moves: Situation | None = None,
) -> dict[int, LineState]:
    """Every line's arrivals, handling time, clerks online and target, as of `now`."""
    ids = [ln.id for ln in lines if ln.id is not None]
    if not ids:
        return {}
    moves = moves or await situation(session, settings, now)
    names = {d.code: d.name for d in (await session.exec(select(Department))).all()}
    window = dt.timedelta(minutes=settings.tidal_window_minutes)
    per_hour = 60 / settings.tidal_window_minutes
    created = col(Ticket.created_at)
    current = dict(
        (
            await session.exec(
                select(Ticket.line_id, func.count())
                .where(created > now - window, created <= now, col(Ticket.line_id).in_(ids))
                .group_by(col(Ticket.line_id))
            )
        ).all()
    )
    waiting = dict(
        (
            await session.exec(
                select(Ticket.line_id, func.count())
                .where(Ticket.status == TicketStatus.waiting, col(Ticket.line_id).in_(ids))
                .group_by(col(Ticket.line_id))
            )
        ).all()
    )
    history = await _history(session, settings, ids, now)
    handling = await _handling(session, ids, now)
    clerks: dict[int, int] = defaultdict(int)
    for staff_id, line_ids in (await _online_clerks(session, settings, now)).items():
        # A clerk on a move counts on its target only: that is where their time goes.
        target = moves.on_move.get(staff_id)
        for line_id in [target] if target is not None else line_ids:
            clerks[line_id] += 1
    book = await thresholds.load(session, settings)
    out = {}
    for ln in lines:
        lid = ln.id or 0
        now_rate = float(current.get(lid, 0)) * per_hour
        past = history.get(lid, [])
        avg, samples = handling.get(lid, (0.0, 0))
        measured = samples >= MIN_HANDLING_SAMPLES and avg > 0
        out[lid] = LineState(
            line_id=lid,
            line_name=ln.name,
            department=ln.department,
            department_name=names.get(ln.department, ln.department),
            current_per_hour=now_rate,
            history=past,
            arrivals_per_hour=blend(now_rate, past, settings.tidal_current_weight),
            handling_seconds=round(avg) if measured else settings.default_handling_seconds,
            handling_measured=measured,
            waiting=int(waiting.get(lid, 0)),
            clerks=clerks.get(lid, 0),
            target_seconds=book.limits(lid).wait_seconds,
            target_level=settings.tidal_service_level,
        )
    return out


async def short_before(
    session: AsyncSession, settings: Settings, line_ids: list[int], now: dt.datetime
) -> set[int]:
    """Lines whose assessment in the previous window found them short."""
    w, tz = settings.tidal_window_minutes, settings.timezone
    before = previous_window(window_start(now, minutes=w, tz=tz), minutes=w, tz=tz)
    rows = await session.exec(
        select(TidalShortfall.line_id).where(
            TidalShortfall.window_start == before,
            col(TidalShortfall.short),
            col(TidalShortfall.line_id).in_(line_ids),
        )
    )
    return set(rows.all())


async def record(
    *, session: AsyncSession, settings: Settings, states: dict[int, LineState], now: dt.datetime
) -> int:
    """Write this window's assessment of each line (the last one in a window wins)."""
    start = window_start(now, minutes=settings.tidal_window_minutes, tz=settings.timezone)
    rows = [
        {
            "line_id": s.line_id,
            "window_start": start,
            "arrivals_per_hour": round(s.arrivals_per_hour, 3),
            "handling_seconds": s.handling_seconds,
            "clerks": s.clerks,
            "needed": s.needed,
            "service_level": round(s.sl(s.clerks), 4),
            "short": s.short,
            "updated_at": now,
        }
        for s in states.values()
    ]
    if rows:
        dialect = session.bind.dialect.name if session.bind else "sqlite"
        ins = (postgresql if dialect == "postgresql" else sqlite).insert(TidalShortfall)
        keep = ("arrivals_per_hour", "handling_seconds", "clerks", "needed", "service_level")
        stmt = ins.on_conflict_do_update(
            index_elements=["line_id", "window_start"],
            set_={k: getattr(ins.excluded, k) for k in (*keep, "short", "updated_at")},
        )
        await session.exec(stmt, params=rows)  # type: ignore[call-overload]
    old = col(TidalShortfall.updated_at) < now - KEEP_SHORTFALL  # through its index
    await session.exec(delete(TidalShortfall).where(old))  # type: ignore[call-overload]
    return len(rows)


async def candidates(
    session: AsyncSession, settings: Settings, now: dt.datetime, moves: Situation
) -> list[Candidate]:
    """Online clerks not on a move and not just back from one, with their lines and skills."""
    online = await _online_clerks(session, settings, now)
    ids = [i for i in online if i not in moves.on_move and i not in moves.back_recently]
    if not ids:
        return []
    staff = (await session.exec(select(Staff).where(col(Staff.id).in_(ids)))).all()
    return sorted(
        (
            Candidate(
                staff_id=s.id or 0,
                name=s.display_name,
                skills=tuple(s.skills or ()),
                line_ids=frozenset(online[s.id or 0]),
            )
            for s in staff
        ),
        key=lambda c: c.staff_id,
    )


# -- the rule


def fit(
    c: Candidate, target: LineState, states: dict[int, LineState], names: set[str]
) -> TidalFit | None:
    """How the clerk qualifies for the target's department, if at all.

    `names` are the target department's code, name and English name.
    """
    if any(states[i].department == target.department for i in c.line_ids if i in states):
        return TidalFit.department
    if names & set(c.skills):
        return TidalFit.skill
    if COMPREHENSIVE in c.skills:
        return TidalFit.qualification
    return None


def suggest(
    *,
    states: dict[int, LineState],
    before: set[int],
    candidates: list[Candidate],
    moves: Situation,
    department_names: dict[str, set[str]],
    until: dt.datetime,
) -> list[TidalSuggestion]:
    """The moves to make now, worst line first, each from the donor that keeps most slack.

    `states` are the lines the caller may act on (targets and donors alike). A target is short
    now and was short in the previous window (`before`) and gave no clerk in a running move; a
    donor is not short, received no clerk in a running move, keeps at least its goal level
    without the clerk (the donor floor), and the clerk fits the target. The clerk counts fully
    on the target after the move and not at all on the donor: the donor's loss is overstated,
    so the floor errs on the safe side (the clerk keeps serving their own line too).
    """
    clerks = {lid: s.clerks for lid, s in states.items()}
    used: set[int] = set()
    out: list[TidalSuggestion] = []
    targets = sorted(
        (
            s
            for s in states.values()
            if s.line_id in before and s.short and s.line_id not in moves.giving
        ),
        key=lambda s: (s.sl(s.clerks), s.line_id),
    )
    for t in targets:
        names = department_names.get(t.department, {t.department})
        while clerks[t.line_id] < t.needed:
            best: tuple[tuple[int, float, int], Candidate, LineState, TidalFit] | None = None
            for c in candidates:
                if c.staff_id in used or t.line_id in c.line_ids:
                    continue
                how = fit(c, t, states, names)
                if how is None:
                    continue
                for lid in sorted(c.line_ids):
                    d = states.get(lid)
                    if d is None or lid in moves.receiving or d.short:
                        continue
                    after = d.sl(clerks[lid] - 1) if clerks[lid] >= 1 else 0.0
                    if clerks[lid] < 1 or after < d.target_level:
                        continue  # the donor floor
                    key = (FIT_ORDER[how], -after, c.staff_id)
                    if best is None or key < best[0]:
                        best = (key, c, d, how)
            if best is None:
                break
            _key, c, d, how = best
            used.add(c.staff_id)
            n_t, n_d = clerks[t.line_id], clerks[d.line_id]
            out.append(
                TidalSuggestion(
                    staff_id=c.staff_id,
                    staff_name=c.name,
                    from_line_id=d.line_id,
                    from_line_name=d.line_name,
                    to_line_id=t.line_id,
                    to_line_name=t.line_name,
                    fit=how,
                    until=until,
                    target_sl_before=round(t.sl(n_t), 4),
                    target_sl_after=round(t.sl(n_t + 1), 4),
                    donor_sl_before=round(d.sl(n_d), 4),
                    donor_sl_after=round(d.sl(n_d - 1), 4),
                    target_level=t.target_level,
                )
            )
            clerks[t.line_id] += 1
            clerks[d.line_id] -= 1
    return out


async def department_names(session: AsyncSession) -> dict[str, set[str]]:
    """Each department's code -> the names a skill may give it by (code, name, English)."""
    rows = (await session.exec(select(Department))).all()
    return {d.code: {d.code, d.name, d.name_en} - {""} for d in rows}


@dataclass
class Overview:
    states: dict[int, LineState]
    before: set[int]
    suggestions: list[TidalSuggestion]


async def overview(
    *, session: AsyncSession, settings: Settings, principal: Principal, now: dt.datetime
) -> Overview:
    """The lines of the caller's area, assessed now, and the moves the rule suggests there."""
    lines = [ln for ln in await lines_in_scope(session, principal) if ln.active]
    moves = await situation(session, settings, now)
    states = await assess(session=session, settings=settings, lines=lines, now=now, moves=moves)
    before = await short_before(session, settings, list(states), now)
    found = suggest(
        states=states,
        before=before,
        candidates=await candidates(session, settings, now, moves),
        moves=moves,
        department_names=await department_names(session),
        until=default_until(now, settings),
    )
    return Overview(states=states, before=before, suggestions=found)


async def openings(
    *, session: AsyncSession, principal: Principal, start: dt.datetime, end: dt.datetime
) -> int:
    """Tidal moves applied in [start, end) onto the lines of the caller's area."""
    rows = await session.exec(
        select(TidalMove.to_line_id, func.count())
        .where(col(TidalMove.started_at) >= start, col(TidalMove.started_at) < end)
        .group_by(col(TidalMove.to_line_id))
    )
    total = 0
    for line_id, n in rows.all():
        line = await session.get(WindowLine, line_id)
        if line is not None and await may_see_line(session, principal, line):
            total += int(n)
    return total
