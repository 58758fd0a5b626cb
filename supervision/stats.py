"""Statistics of the caller's area: "who, when, what, how it went, how it was rated".

Every figure is read from the rollups (supervision/rollup.py), never from the tickets: a year
of the district is a few tens of thousands of day rows, whatever the number of tickets. The
period is whole local days; the filters pick lines (area, town, hall, line, department) and
the rollup's set (item, clerk). Definitions: docs/statistics.md.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.access import Principal, lines_in_scope, site_in_scope
from core.db import utcnow
from core.errors import NotFound
from core.models import (
    Case,
    Department,
    Role,
    ServiceItem,
    Site,
    SiteKind,
    Staff,
    StaffLine,
    StaffSite,
    WindowLine,
)
from core.settings import Settings
from outreach import reminders
from outreach.models import HomeRequest, HomeVisit, VisitStatus
from scheduler.models import OPEN_DELIVERY, Delivery, DeliveryAttempt
from signaling.models import Ticket
from supervision import periods, rollup, thresholds
from supervision.models import (
    HOURS,
    STAT_COUNTS,
    STAT_MAXES,
    STAT_SUMS,
    WAIT_BIN_EDGES,
    WAIT_BINS,
    RatingFollowup,
    stats_day,
    stats_month,
)
from supervision.stats_models import (
    Breakdown,
    BreakdownRow,
    CallFigures,
    CommunityHomeFigures,
    DailySeries,
    DeliveryFigures,
    Figures,
    FollowupFigures,
    Heatmap,
    HomeVisitFigures,
    NotYet,
    Option,
    Period,
    RatingFigures,
    RatingLevel,
    ReminderFigures,
    RowFigures,
    StatsOptions,
    StatsQuery,
    StatsRead,
    WaitBin,
    WaitFigures,
)

# GB/T 39734-2020's five levels, best first (the score a rating stores).
LEVELS = (
    (5, "非常满意", "very satisfied"),
    (4, "满意", "satisfied"),
    (3, "基本满意", "fairly satisfied"),
    (2, "不满意", "dissatisfied"),
    (1, "非常不满意", "very dissatisfied"),
)
ALL, NO_CLERK = 0, -1  # the rollup's sets: every item / clerk, and tickets nobody called
FIGURE_MEASURES = (*STAT_COUNTS, *STAT_SUMS, *STAT_MAXES, *WAIT_BINS)
DAY_MEASURES = (*FIGURE_MEASURES, *HOURS)
FOLLOWUPS_BY_ITEM = NotYet(
    note="差评回访按窗口和部门统计，不按事项或工作人员细分（见差评数）",
    note_en="follow-ups are counted per line and department, not per item or clerk "
    "(see the bad ratings)",
)
DELIVERIES_BY_CLERK = NotYet(
    note="证照速递不经窗口人员办理，按工作人员筛选时不统计",
    note_en="deliveries are not a clerk's: not counted for a clerk",
)

M = dict[str, float]


# -- scope: the lines and the rollup set a query covers


def _site_nf(site_id: int) -> NotFound:
    return NotFound(f"地点 {site_id}", f"Site {site_id}")


@dataclass(frozen=True)
class Scope:
    lines: list[WindowLine]
    item_id: int
    clerk_id: int
    first_day: dt.date
    last_day: dt.date
    start: dt.datetime
    end: dt.datetime
    all_lines: bool  # every line there is: no filter on lines needed

    @property
    def line_ids(self) -> list[int]:
        return [ln.id or 0 for ln in self.lines]


async def _below(session: AsyncSession, site_id: int) -> set[int]:
    """The site and every site under it."""
    parents = {i: p for i, p in (await session.exec(select(Site.id, Site.parent_id))).all()}
    out, frontier = {site_id}, {site_id}
    for _ in range(8):  # district > town > community; deeper is broken data
        frontier = {i for i, p in parents.items() if p in frontier and i not in out}
        if not frontier:
            break
        out |= frontier
    return {i for i in out if i is not None}


async def clerks_in_scope(session: AsyncSession, lines: Sequence[WindowLine]) -> list[Staff]:
    """Clerks bound to one of the lines, or to the hall of one of them."""
    line_ids = [ln.id for ln in lines]
    halls = sorted({ln.site_id for ln in lines})
    bound = sa.union(
        sa.select(StaffLine.staff_id).where(col(StaffLine.line_id).in_(line_ids)),
        sa.select(StaffSite.staff_id).where(col(StaffSite.site_id).in_(halls)),
    )
    rows = await session.exec(
        select(Staff)
        .where(Staff.role == Role.clerk, col(Staff.id).in_(bound))
        .order_by(col(Staff.id))
    )
    return list(rows.all())


async def scope(
    *,
    session: AsyncSession,
    settings: Settings,
    principal: Principal,
    q: StatsQuery,
    today: dt.date | None = None,
) -> Scope:
    """The caller's lines narrowed by the filters; a filter outside the area answers 404."""
    zone = ZoneInfo(settings.timezone)
    today = today or utcnow().astimezone(zone).date()
    start, end = periods.bounds(
        q.period, tz=settings.timezone, today=q.date or today, start=q.start, end=q.end
    )
    first, last = (
        start.astimezone(zone).date(),
        (end.astimezone(zone) - dt.timedelta(days=1)).date(),
    )
    mine = await lines_in_scope(session, principal)
    lines = list(mine)
    if q.site_id is not None:
        site = await session.get(Site, q.site_id)
        if site is None or not await site_in_scope(session, principal, q.site_id):
            raise _site_nf(q.site_id)
        under = await _below(session, q.site_id)
        lines = [ln for ln in lines if ln.site_id in under]
    if q.line_id is not None:
        lines = [ln for ln in lines if ln.id == q.line_id]
        if not lines:
            raise NotFound(f"窗口 {q.line_id}", f"Window line {q.line_id}")
    if q.department is not None:
        if await session.get(Department, q.department) is None:
            raise NotFound(f"部门 {q.department}", f"Department {q.department}")
        lines = [ln for ln in lines if ln.department == q.department]
    if q.item_id is not None and await session.get(ServiceItem, q.item_id) is None:
        raise NotFound(f"事项 {q.item_id}", f"Service item {q.item_id}")
    if q.clerk_id is not None:
        clerks = await clerks_in_scope(session, mine)
        if q.clerk_id not in {c.id for c in clerks}:
            raise NotFound(f"工作人员 {q.clerk_id}", f"Staff member {q.clerk_id}")
    total = (await session.exec(select(sa.func.count()).select_from(WindowLine))).one()
    return Scope(
        lines=lines,
        item_id=q.item_id or ALL,
        clerk_id=q.clerk_id or ALL,
        first_day=first,
        last_day=last,
        start=start,
        end=end,
        all_lines=len(lines) == int(total) and bool(lines),
    )


# -- reading the rollup


def _where(
    s: Scope,
    table: sa.Table = stats_day,
    *,
    each_item: bool = False,
    each_clerk: bool = False,
    days: Any = None,
) -> list[Any]:
    """The rows of the scope in `table`: its lines, the rollup set of its item and clerk
    filters (or one row per item, per clerk, for a breakdown by them), and `days` (default:
    the period's days; for stats_month a condition on months)."""
    c = table.c
    out = [days] if days is not None else [c.day >= s.first_day, c.day <= s.last_day]
    out.append(c.item_id != ALL if each_item else c.item_id == s.item_id)
    out.append(c.clerk_id != ALL if each_clerk else c.clerk_id == s.clerk_id)
    if not s.all_lines:
        out.append(c.line_id.in_(s.line_ids or [0]))
    return out


@functools.cache
def _sum_columns(names: tuple[str, ...], table: str) -> tuple[Any, ...]:
    """SUM (MAX for a maximum) of each measure: built once, the statements reuse them."""
    c = (stats_day if table == stats_day.name else stats_month).c
    return tuple(
        (sa.func.max(c[n]) if n in STAT_MAXES else sa.func.sum(c[n])).label(n) for n in names
    )


def _sums(names: Iterable[str], table: sa.Table = stats_day) -> list[Any]:
    return list(_sum_columns(tuple(names), table.name))


def _measures(row: Any, names: Sequence[str], offset: int) -> M:
    return {n: float(row[offset + i] or 0) for i, n in enumerate(names)}


# What the daily series and the heat map need of each day (the totals and the table come from
# the month rows): a year is one row per line and day, so fewer sums cost less. Over more than
# LONG days the series leaves out the daily p90 (its 37 bins), keeping the mean.
LONG = 92
SERIES = (
    "taken",
    "served",
    "no_show",
    "cancelled",
    "called",
    "wait_sum",
    "within_target",
    "abandoned_late",
    "handled",
    "handle_sum",
    "rated",
    "r4",
    "r5",
    "wait_max",
    *WAIT_BINS,
    *HOURS,
)
SERIES_LONG = tuple(n for n in SERIES if n not in WAIT_BINS)


async def _by_day(session: AsyncSession, s: Scope, names: Sequence[str]) -> dict[dt.date, M]:
    c = stats_day.c
    q = sa.select(c.day, *_sums(names)).where(*_where(s)).group_by(c.day).order_by(c.day)
    rows = (await session.exec(q)).all()  # type: ignore[call-overload]
    return {_as_date(r[0]): _measures(r, names, 1) for r in rows}


def spans(
    first: dt.date, last: dt.date
) -> tuple[list[dt.date], list[tuple[dt.date, dt.date]], list[tuple[dt.date, dt.date]]]:
    """[first, last] as month rows to add, and runs of day rows to add and to take away: a
    month partly inside is either its days inside, or the month less its days outside,
    whichever reads fewer days (every measure of the month rows adds up)."""
    months: list[dt.date] = []
    plus: list[tuple[dt.date, dt.date]] = []
    minus: list[tuple[dt.date, dt.date]] = []
    one = dt.timedelta(days=1)
    d = first
    while d <= last:
        start = d.replace(day=1)
        month_end = (start + dt.timedelta(days=32)).replace(day=1) - one
        end = min(last, month_end)
        inside = (end - d).days + 1
        outside = (month_end - start).days + 1 - inside
        if outside == 0:
            months.append(start)
        elif inside <= outside:
            plus.append((d, end))
        else:
            months.append(start)
            if d > start:
                minus.append((start, d - one))
            if end < month_end:
                minus.append((end + one, month_end))
        d = end + one
    return months, plus, minus


GROUPED = tuple(n for n in FIGURE_MEASURES if n not in STAT_MAXES)


async def _grouped(session: AsyncSession, s: Scope, key: str | None, **sets: bool) -> dict[Any, M]:
    """The scope's figures summed by `key` (a column of both tables; None: one total), from
    the month rows of the whole months and the day rows of the days around them (the day
    rows of a month's days outside the period taken away)."""
    months, plus, minus = spans(s.first_day, s.last_day)
    c = stats_day.c
    parts: list[tuple[sa.Table, Any, int]] = []
    if months:
        parts.append((stats_month, stats_month.c.month.in_(months), 1))
    if plus:
        parts.append((stats_day, sa.or_(*(c.day.between(a, b) for a, b in plus)), 1))
    if minus:
        parts.append((stats_day, sa.or_(*(c.day.between(a, b) for a, b in minus)), -1))
    acc: dict[Any, list[float]] = {}
    for table, days, sign in parts:
        keys = [table.c[key]] if key else []
        q = sa.select(*keys, *_sums(GROUPED, table)).where(*_where(s, table, days=days, **sets))
        if keys:
            q = q.group_by(*keys)
        n = len(keys)
        for r in (await session.exec(q)).all():  # type: ignore[call-overload]
            k = r[0] if key else None
            values = [float(v or 0) * sign for v in r[n:]]
            have = acc.get(k)
            acc[k] = values if have is None else [a + b for a, b in zip(have, values, strict=True)]
    return {k: dict(zip(GROUPED, v, strict=True)) for k, v in acc.items()}


def _as_date(v: Any) -> dt.date:
    return v if isinstance(v, dt.date) else dt.date.fromisoformat(str(v))


def add(into: M, m: M) -> None:
    for k, v in m.items():
        if k in STAT_MAXES:
            into[k] = max(into.get(k, 0.0), v)
        else:
            into[k] = into.get(k, 0.0) + v


# -- figures from summed measures


def _ratio(a: float, b: float) -> float | None:
    return a / b if b else None


def percentile(m: M, q: float) -> float | None:
    """The q-th quantile of the waits, interpolated inside its histogram bin."""
    n = m.get("called", 0)
    if not n:
        return None
    rank, seen = q * n, 0.0
    for i, name in enumerate(WAIT_BINS):
        count = m.get(name, 0)
        if count and seen + count >= rank:
            if i == 0:
                return 0.0
            if i == len(WAIT_BIN_EDGES):
                return float(WAIT_BIN_EDGES[-1])  # the open bin: at least its lower edge
            lo, hi = WAIT_BIN_EDGES[i - 1], WAIT_BIN_EDGES[i]
            return lo + (hi - lo) * (rank - seen) / count
        seen += count
    return float(WAIT_BIN_EDGES[-1])


def figures(m: M) -> Figures:
    g = m.get
    called, served = g("called", 0), g("served", 0)
    basis = called + g("abandoned_late", 0)
    rated = g("rated", 0)
    calls = g("calls", 0)
    levels = [
        RatingLevel.model_construct(
            score=k,
            label=zh,
            label_en=en,
            count=int(g(f"r{k}", 0)),
            share=_ratio(g(f"r{k}", 0), rated),
        )
        for k, zh, en in LEVELS
    ]
    total = sum(k * g(f"r{k}", 0) for k, _, _ in LEVELS)
    return Figures.model_construct(
        taken=int(g("taken", 0)),
        served=int(served),
        completed=int(g("completed", 0)),
        accepted=int(g("accepted", 0)),
        returned=int(g("returned", 0)),
        no_shows=int(g("no_show", 0)),
        cancelled=int(g("cancelled", 0)),
        abandoned_after_target=int(g("abandoned_late", 0)),
        transferred=int(g("transferred", 0)),
        open=int(g("open_tickets", 0)),
        wait=WaitFigures.model_construct(
            called=int(called),
            mean_s=_ratio(g("wait_sum", 0), called),
            p50_s=percentile(m, 0.5),
            p90_s=percentile(m, 0.9),
            max_s=g("wait_max", 0) if called else None,
        ),
        handled=int(g("handled", 0)),
        handling_mean_s=_ratio(g("handle_sum", 0), g("handled", 0)),
        service_level=_ratio(g("within_target", 0), basis),
        within_target=int(g("within_target", 0)),
        calls=CallFigures.model_construct(
            calls=int(calls),
            connected=int(g("calls_connected", 0)),
            connected_rate=_ratio(g("calls_connected", 0), calls),
            setup_mean_s=_ratio(g("setup_sum", 0), g("calls_connected", 0)),
            first_media_mean_s=_ratio(g("media_sum", 0), g("calls_media", 0)),
            duration_mean_s=_ratio(g("duration_sum", 0), g("calls_timed", 0)),
            reported=int(max(g("calls_rtt", 0), g("calls_loss", 0))),
            rtt_mean_ms=_ratio(g("rtt_sum", 0), g("calls_rtt", 0)),
            loss_mean_pct=_ratio(g("loss_sum", 0), g("calls_loss", 0)),
            poor=int(g("calls_poor", 0)),
            poor_rate=_ratio(g("calls_poor", 0), calls),
        ),
        ratings=RatingFigures.model_construct(
            rated=int(rated),
            rated_rate=_ratio(rated, served),
            mean_score=_ratio(total, rated),
            satisfied_rate=_ratio(g("r5", 0) + g("r4", 0), rated),
            bad=int(g("r1", 0) + g("r2", 0)),
            levels=levels,
        ),
    )


def row_figures(m: M) -> RowFigures:
    g = m.get
    called, served, rated, calls = g("called", 0), g("served", 0), g("rated", 0), g("calls", 0)
    total = 5 * g("r5", 0) + 4 * g("r4", 0) + 3 * g("r3", 0) + 2 * g("r2", 0) + g("r1", 0)
    return RowFigures.model_construct(
        taken=int(g("taken", 0)),
        served=int(served),
        no_shows=int(g("no_show", 0)),
        cancelled=int(g("cancelled", 0)),
        transferred=int(g("transferred", 0)),
        open=int(g("open_tickets", 0)),
        wait_mean_s=_ratio(g("wait_sum", 0), called),
        wait_p50_s=percentile(m, 0.5),
        wait_p90_s=percentile(m, 0.9),
        handling_mean_s=_ratio(g("handle_sum", 0), g("handled", 0)),
        service_level=_ratio(g("within_target", 0), called + g("abandoned_late", 0)),
        calls=int(calls),
        connected_rate=_ratio(g("calls_connected", 0), calls),
        poor_rate=_ratio(g("calls_poor", 0), calls),
        rated=int(rated),
        mean_score=_ratio(total, rated),
        satisfied_rate=_ratio(g("r5", 0) + g("r4", 0), rated),
        bad=int(g("r1", 0) + g("r2", 0)),
        levels=[int(g(f"r{k}", 0)) for k in (5, 4, 3, 2, 1)],
    )


def _daily(days: dict[dt.date, M]) -> DailySeries:
    ordered = sorted(days.items())
    bins = bool(ordered) and WAIT_BINS[0] in ordered[0][1]
    cols: dict[str, list[Any]] = {name: [] for name in DailySeries.model_fields}
    for day, m in ordered:
        g = m.get
        called, rated = g("called", 0), g("rated", 0)
        cols["day"].append(day)
        cols["taken"].append(int(g("taken", 0)))
        cols["served"].append(int(g("served", 0)))
        cols["no_shows"].append(int(g("no_show", 0)))
        cols["cancelled"].append(int(g("cancelled", 0)))
        cols["wait_mean_s"].append(_ratio(g("wait_sum", 0), called))
        cols["wait_p90_s"].append(percentile(m, 0.9) if bins else None)
        cols["service_level"].append(_ratio(g("within_target", 0), called + g("abandoned_late", 0)))
        cols["handling_mean_s"].append(_ratio(g("handle_sum", 0), g("handled", 0)))
        cols["rated"].append(int(rated))
        cols["satisfied_rate"].append(_ratio(g("r5", 0) + g("r4", 0), rated))
    return DailySeries.model_construct(**cols)


def _heatmap(days: dict[dt.date, M], first: dt.date, last: dt.date) -> Heatmap:
    counts = [[0] * 24 for _ in range(7)]
    for day, m in days.items():
        row = counts[day.weekday()]
        for h, v in enumerate(m.get(name, 0) for name in HOURS):
            row[h] += int(v)
    n_days = [0] * 7
    d = first
    while d <= last:
        n_days[d.weekday()] += 1
        d += dt.timedelta(days=1)
    return Heatmap(counts=counts, days=n_days, peak=max(max(r) for r in counts))


def _bins(m: M) -> list[WaitBin]:
    return [
        WaitBin(
            upper_s=WAIT_BIN_EDGES[i] if i < len(WAIT_BIN_EDGES) else None, count=int(m.get(n, 0))
        )
        for i, n in enumerate(WAIT_BINS)
    ]


# -- the breakdown table


async def _breakdown(
    session: AsyncSession, s: Scope, by: Breakdown, days: dict[dt.date, M]
) -> list[BreakdownRow]:
    if by == Breakdown.day:
        return [
            BreakdownRow(key=d.isoformat(), name=d.isoformat(), figures=row_figures(m))
            for d, m in sorted(days.items())
        ]
    if by == Breakdown.item:
        rows = await _grouped(session, s, "item_id", each_item=True)
        if s.item_id != ALL:
            rows = {k: v for k, v in rows.items() if k == s.item_id}
        items = {
            i.id: i
            for i in (
                await session.exec(select(ServiceItem).where(col(ServiceItem.id).in_(list(rows))))
            ).all()
        }
        out = [
            BreakdownRow(
                key=str(k),
                name=items[k].name if k in items else str(k),
                name_en=items[k].name_en if k in items else "",
                parent=items[k].department if k in items else "",
                figures=row_figures(m),
            )
            for k, m in rows.items()
        ]
        return sorted(out, key=lambda r: -r.figures.taken)
    if by == Breakdown.clerk:
        rows = await _grouped(session, s, "clerk_id", each_clerk=True)
        if s.clerk_id != ALL:
            rows = {k: v for k, v in rows.items() if k == s.clerk_id}
        ids = [k for k in rows if k > 0]
        staff = {
            st.id: st
            for st in (await session.exec(select(Staff).where(col(Staff.id).in_(ids)))).all()
        }
        out = []
        for k, m in rows.items():
            if k == NO_CLERK:
                name, en = "（未叫号）", "(not called)"
            else:
                st = staff.get(k)
                name, en = (st.display_name if st else str(k)), (st.username if st else "")
            out.append(BreakdownRow(key=str(k), name=name, name_en=en, figures=row_figures(m)))
        return sorted(out, key=lambda r: (r.key == str(NO_CLERK), -r.figures.taken))
    per_line = await _grouped(session, s, "line_id")
    lines = {ln.id: ln for ln in s.lines}
    if by == Breakdown.line:
        sites = await _site_names(session, {ln.site_id for ln in s.lines})
        out = [
            BreakdownRow(
                key=str(ln.id),
                name=ln.name,
                parent=sites.get(ln.site_id, ("", ""))[0],
                figures=row_figures(per_line.get(ln.id, {})),
            )
            for ln in s.lines
        ]
        return sorted(out, key=lambda r: -r.figures.taken)
    groups: dict[Any, M] = defaultdict(dict)
    for line_id, m in per_line.items():
        ln = lines.get(line_id)
        if ln is not None:
            add(groups[ln.site_id if by == Breakdown.hall else ln.department], m)
    if by == Breakdown.hall:
        sites = await _site_names(session, {ln.site_id for ln in s.lines})
        keys = sorted({ln.site_id for ln in s.lines})
        return [
            BreakdownRow(
                key=str(k),
                name=sites.get(k, (str(k), ""))[0],
                name_en=sites.get(k, ("", ""))[1],
                figures=row_figures(groups.get(k, {})),
            )
            for k in keys
        ]
    depts = {
        d.code: d
        for d in (await session.exec(select(Department))).all()
        if d.code in {ln.department for ln in s.lines}
    }
    return [
        BreakdownRow(key=k, name=d.name, name_en=d.name_en, figures=row_figures(groups.get(k, {})))
        for k, d in sorted(depts.items())
    ]


async def _site_names(session: AsyncSession, ids: set[int]) -> dict[int, tuple[str, str]]:
    rows = await session.exec(select(Site.id, Site.name, Site.name_en).where(col(Site.id).in_(ids)))
    return {i: (n, e) for i, n, e in rows.all() if i is not None}


# -- records read live: follow-ups, home visits, deliveries


def _n(cond: Any) -> Any:
    """How many rows meet `cond` (0 when none)."""
    return sa.func.coalesce(sa.func.sum(sa.case((cond, 1), else_=0)), 0)


async def _followups(session: AsyncSession, s: Scope, now: dt.datetime) -> FollowupFigures:
    f = RatingFollowup.__table__  # type: ignore[attr-defined]
    start, end = s.start, s.end
    rated = sa.and_(f.c.rated_at >= start, f.c.rated_at < end)
    closed = sa.and_(f.c.closed_at >= start, f.c.closed_at < end, f.c.closed_at <= f.c.due_at)
    missed = sa.or_(f.c.closed_at.is_(None), f.c.closed_at > f.c.due_at)
    due = sa.and_(f.c.due_at >= start, f.c.due_at < end, f.c.due_at <= now, missed)

    q = sa.select(_n(rated), _n(closed), _n(due)).select_from(f)
    where: list[Any] = [sa.or_(rated, closed, sa.and_(f.c.due_at >= start, f.c.due_at < end))]
    if not s.all_lines:
        where.append(f.c.line_id.in_(s.line_ids or [0]))
    if s.item_id != ALL:
        cases = Case.__table__  # type: ignore[attr-defined]
        where.append(f.c.case_id.in_(sa.select(cases.c.id).where(cases.c.item_id == s.item_id)))
    if s.clerk_id != ALL:  # the clerk's tickets, through their index, not a join per row
        t = Ticket.__table__  # type: ignore[attr-defined]
        where.append(f.c.case_id.in_(sa.select(t.c.case_id).where(t.c.called_by == s.clerk_id)))
    row = (await session.exec(q.where(*where))).one()  # type: ignore[call-overload]
    return FollowupFigures(opened=int(row[0]), closed_on_time=int(row[1]), overdue=int(row[2]))


async def _area_sites(
    session: AsyncSession, principal: Principal, q: StatsQuery
) -> set[int] | None:
    """The sites of the query's area (its site, or the caller's); None: everywhere (admin)."""
    if q.site_id is not None:
        return await _below(session, q.site_id)
    if principal.is_admin:
        return None
    sites: set[int] = set()
    for site_id in principal.site_ids:
        sites |= await _below(session, site_id)
    return sites


async def _home_visits(
    session: AsyncSession, s: Scope, q: StatsQuery, area: set[int] | None
) -> HomeVisitFigures | NotYet:
    """Requests made and visits done or scheduled in the period, per requesting community."""
    if q.line_id is not None or q.clerk_id is not None:
        return NotYet(
            note="上门服务不经窗口办理，按窗口或工作人员筛选时不统计",
            note_en="home visits are not on a window line: not counted for a line or clerk",
        )
    v, r = HomeVisit.__table__, HomeRequest.__table__  # type: ignore[attr-defined]
    items = ServiceItem.__table__  # type: ignore[attr-defined]
    where: list[Any] = []
    if area is not None:
        where.append(r.c.site_id.in_(sorted(area) or [0]))
    if s.item_id != ALL:
        where.append(r.c.item_id == s.item_id)
    if q.department is not None:
        where.append(items.c.department == q.department)
    requests = dict(
        (
            await session.exec(  # type: ignore[call-overload]
                sa.select(r.c.site_id, sa.func.count())
                .select_from(r.join(items, items.c.id == r.c.item_id))
                .where(*where, r.c.created_at >= s.start, r.c.created_at < s.end)
                .group_by(r.c.site_id)
            )
        ).all()
    )
    status = v.c.status
    visits = {
        k: (int(d), int(sc))
        for k, d, sc in (
            await session.exec(  # type: ignore[call-overload]
                sa.select(
                    r.c.site_id,
                    _n(status == VisitStatus.done),
                    _n(status == VisitStatus.scheduled),
                )
                .select_from(
                    v.join(r, r.c.id == v.c.request_id).join(items, items.c.id == r.c.item_id)
                )
                .where(*where, v.c.starts_at >= s.start, v.c.starts_at < s.end)
                .group_by(r.c.site_id)
            )
        ).all()
    }
    keys = sorted(set(requests) | set(visits))
    names = await _site_names(session, set(keys))
    rows = [
        CommunityHomeFigures(
            site_id=k,
            name=names.get(k, (str(k), ""))[0],
            name_en=names.get(k, ("", ""))[1],
            requests=int(requests.get(k, 0)),
            done=visits.get(k, (0, 0))[0],
            scheduled=visits.get(k, (0, 0))[1],
        )
        for k in keys
    ]
    rows.sort(key=lambda c: (-c.requests, -c.done, c.name))
    return HomeVisitFigures(
        done=sum(c.done for c in rows),
        scheduled=sum(c.scheduled for c in rows),
        requests=sum(c.requests for c in rows),
        by_community=rows,
    )


REMINDERS_NOT_HERE = NotYet(
    note="证照到期提醒按发证机构统计，按窗口、事项或工作人员筛选时不统计",
    note_en="expiry reminders are counted per issuing office: not for a line, item or clerk",
)


async def _reminders(
    session: AsyncSession, s: Scope, q: StatsQuery, area: set[int] | None
) -> ReminderFigures | NotYet:
    """The area's licence-expiry reminders in the period (outreach.reminders.counts)."""
    if q.line_id is not None or q.clerk_id is not None or q.item_id is not None:
        return REMINDERS_NOT_HERE
    if q.department is not None:
        return REMINDERS_NOT_HERE
    c = await reminders.counts(session, start=s.start, end=s.end, site_ids=area)
    return ReminderFigures(
        planned=c.planned,
        queued=c.queued,
        delivered=c.delivered,
        failed=c.failed,
        cancelled=c.cancelled_renewed + c.cancelled_opted_out + c.cancelled_no_phone,
        opt_outs=c.opt_outs,
    )


async def _deliveries(session: AsyncSession, s: Scope, q: StatsQuery) -> DeliveryFigures | NotYet:
    """Deliveries of licences issued by the halls of the scope's lines (of its line's cases, of
    its item or department), by when they were delivered, failed at the door, or created."""
    if q.clerk_id is not None:
        return DELIVERIES_BY_CLERK
    d, a = Delivery.__table__, DeliveryAttempt.__table__  # type: ignore[attr-defined]
    cases = Case.__table__  # type: ignore[attr-defined]
    items = ServiceItem.__table__  # type: ignore[attr-defined]
    where: list[Any] = [d.c.from_site_id.in_(sorted({ln.site_id for ln in s.lines}) or [0])]
    source = d.join(cases, cases.c.id == d.c.case_id).join(items, items.c.id == cases.c.item_id)
    if q.line_id is not None:
        where.append(cases.c.line_id == q.line_id)
    if s.item_id != ALL:
        where.append(cases.c.item_id == s.item_id)
    if q.department is not None:
        where.append(items.c.department == q.department)

    delivered = sa.and_(d.c.delivered_at >= s.start, d.c.delivered_at < s.end)
    created = sa.and_(d.c.created_at >= s.start, d.c.created_at < s.end)
    row = (
        await session.exec(  # type: ignore[call-overload]
            sa.select(_n(delivered), _n(sa.and_(created, d.c.status.in_(OPEN_DELIVERY))))
            .select_from(source)
            .where(*where, sa.or_(delivered, created))
        )
    ).one()
    failed = (
        await session.exec(  # type: ignore[call-overload]
            sa.select(sa.func.count())
            .select_from(a.join(source, d.c.id == a.c.delivery_id))
            .where(*where, a.c.at >= s.start, a.c.at < s.end)
        )
    ).scalar_one()
    return DeliveryFigures(delivered=int(row[0]), failed_attempts=int(failed), open=int(row[1]))


# -- the answer


async def statistics(
    *,
    session: AsyncSession,
    settings: Settings,
    principal: Principal,
    q: StatsQuery,
    now: dt.datetime | None = None,
) -> StatsRead:
    """Figures, charts and the breakdown table for the query, as of the last rollup."""
    now = now or utcnow()
    zone = ZoneInfo(settings.timezone)
    s = await scope(
        session=session,
        settings=settings,
        principal=principal,
        q=q,
        today=now.astimezone(zone).date(),
    )
    days: dict[dt.date, M] = {}
    total: M = {}
    if s.lines:
        # A table by day shows every figure of every day; else the days need only the series'.
        long = (s.last_day - s.first_day).days >= LONG
        names = DAY_MEASURES if q.by == Breakdown.day else (SERIES_LONG if long else SERIES)
        days = await _by_day(session, s, names)
        total = (await _grouped(session, s, None)).get(None, {})
        total["wait_max"] = max((m.get("wait_max", 0.0) for m in days.values()), default=0.0)
    area = await _area_sites(session, principal, q)
    return StatsRead(
        period=Period(
            first_day=s.first_day,
            last_day=s.last_day,
            start=s.start,
            end=s.end,
            days=(s.last_day - s.first_day).days + 1,
        ),
        as_of=await rollup.rolled_at(session),
        lines=len(s.lines),
        target_seconds=thresholds.defaults(settings)["wait_alert_seconds"],
        totals=figures(total),
        daily=_daily(days),
        heatmap=_heatmap(days, s.first_day, s.last_day),
        wait_bins=_bins(total),
        by=q.by,
        breakdown=await _breakdown(session, s, q.by, days) if s.lines else [],
        total_row=row_figures(total),
        followups=FOLLOWUPS_BY_ITEM
        if q.item_id is not None or q.clerk_id is not None
        else await _followups(session, s, now),
        home_visits=await _home_visits(session, s, q, area),
        deliveries=await _deliveries(session, s, q),
        reminders=await _reminders(session, s, q, area),
    )


async def options(
    *, session: AsyncSession, settings: Settings, principal: Principal
) -> StatsOptions:
    """The filter choices of the caller's area."""
    lines = await lines_in_scope(session, principal)
    halls = {ln.site_id for ln in lines}
    sites = {
        s.id: s
        for s in (await session.exec(select(Site).where(Site.kind != SiteKind.community))).all()
    }
    visible = []
    for s in sorted(sites.values(), key=lambda s: (s.kind != SiteKind.district, s.code)):
        if s.id in halls or (
            s.kind == SiteKind.district and await site_in_scope(session, principal, s.id or 0)
        ):
            visible.append(Option(id=s.id or 0, name=s.name, name_en=s.name_en, parent=s.parent_id))
    depts = {ln.department for ln in lines}
    departments = [
        Option(id=d.code, name=d.name, name_en=d.name_en)
        for d in (await session.exec(select(Department).order_by(col(Department.code)))).all()
        if d.code in depts
    ]
    items = [
        Option(
            id=i.id or 0,
            name=i.name,
            name_en=i.name_en,
            parent=i.department,
            department=i.department,
        )
        for i in (
            await session.exec(
                select(ServiceItem)
                .where(col(ServiceItem.department).in_(sorted(depts)))
                .order_by(col(ServiceItem.code))
            )
        ).all()
    ]
    line_of: dict[int, int] = {}
    for staff_id, line_id in (
        await session.exec(
            select(StaffLine.staff_id, StaffLine.line_id).where(
                col(StaffLine.line_id).in_([ln.id for ln in lines])
            )
        )
    ).all():
        line_of.setdefault(staff_id, line_id)
    clerks = [
        Option(id=c.id or 0, name=c.display_name, name_en=c.username, parent=line_of.get(c.id or 0))
        for c in await clerks_in_scope(session, lines)
    ]
    return StatsOptions(
        sites=visible,
        departments=departments,
        lines=[
            Option(id=ln.id or 0, name=ln.name, parent=ln.site_id, department=ln.department)
            for ln in lines
        ],
        items=items,
        clerks=clerks,
        today=utcnow().astimezone(ZoneInfo(settings.timezone)).date(),
        default_target_seconds=thresholds.defaults(settings)["wait_alert_seconds"],
    )
