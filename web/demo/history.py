"""Synthetic history for the demo district: `cloudwindow seed --history DAYS`.

Each past day that has no tickets yet gets a day's work of every line, as the deployed
district reports it (about 3.5 million cases a year):

- **arrivals** follow each hall's opening hours: busy mornings peaking at 9:30-10:30, a
  quieter afternoon, the district center's Saturday morning, nothing on Sundays and on public
  holidays (and adjusted workdays open, from `chinese-calendar`), Mondays the busiest;
- **the queue** is simulated per line with the clerks it needs to keep up at its peak: each
  resident is called by the first clerk free, so waits grow in the morning rush; a resident
  who would wait past their patience gives up (cancelled), a few do not answer (no-show);
- **handling times** are log-normal around each item's own mean; a few tickets are passed to
  another line of the same hall (transfers, with their timeline events);
- **ratings** come after about two thirds of the finished cases, worse after a long wait or a
  returned case; every bad one has its follow-up, already called back and closed;
- **calls** carry their set-up times and quality figures, a few of them poor.

Rows are written in bulk (COPY on PostgreSQL, executemany on SQLite), a day at a time, and
the statistics rollups are rebuilt for the days written. History rows are ordinary rows: the
statistics, the board's handling times and the tidal rule read them like live ones. Their
cases carry no resident and no timeline beyond their transfers, and their calls no
participants or recordings.
"""

from __future__ import annotations

import bisect
import datetime as dt
import hashlib
import heapq
import itertools
import math
import random
import re
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any
from zoneinfo import ZoneInfo

import chinese_calendar
import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.db import Database
from core.models import (
    Call,
    Case,
    CaseEvent,
    CaseRating,
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
from signaling.models import Ticket
from supervision import bulk, rollup
from supervision.followups import deadline
from supervision.models import RatingFollowup

# The deployed district: about 3.5 million cases a year over about 250 working days.
PER_YEAR = 3_500_000
WORKING_DAYS = 250
# Relative weight of each department's lines, and of a district-center line against a town's.
DEPARTMENT_WEIGHT = {
    "household": 1.3,
    "medical_insurance": 1.2,
    "human_resources": 1.1,
    "civil_affairs": 1.0,
    "market": 0.9,
    "health": 0.6,
    "disabled": 0.4,
}
DISTRICT_WEIGHT = 4.0
WEEKDAY_FACTOR = (1.2, 1.05, 1.0, 0.95, 0.9, 0.35, 0.3)  # Monday busiest; Saturday morning
DAY_NOISE = 0.1  # day-to-day spread of a line's volume
# Arrival intensity through the day (minute of day, relative rate), between the knots linear.
PROFILE = (
    (480, 0.5),
    (510, 0.55),
    (570, 0.95),
    (600, 1.0),
    (630, 1.0),
    (690, 0.7),
    (720, 0.45),
    (810, 0.5),
    (870, 0.7),
    (930, 0.7),
    (990, 0.45),
    (1020, 0.3),
)
OCCUPANCY = 0.88  # share of a clerk's open hours busy on a Monday, on average over the day
# A resident gives up after waiting PATIENCE_MIN_S plus an exponential time with this mean.
PATIENCE_MIN_S = 10 * 60
PATIENCE_MEAN_S = 40 * 60
NO_SHOW = 0.03
CHANGED_MIND = 0.015  # cancelled while waiting for another reason, sooner than patience
TRANSFER = 0.02  # of served tickets, passed to another line of the same hall first
OUTCOMES = (("completed", 0.86), ("accepted", 0.10), ("returned", 0.04))
RATED = 0.65
# Scores 5..1 (非常满意 .. 非常不满意): usual, after a wait over 30 minutes, after a return.
SCORES = {
    "usual": (0.80, 0.13, 0.04, 0.02, 0.01),
    "long_wait": (0.55, 0.22, 0.12, 0.07, 0.04),
    "returned": (0.45, 0.25, 0.15, 0.10, 0.05),
}
BAD_SCORE = 2
COMPLAINTS = (
    "等候时间太长",
    "材料要求没有一次说清",
    "视频卡顿，听不清",
    "办理太慢",
    "窗口态度不好",
)
POOR_CALLS = 0.04
ANSWER_TIMEOUT_S = 60  # as CLOUDWINDOW_TICKET_ANSWER_SECONDS: one recall, then no-show
SELF_SERVICE = 0.12
PRIORITY = (("age80", 0.05), ("disabled", 0.03))
COMMIT_EVERY = 60_000  # tickets per transaction


@dataclass
class HistorySummary:
    days: int = 0  # days written
    skipped: int = 0  # days that already had tickets, or where every hall was closed
    tickets: int = 0
    calls: int = 0
    ratings: int = 0
    followups: int = 0
    transfers: int = 0
    clerks_added: int = 0
    write_s: float = 0.0
    rollup_s: float = 0.0


@dataclass
class _Item:
    id: int
    code: str
    name: str
    handling_s: float  # the item's mean handling time


@dataclass
class _Line:
    id: int
    code: str
    name: str
    prefix: str
    site_id: int
    site_code: str
    district: bool
    department: str
    hours: dict[str, list[str]]
    weight: float
    items: list[_Item]
    item_weights: list[float]
    points: list[tuple[int, int | None]]  # (community site, its worker)
    clerks: list[int] = field(default_factory=list)
    item_cum: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        total = 0.0
        for w in self.item_weights:
            total += w
            self.item_cum.append(total)
        self.item_cum[-1] = 1.0

    @property
    def handling_s(self) -> float:
        return sum(i.handling_s * w for i, w in zip(self.items, self.item_weights, strict=True))


def _stable(text: str) -> float:
    """A number in [0, 1) fixed by the text (the same every run, on every machine)."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") / 2**64


def _rate(minute: float) -> float:
    xs = [m for m, _ in PROFILE]
    i = bisect.bisect_right(xs, minute)
    if i == 0:
        return PROFILE[0][1]
    if i == len(PROFILE):
        return PROFILE[-1][1]
    (m0, r0), (m1, r1) = PROFILE[i - 1], PROFILE[i]
    return r0 + (r1 - r0) * (minute - m0) / (m1 - m0)


def _intervals(spec: list[str]) -> list[tuple[int, int]]:
    out = []
    for part in spec:
        a, b = part.split("-")
        ha, ma = (int(x) for x in a.split(":"))
        hb, mb = (int(x) for x in b.split(":"))
        out.append((ha * 60 + ma, hb * 60 + mb))
    return out


DOW = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _day_hours(hours: dict[str, list[str]], day: dt.date) -> tuple[list[tuple[int, int]], float]:
    """A hall's open intervals (minutes of the day) on a day, and the day's volume factor."""
    try:
        workday, holiday = chinese_calendar.is_workday(day), chinese_calendar.is_holiday(day)
    except NotImplementedError:  # past the calendar's last year: weekdays only
        workday, holiday = day.weekday() < 5, day.weekday() >= 5
    if day.weekday() < 5 or workday:
        if not workday:
            return [], 0.0  # a public holiday
        key = DOW[day.weekday()] if day.weekday() < 5 else "mon"  # an adjusted workday
        return _intervals(hours.get(key, [])), WEEKDAY_FACTOR[min(day.weekday(), 4)]
    if holiday and day.weekday() == 5 and _is_festival(day):
        return [], 0.0
    return _intervals(hours.get(DOW[day.weekday()], [])), WEEKDAY_FACTOR[day.weekday()]


def _is_festival(day: dt.date) -> bool:
    try:
        return chinese_calendar.get_holiday_detail(day)[1] is not None
    except NotImplementedError:
        return False


def _slots(intervals: list[tuple[int, int]]) -> tuple[list[int], list[float]]:
    """The day's 5-minute slots (minute of day) and their cumulative arrival weights."""
    starts, cum, total = [], [], 0.0
    for a, b in intervals:
        for m in range(a, b, 5):
            total += _rate(m + 2.5)
            starts.append(m)
            cum.append(total)
    return starts, cum


def _poisson(rng: random.Random, mean: float) -> int:
    if mean <= 0:
        return 0
    if mean < 30:
        n, p, limit = 0, 1.0, math.exp(-mean)
        while True:
            p *= rng.random()
            if p <= limit:
                return n
            n += 1
    return max(0, round(rng.gauss(mean, math.sqrt(mean))))


def _pick(rng: random.Random, choices: Sequence[tuple[Any, float]]) -> Any:
    x = rng.random()
    for value, p in choices:
        if x < p:
            return value
        x -= p
    return choices[-1][0]


# -- the district as seeded


async def _lines(session: AsyncSession) -> list[_Line]:
    sites = {s.id: s for s in (await session.exec(select(Site))).all()}
    items_by_dept: dict[str, list[_Item]] = defaultdict(list)
    for it in (await session.exec(select(ServiceItem).where(col(ServiceItem.active)))).all():
        if not it.remote_capable:
            continue
        mean = 240 + 600 * _stable(f"aht-{it.code}")  # 4 to 14 minutes
        items_by_dept[it.department].append(_Item(it.id or 0, it.code, it.name, mean))
    workers: dict[int, int] = {}
    rows = await session.exec(
        select(StaffSite.site_id, Staff.id)
        .join(Staff, col(Staff.id) == col(StaffSite.staff_id))
        .where(Staff.role == Role.community_worker)
        .order_by(col(Staff.id))
    )
    for site_id, staff_id in rows.all():
        workers.setdefault(site_id, staff_id or 0)
    communities: dict[int, list[int]] = defaultdict(list)
    for s in sites.values():
        if s.kind == SiteKind.community and s.parent_id is not None:
            communities[s.parent_id].append(s.id or 0)
    every_point = sorted(p for ps in communities.values() for p in ps)
    out = []
    for ln in (
        await session.exec(select(WindowLine).where(col(WindowLine.active)).order_by(WindowLine.id))
    ).all():
        site = sites[ln.site_id]
        items = sorted(items_by_dept.get(ln.department, []), key=lambda i: i.code)
        if not items:
            continue
        district = site.kind == SiteKind.district
        points = every_point if district else sorted(communities.get(site.id or 0, []))
        if not points:
            continue
        size = len(points) if not district else 1
        weight = DEPARTMENT_WEIGHT.get(ln.department, 1.0) * (
            DISTRICT_WEIGHT if district else 0.6 + 0.1 * size
        )
        # A few items take most of a line's tickets (Zipf-like, fixed per item).
        iw = [1.0 / (k + 1) ** 0.9 * (0.7 + 0.6 * _stable(i.code)) for k, i in enumerate(items)]
        total = sum(iw)
        out.append(
            _Line(
                id=ln.id or 0,
                code=ln.code,
                name=ln.name,
                prefix=ln.ticket_prefix,
                site_id=ln.site_id,
                site_code=site.code,
                district=district,
                department=ln.department,
                hours=site.opening_hours or {},
                weight=weight,
                items=items,
                item_weights=[w / total for w in iw],
                points=[(p, workers.get(p)) for p in points],
            )
        )
    return out


def _mean_daily(line: _Line, lines: list[_Line], per_year: int) -> float:
    return per_year / WORKING_DAYS * line.weight / sum(ln.weight for ln in lines)


def _clerks_needed(line: _Line, mean_daily: float) -> int:
    """Clerks for the line's busiest weekday: its load over the open hours at OCCUPANCY, so
    the morning peak (about 1.4 times the day's mean rate) builds a queue that lunch clears."""
    intervals = _intervals(line.hours.get("mon", []))
    open_s = 60 * sum(b - a for a, b in intervals)
    if not open_s:
        return 1
    per_s = mean_daily * WEEKDAY_FACTOR[0] / open_s
    return max(1, round(per_s * line.handling_s / OCCUPANCY))


async def _staff_lines(session: AsyncSession, lines: list[_Line], per_year: int) -> int:
    """Give each line the clerks its volume needs (more clerks at the same windows)."""
    by_line: dict[int, list[Staff]] = defaultdict(list)
    rows = await session.exec(
        select(StaffLine.line_id, Staff)
        .join(Staff, col(Staff.id) == col(StaffLine.staff_id))
        .where(Staff.role == Role.clerk)
        .order_by(col(Staff.id))
    )
    for line_id, staff in rows.all():
        by_line[line_id].append(staff)
    added = 0
    for line in lines:
        have = by_line.get(line.id, [])
        need = _clerks_needed(line, _mean_daily(line, lines, per_year))
        if have and len(have) < need:
            template = have[0]
            letter = line.code.rsplit("-", 1)[-1]
            new = [
                Staff(
                    username=f"clerk.{line.site_code.lower()}.{letter}.{k}",
                    display_name=f"{line.name}窗口 {k} 号",
                    role=Role.clerk,
                    password_hash=template.password_hash,
                )
                for k in range(len(have) + 1, need + 1)
            ]
            session.add_all(new)
            await session.flush()
            for s in new:
                session.add(StaffLine(staff_id=s.id or 0, line_id=line.id))
                session.add(StaffSite(staff_id=s.id or 0, site_id=line.site_id))
            have = [*have, *new]
            added += len(new)
        line.clerks = [s.id or 0 for s in have] or []
    await session.flush()
    return added


# -- one day of one line, simulated in unix seconds


class _Visit:
    """One ticket's visit to a line."""

    __slots__ = (
        "answered",
        "arrival",
        "called",
        "clerk",
        "finished",
        "first",
        "item",
        "line",
        "outcome",
        "passed",
        "point",
        "prior",
        "reason",
        "recalls",
        "self_service",
        "since",
        "status",
        "wait",
    )

    def __init__(
        self, line: _Line, arrival: float, item: _Item, point: tuple[int, int | None]
    ) -> None:
        self.line, self.arrival, self.item, self.point = line, arrival, item, point
        self.since = arrival  # waiting_since: the first arrival, kept across a transfer
        self.called: float | None = None
        self.clerk: int | None = None
        self.answered: float | None = None
        self.finished = arrival
        self.status, self.outcome, self.recalls, self.wait = "done", "", 0, 0.0
        self.prior, self.reason, self.self_service = 0, "", False
        self.first: _Visit | None = None  # the visit on the line it was transferred from
        self.passed = False  # transferred on: its ticket goes on as the next visit


def _handling(rng: random.Random, item: _Item) -> float:
    return rng.lognormvariate(math.log(item.handling_s) - 0.125, 0.5)


def _serve(v: _Visit, start: float, clerk: int, rng: random.Random) -> float:
    """Call the visit at `start`; when its clerk is free again."""
    v.called, v.clerk, v.wait = start, clerk, start - v.since
    if rng.random() < NO_SHOW:
        v.status, v.recalls = "no_show", 1
        v.finished = start + 2 * ANSWER_TIMEOUT_S + 10 * rng.random()
        return v.finished
    v.outcome = _pick(rng, OUTCOMES)
    v.answered = start + 4 + 21 * rng.random()
    handling = _handling(rng, v.item) * (1.3 if v.outcome == "returned" else 1.0)
    v.finished = v.answered + handling
    return v.finished + 10 + 35 * rng.random()


def _simulate(
    line: _Line, day: dt.date, zone: ZoneInfo, n: int, rng: random.Random
) -> list[_Visit]:
    intervals, factor = _day_hours(line.hours, day)
    starts, cum = _slots(intervals)
    if not starts or n <= 0 or not line.clerks:
        return []
    midnight = dt.datetime.combine(day, dt.time(), zone).timestamp()
    total = cum[-1]
    times = sorted(
        midnight + 60 * (starts[bisect.bisect_left(cum, rng.random() * total)] + 5 * rng.random())
        for _ in range(n)
    )
    # A quiet day does not staff every window: clerks in proportion to the day's volume.
    share = factor / WEEKDAY_FACTOR[0]
    working = line.clerks[: max(1, min(len(line.clerks), math.ceil(len(line.clerks) * share)))]
    opening = midnight + 60 * intervals[0][0]
    free = [(opening, c) for c in working]
    heapq.heapify(free)
    visits = []
    random_, items, cum_items, points = rng.random, line.items, line.item_cum, line.points
    for arrival in times:
        v = _Visit(
            line, arrival, items[bisect.bisect_left(cum_items, random_())], rng.choice(points)
        )
        v.self_service = random_() < SELF_SERVICE
        x = random_()
        if x < PRIORITY[0][1]:
            v.prior, v.reason = 1, PRIORITY[0][0]
        elif x < PRIORITY[0][1] + PRIORITY[1][1]:
            v.prior, v.reason = 1, PRIORITY[1][0]
        at, clerk = free[0]
        start = at if at > arrival else arrival
        patience = PATIENCE_MIN_S + rng.expovariate(1 / PATIENCE_MEAN_S)
        if start - arrival > patience:
            v.status, v.finished = "cancelled", arrival + patience
        elif random_() < CHANGED_MIND:
            v.status, v.finished = "cancelled", arrival + (start - arrival) * random_()
        else:
            heapq.heapreplace(free, (_serve(v, start, clerk, rng), clerk))
        visits.append(v)
    return visits


def _transfer(
    v: _Visit, halls: dict[int, list[_Line]], waits: dict[int, float], rng: random.Random
) -> _Visit | None:
    """Pass a served visit to another line of its hall: a second visit there."""
    others = [ln for ln in halls[v.line.site_id] if ln.id != v.line.id and ln.clerks]
    if not others or v.answered is None:
        return None
    target = rng.choice(others)
    moved_at = v.answered + 60 + 180 * rng.random()
    # The resident queued on the wrong line for an item of the target's department: the ticket
    # (which keeps its item) and the case move to the line that handles it.
    v.item = rng.choice(target.items)
    second = _Visit(target, moved_at, v.item, v.point)
    second.since, second.first = v.since, v
    second.prior, second.reason, second.self_service = v.prior, v.reason, v.self_service
    wait = rng.expovariate(1 / max(60.0, waits.get(target.id, 300.0)))
    _serve(second, moved_at + wait, rng.choice(target.clerks), rng)
    v.finished, v.passed = moved_at, True
    return second


# -- writing: Python decides every figure of a ticket as a row of numbers in a staging table;
# the database spells the rows of every table from it (timestamps, numbers, JSON), which costs
# a fraction of building millions of datetimes and tuples here.

# A plain table, not a temporary one: a temporary table lives on one connection, and the pool
# may hand the next transaction another. It exists only while history is written.
STAGE = "history_stage"
STAGE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("tpl", "BIGINT"),  # the simulated day the row belongs to
    ("rn", "BIGINT"),  # the ticket's place in that day: its case and ticket ids are base + rn
    ("call_rn", "BIGINT"),  # its call's place (ids base + call_rn), empty when never called
    ("first_call_rn", "BIGINT"),  # the call on the line it was transferred from
    ("line_id", "BIGINT"),
    ("first_line_id", "BIGINT"),
    ("item_id", "BIGINT"),
    ("point_id", "BIGINT"),
    ("worker_id", "BIGINT"),
    ("clerk_id", "BIGINT"),
    ("first_clerk_id", "BIGINT"),
    ("day", "TEXT"),
    ("seq", "BIGINT"),
    ("number", "TEXT"),
    ("status", "TEXT"),
    ("outcome", "TEXT"),
    ("case_status", "TEXT"),
    ("priority", "BIGINT"),
    ("reason", "TEXT"),
    ("channel", "TEXT"),
    ("since_ms", "BIGINT"),
    ("call_ms", "BIGINT"),
    ("ring_ms", "BIGINT"),
    ("answer_ms", "BIGINT"),
    ("finish_ms", "BIGINT"),
    ("recalls", "BIGINT"),
    ("connect_ms", "BIGINT"),
    ("media_ms", "BIGINT"),
    ("end_ms", "BIGINT"),
    ("end_reason", "TEXT"),
    ("rtt", "BIGINT"),
    ("jitter", "DOUBLE PRECISION"),
    ("loss", "DOUBLE PRECISION"),
    ("bitrate", "BIGINT"),
    ("fps", "DOUBLE PRECISION"),
    ("reports", "BIGINT"),
    ("f_call_ms", "BIGINT"),
    ("f_connect_ms", "BIGINT"),
    ("f_media_ms", "BIGINT"),
    ("moved_ms", "BIGINT"),
    ("score", "BIGINT"),
    ("rated_ms", "BIGINT"),
    ("comment", "TEXT"),
    ("due_date", "TEXT"),
    ("due_ms", "BIGINT"),
    ("calendar", "TEXT"),
    ("callback", "TEXT"),
    ("callback_ms", "BIGINT"),
    ("closed_ms", "BIGINT"),
)
_STAGE_NAMES = tuple(n for n, _ in STAGE_COLUMNS)


def _ms(t: float | None) -> int | None:
    return None if t is None else int(t * 1000)


class _Ids:
    """Blocks of row ids: after the largest id (SQLite, whose writer holds the database), or
    from the table's sequence with the table locked against other inserts until commit
    (PostgreSQL: an insert's nextval waits for the lock, so nobody else draws from the block)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.postgres = session.bind.dialect.name == "postgresql" if session.bind else False

    async def block(self, table: str, n: int) -> int:
        """The first of n consecutive ids nobody else will use."""
        s = self.session
        if self.postgres:
            await s.exec(sa.text(f'LOCK TABLE "{table}" IN SHARE ROW EXCLUSIVE MODE'))  # type: ignore[call-overload]
            seq = f"pg_get_serial_sequence('{table}', 'id')"
            first = int((await s.exec(sa.text(f"SELECT nextval({seq})"))).scalar_one())  # type: ignore[call-overload]
            if n > 1:
                await s.exec(
                    sa.text(f"SELECT setval({seq}, :last)"), params={"last": first + n - 1}
                )  # type: ignore[call-overload]
            return first
        q = sa.text(f'SELECT COALESCE(MAX(id), 0) FROM "{table}"')
        return int((await s.exec(q)).scalar_one()) + 1  # type: ignore[call-overload]


def _stage_rows(
    visits: list[_Visit], tpl: int, settings: Settings, rng: random.Random
) -> Iterator[tuple[Any, ...]]:
    """One staging row per ticket (the visit it ended on): places, numbers, rating, follow-up."""
    zone = ZoneInfo(settings.timezone)
    days, tz = settings.followup_deadline_working_days, settings.timezone
    seqs: dict[tuple[int, str], int] = defaultdict(int)
    calls = itertools.count()
    day_of: dict[int, str] = {}
    for rn, v in enumerate(visits):
        line = v.line
        quarter = int(v.arrival // 900)  # every zone's offset is a whole number of quarters
        if quarter not in day_of:
            day_of[quarter] = dt.datetime.fromtimestamp(quarter * 900, zone).date().isoformat()
        day = day_of[quarter]
        seqs[(line.id, day)] += 1
        seq = seqs[(line.id, day)]
        point, worker = v.point
        first = v.first
        first_call = next(calls) if first is not None else None
        call_id = next(calls) if v.called is not None else None
        connect = media = end = None
        rtt = jitter = loss = bitrate = fps = reports = None
        if call_id is not None or first is not None:
            poor = rng.random() < POOR_CALLS
            rtt = round(rng.uniform(420, 900) if poor else rng.lognormvariate(4.25, 0.4))
            jitter = round(rng.uniform(30, 80) if poor else rng.uniform(2, 15), 1)
            loss = round(rng.uniform(5.5, 15) if poor else rng.expovariate(1 / 0.6), 2)
            bitrate = round(rng.uniform(150, 350) if poor else rng.uniform(550, 950))
            fps = round(rng.uniform(5, 9) if poor else rng.uniform(13, 15), 1)
            reports = rng.randint(3, 40)
        if v.answered is not None:
            connect = v.answered + 0.5 + 2.5 * rng.random()
            media = connect + 0.2 + 1.3 * rng.random()
            end = v.finished + 2 + 10 * rng.random()
        elif v.called is not None:  # a no-show: rung, never connected
            end = v.finished
            rtt = jitter = loss = bitrate = fps = reports = None
        f_call = f_connect = f_media = moved = None
        if first is not None and first.answered is not None:
            f_call, moved = first.called, first.finished
            f_connect = first.answered + 0.5 + 2.5 * rng.random()
            f_media = f_connect + 0.2 + 1.3 * rng.random()
        score = rated = comment = due_date = due = calendar = callback = cb_at = closed = None
        if v.status == "done" and rng.random() < RATED:
            kind = "returned" if v.outcome == "returned" else "usual"
            if kind == "usual" and v.wait > 1800:
                kind = "long_wait"
            x, score = rng.random(), 1
            for k, p in zip((5, 4, 3, 2, 1), SCORES[kind], strict=True):
                if x < p:
                    score = k
                    break
                x -= p
            rated = v.finished + 20 + 880 * rng.random()
            comment = rng.choice(COMPLAINTS) if score <= BAD_SCORE else ""
            if score <= BAD_SCORE:
                rated_dt = dt.datetime.fromtimestamp(rated, dt.UTC)
                d, due_dt, calendar = deadline(rated_dt, days, tz)
                due_date, due = d.isoformat(), due_dt.timestamp()
                callback = "reached" if rng.random() < 0.9 else "not_reached"
                cb_at = rated + 3600 * (2 + 58 * rng.random())
                closed = (
                    due + 3600 * (2 + 46 * rng.random())
                    if rng.random() < 0.05
                    else min(due, cb_at + 3600 * (4 + 68 * rng.random()))
                )
        ring = v.called + ANSWER_TIMEOUT_S * v.recalls if v.called is not None else None
        yield (
            tpl,
            rn,
            call_id,
            first_call,
            line.id,
            first.line.id if first is not None else None,
            v.item.id,
            point,
            worker,
            v.clerk,
            first.clerk if first is not None else None,
            day,
            seq,
            f"{line.prefix}{seq:03d}",
            v.status,
            v.outcome if v.status == "done" else "",
            v.outcome if v.status == "done" else "cancelled",
            v.prior,
            v.reason,
            "self" if v.self_service else "assisted",
            _ms(v.since),
            _ms(v.called),
            _ms(ring),
            _ms(v.answered),
            _ms(v.finished),
            v.recalls,
            _ms(connect),
            _ms(media),
            _ms(end),
            ("everyone_left" if v.answered is not None else "no_show")
            if call_id is not None
            else None,
            rtt,
            jitter,
            loss,
            bitrate,
            fps,
            reports,
            _ms(f_call),
            _ms(f_connect),
            _ms(f_media),
            _ms(moved),
            score,
            _ms(rated),
            comment,
            due_date,
            _ms(due),
            calendar,
            callback,
            _ms(cb_at),
            _ms(closed),
        )


class _Sql:
    """What differs between the backends when the rows are spelled from the stage."""

    def __init__(self, postgres: bool) -> None:
        self.postgres = postgres

    # Every time is the staged one moved by :ms (a copy of a simulated day on a later day), every
    # day by :days, every id is a base taken for the copy plus the row's place.

    def ts(self, col: str) -> str:
        col = f"(({col}) + :ms)"
        if self.postgres:
            return f"to_timestamp({col} / 1000.0)"
        # SQLAlchemy's spelling: microseconds always written out
        return (
            f"CASE WHEN {col} IS NULL THEN NULL ELSE strftime('%Y-%m-%d %H:%M:%S', {col} / 1000, "
            f"'unixepoch') || printf('.%03d000', {col} % 1000) END"
        )

    def day(self, col: str) -> str:
        if self.postgres:
            return f"(CAST({col} AS DATE) + CAST(:days AS INTEGER))"
        return f"date({col}, :days_text)"

    def case_number(self) -> str:
        """As cases are numbered: the UTC day taken, then the id in at least six digits."""
        at, case_id = "((s.since_ms + :ms) / 1000", "(:case0 + s.rn)"
        if self.postgres:
            return (
                f"to_char(to_timestamp({at}.0)) AT TIME ZONE 'UTC', 'YYYYMMDD') || "
                f"lpad(CAST({case_id} AS TEXT), GREATEST(6, length(CAST({case_id} AS TEXT))), '0')"
            )
        return f"strftime('%Y%m%d', {at}), 'unixepoch') || printf('%06d', {case_id})"

    def quality(self) -> str:
        fields = (
            "'rtt_ms', s.rtt, 'jitter_ms', s.jitter, 'packet_loss_pct', s.loss, "
            "'bitrate_kbps', s.bitrate, 'fps', s.fps, 'reports', s.reports"
        )
        if self.postgres:
            return f"CASE WHEN s.rtt IS NULL THEN '{{}}'::json ELSE json_build_object({fields}) END"
        return f"CASE WHEN s.rtt IS NULL THEN '{{}}' ELSE json_object({fields}) END"

    def line_data(self, *pairs: str) -> str:
        fn = "json_build_object" if self.postgres else "json_object"
        return f"{fn}({', '.join(pairs)})"


def _t(model: Any) -> sa.Table:
    return model.__table__  # type: ignore[no-any-return]


def _defaults(table: sa.Table, given: Sequence[str]) -> list[tuple[str, Any]]:
    """Every other column of the table with its plain default (or NULL), for INSERT ... SELECT."""
    out: list[tuple[str, Any]] = []
    for c in table.columns:
        if c.name in given or (c.primary_key and c.autoincrement is not False and c.name == "id"):
            continue
        if c.default is not None and not callable(c.default.arg):
            value = c.default.arg
            out.append((c.name, value.value if isinstance(value, Enum) else value))
        elif c.nullable:
            out.append((c.name, None))
        else:
            raise RuntimeError(f"history: no value for {table.name}.{c.name}")
    return out


def _literal(value: Any, postgres: bool) -> str:
    """A model default as SQL (our own constants: NULL, a flag, a number or a short text)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return ("TRUE" if value else "FALSE") if postgres else str(int(value))
    if isinstance(value, int | float):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"


def _insert_select(table: sa.Table, columns: dict[str, str], source: str, postgres: bool) -> str:
    """INSERT INTO table (columns, the others) SELECT expressions, their defaults FROM source."""
    names, exprs = list(columns), list(columns.values())
    for name, value in _defaults(table, names):
        names.append(name)
        exprs.append(_literal(value, postgres))
    cols = ", ".join(f'"{n}"' for n in names)
    return f'INSERT INTO "{table.name}" ({cols}) SELECT {", ".join(exprs)} FROM {source}'


def _spell(sql: _Sql) -> list[str]:
    """The statements that write every table from the stage."""
    ts = sql.ts
    stage = f"{STAGE} s"
    out = [
        _insert_select(
            _t(Case),
            {
                "id": "(:case0 + s.rn)",
                "number": sql.case_number(),
                "item_id": "s.item_id",
                "site_id": "s.point_id",
                "line_id": "s.line_id",
                "status": "s.case_status",
                "created_by": "s.worker_id",
                "created_at": ts("s.since_ms"),
                "updated_at": ts("s.finish_ms"),
                "closed_at": ts("s.finish_ms"),
                "note": "''",
            },
            f"{stage} WHERE s.tpl = :tpl",
            sql.postgres,
        ),
        _insert_select(
            _t(Ticket),
            {
                "id": "(:ticket0 + s.rn)",
                "line_id": "s.line_id",
                "case_id": "(:case0 + s.rn)",
                "day": sql.day("s.day"),
                "seq": "s.seq",
                "number": "s.number",
                "status": "s.status",
                "priority": "s.priority",
                "priority_reason": "s.reason",
                "channel": "s.channel",
                "item_code": "i.code",
                "item_name": "i.name",
                "line_name": "l.name",
                "case_number": sql.case_number(),
                "item_id": "s.item_id",
                "point_site_id": "s.point_id",
                "taken_by": "s.worker_id",
                "consent_at": ts("s.since_ms"),
                "waiting_since": ts("s.since_ms"),
                "created_at": ts("s.since_ms"),
                "called_at": ts("s.ring_ms"),
                "called_by": "s.clerk_id",
                "recalls": "s.recalls",
                "answered_at": ts("s.answer_ms"),
                "finished_at": ts("s.finish_ms"),
                "outcome": "s.outcome",
                "call_id": "(:call0 + s.call_rn)",
            },
            f"{stage} JOIN window_line l ON l.id = s.line_id"
            " JOIN service_item i ON i.id = s.item_id WHERE s.tpl = :tpl",
            sql.postgres,
        ),
        _insert_select(
            _t(Call),
            {
                "id": "(:call0 + s.call_rn)",
                "ticket_id": "(:ticket0 + s.rn)",
                "case_id": "(:case0 + s.rn)",
                "status": "'ended'",
                "created_at": ts("s.call_ms"),
                "connected_at": ts("s.connect_ms"),
                "first_media_at": ts("s.media_ms"),
                "ended_at": ts("s.end_ms"),
                "end_reason": "s.end_reason",
                "quality": sql.quality(),
            },
            f"{stage} WHERE s.tpl = :tpl AND s.call_rn IS NOT NULL",
            sql.postgres,
        ),
        _insert_select(
            _t(Call),
            {
                "id": "(:call0 + s.first_call_rn)",
                "ticket_id": "(:ticket0 + s.rn)",
                "case_id": "(:case0 + s.rn)",
                "status": "'ended'",
                "created_at": ts("s.f_call_ms"),
                "connected_at": ts("s.f_connect_ms"),
                "first_media_at": ts("s.f_media_ms"),
                "ended_at": ts("s.moved_ms"),
                "end_reason": "'transferred'",
                "quality": sql.quality(),
            },
            f"{stage} WHERE s.tpl = :tpl AND s.first_call_rn IS NOT NULL",
            sql.postgres,
        ),
        _insert_select(
            _t(CaseRating),
            {
                "case_id": "(:case0 + s.rn)",
                "score": "s.score",
                "comment": "s.comment",
                "rated_at": ts("s.rated_ms"),
                "recorded_by": "s.worker_id",
                "line_id": "s.line_id",
            },
            f"{stage} WHERE s.tpl = :tpl AND s.score IS NOT NULL",
            sql.postgres,
        ),
        _insert_select(
            _t(CaseEvent),
            {
                "case_id": "(:case0 + s.rn)",
                "at": ts("s.since_ms"),
                "kind": "'ticket.taken'",
                "actor_id": "s.worker_id",
                "data": sql.line_data("'line'", "f.code"),
            },
            f"{stage} JOIN window_line f ON f.id = s.first_line_id WHERE s.tpl = :tpl",
            sql.postgres,
        ),
        _insert_select(
            _t(CaseEvent),
            {
                "case_id": "(:case0 + s.rn)",
                "at": ts("s.moved_ms"),
                "kind": f"'{rollup.TRANSFER_EVENT}'",
                "actor_id": "s.first_clerk_id",
                "data": sql.line_data(
                    "'from'", "'in_service'", "'ticket'", "s.number", "'line'", "l.code"
                ),
            },
            f"{stage} JOIN window_line l ON l.id = s.line_id"
            " WHERE s.tpl = :tpl AND s.first_line_id IS NOT NULL",
            sql.postgres,
        ),
        _insert_select(
            _t(RatingFollowup),
            {
                "case_id": "(:case0 + s.rn)",
                "line_id": "s.line_id",
                "site_id": "s.point_id",
                "score": "s.score",
                "rated_at": ts("s.rated_ms"),
                "opened_at": ts("s.rated_ms + 30000"),
                "due_date": sql.day("s.due_date"),
                "due_at": ts("s.due_ms"),
                "calendar": "s.calendar",
                "status": "'closed'",
                "callback_outcome": "s.callback",
                "callback_note": (
                    "CASE WHEN s.callback = 'reached' THEN '已电话回访，居民表示理解' "
                    "ELSE '电话未接通，已发短信说明' END"
                ),
                "called_back_at": ts("s.callback_ms"),
                "rectification": "'已在科室例会通报并改进告知方式'",
                "rectified_at": ts("s.closed_ms"),
                "closed_at": ts("s.closed_ms"),
            },
            f"{stage} WHERE s.tpl = :tpl AND s.due_ms IS NOT NULL",
            sql.postgres,
        ),
    ]
    return out


@dataclass(frozen=True)
class _Template:
    """A simulated day in the stage: its rows, and what a copy of it needs."""

    tpl: int
    day: dt.date
    tickets: int
    calls: int
    transfers: int
    ratings: int
    followups: int


async def _stage(
    session: AsyncSession,
    tpl: int,
    day: dt.date,
    visits: list[_Visit],
    settings: Settings,
    rng: random.Random,
) -> _Template:
    """Put a simulated day into the stage (the visits a ticket ended on, in order of arrival)."""
    kept = sorted((v for v in visits if not v.passed), key=lambda v: v.arrival)
    table = sa.Table(STAGE, sa.MetaData(), *(sa.Column(n, sa.Integer) for n in _STAGE_NAMES))
    await bulk.insert_rows(session, table, _stage_rows(kept, tpl, settings, rng), _STAGE_NAMES)
    calls = sum((v.called is not None) + (v.first is not None) for v in kept)
    moved = sum(v.first is not None for v in kept)
    counted = await session.exec(  # type: ignore[call-overload]
        sa.text(f"SELECT count(score), count(due_ms) FROM {STAGE} WHERE tpl = :tpl"),
        params={"tpl": tpl},
    )
    ratings, followups = (int(x) for x in counted.one())
    return _Template(tpl, day, len(kept), calls, moved, ratings, followups)


async def _write(
    session: AsyncSession, ids: _Ids, statements: list[str], t: _Template, day: dt.date
) -> None:
    """Write the template's rows as the given day's: every table, ids of their own."""
    shift = (day - t.day).days
    params = {
        "tpl": t.tpl,
        "ms": shift * 86_400_000,
        "days": shift,
        "days_text": f"{shift:+d} days",
        "case0": await ids.block("service_case", t.tickets),
        "ticket0": await ids.block("ticket", t.tickets),
        "call0": await ids.block("call", t.calls),
    }
    for statement in statements:
        used = {k: v for k, v in params.items() if re.search(rf":{k}\b", statement)}
        await session.exec(sa.text(statement), params=used)  # type: ignore[call-overload]


# -- the whole history


def _workday(day: dt.date) -> bool:
    try:
        return bool(chinese_calendar.is_workday(day))
    except NotImplementedError:
        return day.weekday() < 5


def _simulate_day(
    lines: list[_Line],
    halls: dict[int, list[_Line]],
    weights: float,
    per_year: int,
    day: dt.date,
    zone: ZoneInfo,
    rng: random.Random,
) -> list[_Visit]:
    """Every line's day, then the transfers between the lines of each hall."""
    got: list[_Visit] = []
    waits: dict[int, float] = {}
    for line in lines:
        _, factor = _day_hours(line.hours, day)
        mean = per_year / WORKING_DAYS * line.weight / weights * factor
        mean *= max(0.2, 1 + rng.gauss(0, DAY_NOISE))
        visits = _simulate(line, day, zone, _poisson(rng, mean), rng)
        called = [v.wait for v in visits if v.called is not None]
        waits[line.id] = sum(called) / len(called) if called else 0.0
        got.extend(visits)
    for v in list(got):
        if v.status == "done" and rng.random() < TRANSFER:
            second = _transfer(v, halls, waits, rng)
            if second is not None:
                got.append(second)
    return got


async def _create_stage(session: AsyncSession) -> None:
    types = ", ".join(f"{n} {t}" for n, t in STAGE_COLUMNS)
    unlogged = "UNLOGGED " if session.bind and session.bind.dialect.name == "postgresql" else ""
    await session.exec(sa.text(f"DROP TABLE IF EXISTS {STAGE}"))  # type: ignore[call-overload]
    await session.exec(sa.text(f"CREATE {unlogged}TABLE {STAGE} ({types})"))  # type: ignore[call-overload]
    await session.exec(sa.text(f"CREATE INDEX ix_{STAGE}_tpl ON {STAGE} (tpl)"))  # type: ignore[call-overload]


LOADED = (Case, Ticket, Call, CaseRating, CaseEvent, RatingFollowup)


def _secondary() -> list[sa.Index]:
    """The loaded tables' indexes that only speed reads up (unique ones keep the data right)."""
    return [ix for m in LOADED for ix in sorted(_t(m).indexes, key=str) if not ix.unique]


async def _indexes(db: Database, *, drop: bool) -> None:
    async with db.engine.begin() as conn:
        for ix in _secondary():
            await conn.run_sync(ix.drop if drop else ix.create)  # type: ignore[arg-type]


async def _replica(session: AsyncSession) -> None:
    """PostgreSQL: no foreign-key triggers for this transaction (superusers only; else kept)."""
    try:
        async with session.begin_nested():
            await session.exec(sa.text("SET LOCAL session_replication_role = replica"))  # type: ignore[call-overload]
    except sa.exc.DBAPIError:
        pass


async def _analyze(db: Database) -> None:
    """Fresh statistics for the planner: a day's rollup must read a day of tickets through the
    indexes, not scan the calls of the whole year."""
    async with db.engine.begin() as conn:
        names = ", ".join(_t(m).name for m in LOADED)
        await conn.exec_driver_sql(f"ANALYZE {names}" if db.dialect == "postgresql" else "ANALYZE")


async def _days_with_tickets(session: AsyncSession, first: dt.date, last: dt.date) -> set[dt.date]:
    rows = await session.exec(
        select(Ticket.day).where(col(Ticket.day) >= first, col(Ticket.day) <= last).distinct()
    )
    return set(rows.all())


async def seed_history(
    db: Database,
    settings: Settings,
    *,
    days: int,
    per_year: int = PER_YEAR,
    today: dt.date | None = None,
    seed: int = 1,
    progress: bool = False,
    bulk: bool = False,
    variants: int | None = None,
) -> HistorySummary:
    """Write `days` days of history before `today` (days that have tickets are left alone),
    then rebuild the statistics rollups of those days.

    `bulk` (a fresh database that nothing else uses, as the benchmark's): the tables' secondary
    indexes are dropped during the load and built again after it, and PostgreSQL skips the
    foreign-key triggers (every id written is one just taken or read). A load interrupted in
    that mode leaves the indexes missing.

    `variants` (a year for the benchmark): only that many days of each weekday are simulated;
    the weekday's later days are copies of them, moved in time, with ids of their own.
    """
    zone = ZoneInfo(settings.timezone)
    today = today or dt.datetime.now(zone).date()
    summary = HistorySummary()
    if days <= 0:
        return summary
    first, last = today - dt.timedelta(days=days), today - dt.timedelta(days=1)
    started = time.perf_counter()
    async with db.session() as session:
        lines = await _lines(session)
        summary.clerks_added = await _staff_lines(session, lines, per_year)
        await session.commit()
        taken = await _days_with_tickets(session, first, last)
    halls: dict[int, list[_Line]] = defaultdict(list)
    for ln in lines:
        halls[ln.site_id].append(ln)
    weights = sum(ln.weight for ln in lines)
    written: list[dt.date] = []
    if bulk:
        await _indexes(db, drop=True)
    statements = _spell(_Sql(db.dialect == "postgresql"))
    templates: dict[tuple[int, bool], list[_Template]] = defaultdict(list)
    async with db.session() as session:
        await _create_stage(session)
        await session.commit()
        ids = _Ids(session)
        rng = random.Random(seed)
        pending = 0
        day = first
        while day <= last:
            if bulk and db.dialect == "postgresql" and not pending:
                await _replica(session)
            kind = (day.weekday(), _workday(day))
            made = templates[kind]
            if day in taken:
                summary.skipped += 1
            elif variants and len(made) >= variants:
                # A year: each weekday's few simulated days, copied onto its later ones.
                t = made[summary.days % variants]
                await _write(session, ids, statements, t, day)
                written.append(day)
                summary.days += 1
                summary.tickets += t.tickets
                summary.calls += t.calls
                summary.transfers += t.transfers
                summary.ratings += t.ratings
                summary.followups += t.followups
                pending += t.tickets
            else:
                rng.seed(f"{seed}-{day.isoformat()}")
                got = _simulate_day(lines, halls, weights, per_year, day, zone, rng)
                if not got:
                    summary.skipped += 1
                else:
                    t = await _stage(session, len(written) + 1, day, got, settings, rng)
                    made.append(t)
                    await _write(session, ids, statements, t, day)
                    written.append(day)
                    summary.days += 1
                    summary.tickets += t.tickets
                    summary.calls += t.calls
                    summary.transfers += t.transfers
                    summary.ratings += t.ratings
                    summary.followups += t.followups
                    pending += t.tickets
            if pending >= COMMIT_EVERY:
                await session.commit()
                pending = 0
            if progress:
                print(f"  {day}: {summary.tickets} tickets so far", flush=True)
            day += dt.timedelta(days=1)
        await session.exec(sa.text(f"DROP TABLE {STAGE}"))  # type: ignore[call-overload]
        await session.commit()
    if bulk:
        await _indexes(db, drop=False)
    if written:
        await _analyze(db)
    summary.write_s = time.perf_counter() - started
    if written:
        started = time.perf_counter()
        async with db.session() as session:
            start = dt.datetime.combine(written[0], dt.time(), zone).astimezone(dt.UTC)
            end = dt.datetime.combine(today, dt.time(), zone).astimezone(dt.UTC)
            await rollup.rebuild(session=session, settings=settings, start=start, end=end)
            await session.commit()
        summary.rollup_s = time.perf_counter() - started
    return summary
