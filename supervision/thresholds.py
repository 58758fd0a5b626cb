"""Alert thresholds per line and per department, and what each line works to in the end.

Three levels, each with the same five values (the wait alert in seconds, yellow and red on
people waiting, yellow and red on tickets taken in the rolling period):

1. the line's own row (`line_threshold`);
2. the department's row at the nearest site at or above the line's hall
   (`department_threshold`: a hall, its town, the district);
3. the settings' defaults.

Each value is taken from the first level that sets it, so a line may set only its wait and
keep its department's yellow and red. A supervisor edits the levels of their own area; every
edit is validated on what it makes every affected line work to (red never below yellow) and
audited with the values before and after.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core import audit
from core.access import Principal, lines_in_scope, require_line, site_in_scope
from core.errors import Invalid, NotFound
from core.models import Department, Site, WindowLine
from core.settings import Settings
from supervision.models import (
    DepartmentThreshold,
    DepartmentThresholdRead,
    LineMeasure,
    LineThreshold,
    LineThresholdRead,
    NamedRef,
    ThresholdsIn,
    ThresholdsView,
    ThresholdValues,
)

FIELDS = ("wait_alert_seconds", "waiting_yellow", "waiting_red", "taken_yellow", "taken_red")
# measure -> (yellow field, red field, zh, en), for validating and for the error message
PAIRS = {
    LineMeasure.waiting: ("waiting_yellow", "waiting_red", "等候人数", "people waiting"),
    LineMeasure.taken: ("taken_yellow", "taken_red", "取号数", "tickets taken"),
}
# district > town > hall: a walk longer than this is broken data, not a deeper tree
MAX_DEPTH = 8


@dataclass(frozen=True)
class Limits:
    yellow: int
    red: int

    def of(self, level: Any) -> int:
        return self.red if str(level) == "red" else self.yellow


@dataclass(frozen=True)
class LineLimits:
    """What one line works to."""

    wait_seconds: int
    waiting: Limits
    taken: Limits

    def of(self, measure: LineMeasure) -> Limits:
        return self.waiting if measure == LineMeasure.waiting else self.taken


def defaults(settings: Settings) -> dict[str, int]:
    s = settings
    return {
        "wait_alert_seconds": s.wait_alert_minutes * 60,
        "waiting_yellow": s.line_alert_waiting_yellow,
        "waiting_red": s.line_alert_waiting_red,
        "taken_yellow": s.line_alert_taken_yellow,
        "taken_red": s.line_alert_taken_red,
    }


def own(row: Any) -> dict[str, int]:
    """The values a row sets (the empty ones left out)."""
    return {f: getattr(row, f) for f in FIELDS if row is not None and getattr(row, f) is not None}


@dataclass
class Book:
    """Every level's own values, read once per sweep round or screen."""

    default: dict[str, int]
    lines: dict[int, dict[str, int]] = field(default_factory=dict)
    departments: dict[tuple[int, str], dict[str, int]] = field(default_factory=dict)
    # read only when some department sets a value: a line's hall and department, the site tree
    line_place: dict[int, tuple[int, str]] = field(default_factory=dict)
    parents: dict[int, int | None] = field(default_factory=dict)

    def sites_up(self, site_id: int) -> list[int]:
        """The site and its ancestors, nearest first."""
        out: list[int] = []
        at: int | None = site_id
        while at is not None and len(out) < MAX_DEPTH:
            out.append(at)
            at = self.parents.get(at)
        return out

    def chain(self, line_id: int) -> list[tuple[str, dict[str, int]]]:
        """The levels a line's values come from, first wins: (source, values)."""
        out = [("line", self.lines.get(line_id, {}))]
        if self.departments and line_id in self.line_place:
            site_id, dept = self.line_place[line_id]
            for s in self.sites_up(site_id):
                if (s, dept) in self.departments:
                    out.append((f"department:{s}", self.departments[(s, dept)]))
        out.append(("default", self.default))
        return out

    def inherited(self, site_id: int, dept: str) -> dict[str, int]:
        """What a department row at the site falls back to: rows above it, then defaults."""
        values = dict(self.default)
        for s in reversed(self.sites_up(site_id)[1:]):  # farthest first, nearer overrides
            values |= self.departments.get((s, dept), {})
        return values

    def effective(self, line_id: int, *, own: bool = True) -> tuple[dict[str, int], dict[str, str]]:
        """What the line works to and where each value comes from (`own` False: as if the
        line set nothing of its own)."""
        values: dict[str, int] = {}
        source: dict[str, str] = {}
        for name, level in self.chain(line_id)[0 if own else 1 :]:
            for f in FIELDS:
                if f not in values and f in level:
                    values[f], source[f] = level[f], name
        return values, source

    def limits(self, line_id: int) -> LineLimits:
        v, _ = self.effective(line_id)
        return LineLimits(
            wait_seconds=v["wait_alert_seconds"],
            waiting=Limits(v["waiting_yellow"], v["waiting_red"]),
            taken=Limits(v["taken_yellow"], v["taken_red"]),
        )

    def shortest_wait(self) -> int:
        """The shortest wait threshold anywhere: no ticket waiting less can be overdue."""
        waits = [self.default["wait_alert_seconds"]]
        waits += [v["wait_alert_seconds"] for v in self.lines.values() if "wait_alert_seconds" in v]
        waits += [
            v["wait_alert_seconds"] for v in self.departments.values() if "wait_alert_seconds" in v
        ]
        return min(waits)


async def load(session: AsyncSession, settings: Settings, *, places: bool = False) -> Book:
    """Every level as stored now. The lines' halls and the site tree are read only when a
    department row exists (or `places` asks), so the sweep of a district that sets none
    costs what it did before."""
    book = Book(default=defaults(settings))
    for r in (await session.exec(select(LineThreshold))).all():
        if values := own(r):
            book.lines[r.line_id] = values
    for d in (await session.exec(select(DepartmentThreshold))).all():
        if values := own(d):
            book.departments[(d.site_id, d.department)] = values
    if book.departments or places:
        rows = await session.exec(select(WindowLine.id, WindowLine.site_id, WindowLine.department))
        book.line_place = {i: (s, d) for i, s, d in rows.all() if i is not None}
        sites = await session.exec(select(Site.id, Site.parent_id))
        book.parents = {i: p for i, p in sites.all() if i is not None}
    return book


def _check(values: dict[str, int], where: str) -> None:
    """Red at or above yellow on both measures, as the level or line would work to."""
    for measure, (y, r, zh, en) in PAIRS.items():
        if values[r] < values[y]:
            raise Invalid(
                "threshold.order",
                measure=f"{where} {zh}" if where else zh,
                measure_en=f"{en} ({where})" if where else en,
                red=values[r],
                yellow=values[y],
                details=[{"field": r, "measure": str(measure)}],
            )


def _check_lines(book: Book, line_ids: list[int], names: dict[int, str]) -> None:
    for line_id in line_ids:
        values, _ = book.effective(line_id)
        _check(values, names.get(line_id, ""))


def _values(body: ThresholdsIn) -> dict[str, int]:
    return {f: v for f in FIELDS if (v := getattr(body, f)) is not None}


def _tv(values: dict[str, int]) -> ThresholdValues:
    return ThresholdValues(**values)


def _line_read(book: Book, line: WindowLine) -> LineThresholdRead:
    values, source = book.effective(line.id or 0)
    return LineThresholdRead(
        line_id=line.id or 0,
        line_name=line.name,
        site_id=line.site_id,
        department=line.department,
        own=_tv(book.lines.get(line.id or 0, {})),
        inherited=_tv(book.effective(line.id or 0, own=False)[0]),
        effective=_tv(values),
        source=source,
    )


async def _department_read(
    session: AsyncSession, book: Book, site_id: int, dept: str
) -> DepartmentThresholdRead:
    site = await session.get(Site, site_id)
    department = await session.get(Department, dept)
    return DepartmentThresholdRead(
        site_id=site_id,
        site_name=site.name if site else "",
        department=dept,
        department_name=department.name if department else dept,
        own=_tv(book.departments.get((site_id, dept), {})),
        inherited=_tv(book.inherited(site_id, dept)),
    )


async def _department_sites(
    session: AsyncSession, principal: Principal, lines: list[WindowLine]
) -> list[Site]:
    """Where a department row may be set: my bound sites and the halls of my lines, plus the
    sites between them (a district supervisor: the district and every town)."""
    ids = {ln.site_id for ln in lines}
    ids |= set(principal.site_ids)
    rows = (await session.exec(select(Site).where(col(Site.id).in_(sorted(ids))))).all()
    out = [s for s in rows if await site_in_scope(session, principal, s.id or 0)]
    return sorted(out, key=lambda s: (s.kind != "district", s.code))


async def view(
    *, session: AsyncSession, principal: Principal, settings: Settings
) -> ThresholdsView:
    """The defaults, the lines of my area with what each works to, and my department rows."""
    book = await load(session, settings, places=True)
    lines = await lines_in_scope(session, principal)
    sites = await _department_sites(session, principal, lines)
    site_ids = {s.id for s in sites}
    departments = list(
        (await session.exec(select(Department).order_by(col(Department.code)))).all()
    )
    rows = [
        await _department_read(session, book, s, d)
        for (s, d) in sorted(book.departments)
        if s in site_ids
    ]
    return ThresholdsView(
        defaults=_tv(book.default),
        window_minutes=settings.line_alert_taken_window_minutes,
        lines=[_line_read(book, ln) for ln in lines],
        departments=rows,
        sites=[NamedRef(id=str(s.id), name=s.name) for s in sites],
        department_names=[NamedRef(id=d.code, name=d.name) for d in departments],
    )


def _audit(
    session: AsyncSession,
    principal: Principal,
    target_type: str,
    target_id: str,
    before: dict[str, int],
    after: dict[str, int],
    request_id: str,
    ip: str,
) -> None:
    audit.record(
        session,
        actor=principal,
        action="threshold.set",
        target_type=target_type,
        target_id=target_id,
        detail={"before": before, "after": after},
        request_id=request_id,
        ip=ip,
    )


async def set_line(
    *,
    session: AsyncSession,
    principal: Principal,
    settings: Settings,
    line_id: int,
    body: ThresholdsIn,
    request_id: str = "",
    ip: str = "",
) -> LineThresholdRead:
    """Replace a line's own thresholds (an empty field inherits; all empty: none of its own)."""
    line = await session.get(WindowLine, line_id)
    if line is None:
        raise NotFound(f"窗口 {line_id}", f"Window line {line_id}")
    await require_line(session, principal, line)
    book = await load(session, settings, places=True)
    before, after = book.lines.get(line_id, {}), _values(body)
    book.lines[line_id] = after
    _check_lines(book, [line_id], {})
    row = await session.get(LineThreshold, line_id)
    if not after:
        if row is not None:
            await session.delete(row)
    else:
        row = row or LineThreshold(line_id=line_id)
        for f in FIELDS:
            setattr(row, f, after.get(f))
        session.add(row)
    _audit(session, principal, "line_threshold", str(line_id), before, after, request_id, ip)
    await session.flush()
    return _line_read(book, line)


async def set_department(
    *,
    session: AsyncSession,
    principal: Principal,
    settings: Settings,
    site_id: int,
    department: str,
    body: ThresholdsIn,
    request_id: str = "",
    ip: str = "",
) -> DepartmentThresholdRead:
    """Replace a department's thresholds at a site of my area, for its lines at or under it."""
    nf = NotFound(f"站点 {site_id} 的科室 {department}", f"Department {department} at {site_id}")
    site = await session.get(Site, site_id)
    dept = await session.get(Department, department)
    if site is None or dept is None or not await site_in_scope(session, principal, site_id):
        raise nf
    book = await load(session, settings, places=True)
    key = (site_id, department)
    before, after = book.departments.get(key, {}), _values(body)
    book.departments[key] = after
    _check({**book.inherited(site_id, department), **after}, "")
    affected = [
        i
        for i, (s, d) in book.line_place.items()
        if d == department and site_id in book.sites_up(s)
    ]
    names = {
        ln.id or 0: ln.name
        for ln in (await session.exec(select(WindowLine).where(col(WindowLine.id).in_(affected))))
    }
    _check_lines(book, affected, names)
    row = await session.get(DepartmentThreshold, key)
    if not after:
        if row is not None:
            await session.delete(row)
        del book.departments[key]
    else:
        row = row or DepartmentThreshold(site_id=site_id, department=department)
        for f in FIELDS:
            setattr(row, f, after.get(f))
        session.add(row)
    target = f"{site_id}:{department}"
    _audit(session, principal, "department_threshold", target, before, after, request_id, ip)
    await session.flush()
    return await _department_read(session, book, site_id, department)
