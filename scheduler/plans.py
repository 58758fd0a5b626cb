"""Visit plans: versioned day plans of an area's home visits, made by the planner and changed
by the coordinator (docs/planning.md, "Plans and versions").

A coordinator plans a day for the field staff of a town from its accepted home-service
requests. Each plan, lock, move and re-plan is a new version of the day (never an edit), so
what was published and what each step changed stay on record. Publishing a version schedules
its visits through the home-service lifecycle (outreach/home_steps.py), which tells residents
by SMS as a visit set by hand does. Transport-free: plans_views.py parses and maps errors.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core import audit, residents
from core.access import (
    MAX_SITE_DEPTH,
    Principal,
    area_sites,
    require_visit_plan,
    site_ancestry,
    site_in_scope,
)
from core.db import utcnow
from core.errors import Conflict, Invalid, NotFound
from core.models import Case, Resident, Role, ServiceItem, Site, SiteKind, Staff, StaffSite
from core.settings import Settings
from outreach.home_steps import STATUS_WORDS, Lifecycle
from outreach.models import HomeRequest, HomeStatus, HomeVisit, VisitStatus
from scheduler.models import (
    BreachRead,
    LockIn,
    MoveCheckRead,
    MoveIn,
    PlanAreaRead,
    PlanChange,
    PlanDepotRead,
    PlanIn,
    PlanRead,
    PlanStaffRead,
    PlanStatus,
    PlanSummary,
    PlanVisitRead,
    ReplanIn,
    VisitCheckIn,
    VisitPlan,
)
from scheduler.planning import feasibility, travel
from scheduler.planning.feasibility import Breach, Sequence
from scheduler.planning.problem import (
    MAX_VISITS,
    Coordinates,
    Depot,
    Plan,
    Problem,
    Shift,
    Totals,
    Visit,
    Window,
)

# A solve: the app hands in its worker-process planner (never solved in the event loop).
Solve = Callable[[Problem, float | None], Awaitable[Plan]]

URGENT_PRIORITY = 10  # the weights: urgent +10, aged 80 or over +3, +1 per day waited
AGED_PRIORITY = 3
AGED = 80
MAX_PRIORITY = 1000
LOCK_SKILL = "lock.{staff}"  # a locked visit needs it; only its staff member has it

# Why a request is not in a day's problem at all (the solver's reasons are in problem.py).
SKIP_REASONS = {
    "not_this_day": ("居民希望的上门日期不是这一天", "the resident asked for other days"),
    "too_late_today": ("今天剩下的时间已不够上门", "too little of today is left for the visit"),
    "no_staff_skill": (
        "没有具备所需技能的上门服务人员",
        "no field staff member has the skills it needs",
    ),
    "staff_not_planned": (
        "已安排的上门人员不在本次规划的人员中",
        "the person already sent is not among the staff planned",
    ),
}
BREACH_WORDS = {
    "skill": ("{staff} 不具备该上门服务所需的技能", "{staff} lacks the skills the visit needs"),
    "window": ("到达后无法在居民方便的时段内完成", "it cannot be done inside the resident's times"),
    "time": ("无法在指定的时间开始", "it cannot start at the time asked"),
    "shift": ("{staff} 无法在班次结束前返回", "{staff} cannot be back before the shift ends"),
    "max_visits": (
        "{staff} 这一班次的上门次数超过上限",
        "{staff} has too many visits in the shift",
    ),
    "capacity": ("{staff} 的负载超过上限", "{staff} would carry more than they can"),
    "unknown": ("人员或班次不存在", "no such staff member or shift"),
    "twice": ("同一上门服务被安排了两次", "the visit is planned twice"),
}


def vkey(request_id: int) -> str:
    return f"r{request_id}"


def skey(staff_id: int) -> str:
    return f"s{staff_id}"


def key_id(key: str) -> int:
    return int(key[1:])


def _tz(settings: Settings) -> ZoneInfo:
    return ZoneInfo(settings.timezone)


def today(settings: Settings) -> dt.date:
    return utcnow().astimezone(_tz(settings)).date()


def at(settings: Settings, day: dt.date, seconds: int) -> dt.datetime:
    """A time of the plan (seconds after the day's local midnight) as an aware datetime."""
    midnight = dt.datetime.combine(day, dt.time(), _tz(settings))
    return midnight + dt.timedelta(seconds=seconds)


def seconds_of(settings: Settings, day: dt.date, when: dt.datetime) -> int:
    return int((when - at(settings, day, 0)).total_seconds())


def _span(text: str) -> tuple[int, int]:
    a, b = text.split("-")
    h1, m1 = a.split(":")
    h2, m2 = b.split(":")
    return int(h1) * 3600 + int(m1) * 60, int(h2) * 3600 + int(m2) * 60


def shifts(settings: Settings) -> list[tuple[int, int]]:
    return [_span(settings.plan_morning), _span(settings.plan_afternoon)]


# -- the area and its people


def _below(site_id: int) -> Any:
    """The site and every site under it, as a subquery of ids."""
    sites = Site.__table__  # type: ignore[attr-defined]
    down = (
        sa.select(sites.c.id, sa.literal(1).label("depth"))
        .where(sites.c.id == site_id)
        .cte("plan_down", recursive=True)
    )
    down = down.union_all(
        sa.select(sites.c.id, (down.c.depth + 1).label("depth"))
        .join(down, sites.c.parent_id == down.c.id)
        .where(down.c.depth < MAX_SITE_DEPTH)
    )
    return sa.select(down.c.id)


async def areas(*, session: AsyncSession, principal: Principal) -> list[PlanAreaRead]:
    """The areas the caller may plan: the towns (and the district) at or under their sites."""
    q = select(Site).where(col(Site.kind).in_((SiteKind.town, SiteKind.district)))
    scope = area_sites(principal)
    if scope is not None:
        q = q.where(col(Site.id).in_(scope))
    rows = (await session.exec(q.order_by(col(Site.kind).desc(), col(Site.code)))).all()
    return [PlanAreaRead(id=s.id or 0, name=s.name, name_en=s.name_en, kind=s.kind) for s in rows]


async def area(*, session: AsyncSession, principal: Principal, site_id: int) -> Site:
    """A town or the district the caller may plan; else 404."""
    site = await session.get(Site, site_id)
    if (
        site is None
        or site.kind == SiteKind.community
        or not await site_in_scope(session, principal, site_id)
    ):
        raise NotFound(f"区域 {site_id}", f"Area {site_id}")
    return site


async def field_staff(session: AsyncSession, site: Site) -> list[Staff]:
    """Active field staff bound to the area or above it: those the home-service lifecycle
    lets serve every community of the area."""
    up = [s.id for s in await site_ancestry(session, site.id or 0)]
    bound = select(StaffSite.staff_id).where(col(StaffSite.site_id).in_(up))
    rows = await session.exec(
        select(Staff)
        .where(
            Staff.role == Role.field_staff, col(Staff.active).is_(True), col(Staff.id).in_(bound)
        )
        .order_by(col(Staff.id))
    )
    return list(rows.all())


async def staff_choices(
    *, session: AsyncSession, principal: Principal, site_id: int
) -> list[PlanStaffRead]:
    site = await area(session=session, principal=principal, site_id=site_id)
    return [
        PlanStaffRead(
            key=skey(s.id or 0),
            staff_id=s.id or 0,
            name=s.display_name,
            skills=list(s.skills),
            depot=site.code,
        )
        for s in await field_staff(session, site)
    ]


# -- building a day's problem from the requests


@dataclass(frozen=True)
class Kept:
    """A visit kept where it is in a re-plan: its staff member and its planned start."""

    staff: str
    start: int


@dataclass
class DayInput:
    site: Site
    day: dt.date
    staff: list[Staff]
    urgent: set[int]
    kept: dict[str, Kept]  # visit key -> where it stays
    required: set[str]  # visits residents were told of: they stay in the plan
    exclude: set[int]  # request ids planned on an earlier day of the same run
    from_time: int = 0


async def _candidates(session: AsyncSession, d: DayInput, settings: Settings) -> list[HomeRequest]:
    """Accepted requests of the area, and those already scheduled on this day."""
    q = select(HomeRequest).where(
        col(HomeRequest.site_id).in_(_below(d.site.id or 0)),
        col(HomeRequest.status).in_((HomeStatus.accepted, HomeStatus.scheduled)),
    )
    rows = list((await session.exec(q.order_by(col(HomeRequest.id)))).all())
    scheduled = [r.id or 0 for r in rows if r.status == HomeStatus.scheduled]
    on_day = set()
    if scheduled:
        visits = await session.exec(
            select(HomeVisit).where(
                col(HomeVisit.request_id).in_(scheduled), HomeVisit.status == VisitStatus.scheduled
            )
        )
        tz = _tz(settings)
        on_day = {v.request_id for v in visits.all() if v.starts_at.astimezone(tz).date() == d.day}
    return [
        r
        for r in rows
        if (r.id or 0) not in d.exclude
        and (r.status == HomeStatus.accepted or (r.id or 0) in on_day)
    ]


async def current_visits(session: AsyncSession, request_ids: list[int]) -> dict[int, HomeVisit]:
    if not request_ids:
        return {}
    rows = await session.exec(
        select(HomeVisit).where(
            col(HomeVisit.request_id).in_(request_ids), HomeVisit.status == VisitStatus.scheduled
        )
    )
    return {v.request_id: v for v in rows.all()}


def _windows(req: HomeRequest, day: dt.date, settings: Settings) -> list[tuple[int, int]] | None:
    """The resident's times on the day: their half days, or the whole working day when they
    gave none; None when they asked for other days only."""
    am, pm = shifts(settings)
    asked = [p["part"] for p in req.preferred if p.get("date") == day.isoformat()]
    if not req.preferred:
        return [am, pm]
    if not asked:
        return None
    return [w for part, w in (("am", am), ("pm", pm)) if part in asked]


async def build_problem(
    session: AsyncSession, settings: Settings, d: DayInput
) -> tuple[Problem, list[dict[str, Any]]]:
    """The day's problem (docs/planning.md's format), and the requests left out before
    solving with the reason."""
    if not d.staff:
        raise Invalid("plans.no_staff")
    reqs = await _candidates(session, d, settings)
    if len(reqs) > MAX_VISITS:
        raise Invalid("plans.too_many", n=len(reqs), max=MAX_VISITS)
    items = await _rows(session, ServiceItem, {r.item_id for r in reqs})
    people = await _rows(session, Resident, {r.resident_id for r in reqs})
    places = await _rows(session, Site, {r.site_id for r in reqs})
    visits_now = await current_visits(session, [r.id or 0 for r in reqs])
    staff_keys = {skey(s.id or 0) for s in d.staff}
    skills_known = {k for s in d.staff for k in s.skills}
    max_visits = settings.plan_max_visits_per_shift or None
    day_shifts = [Shift(start=a, end=b, max_visits=max_visits) for a, b in shifts(settings)]
    kept = dict(d.kept)
    # A visit already scheduled on this day by hand, not placed by an earlier version: kept
    # at its time with its visitor, as the resident was told.
    for r in reqs:
        v = visits_now.get(r.id or 0)
        k = vkey(r.id or 0)
        if v is not None and k not in kept and k not in d.required:
            kept[k] = Kept(skey(v.staff_id), seconds_of(settings, d.day, v.starts_at))
    lock_skills: dict[str, set[str]] = {}
    visits: list[Visit] = []
    skipped: list[dict[str, Any]] = []
    for r in reqs:
        k = vkey(r.id or 0)
        item = items[r.item_id]
        duration = item.home_visit_minutes * 60
        need = sorted(set(item.home_visit_skills))
        if not set(need) <= skills_known:
            skipped.append(_skip(k, "no_staff_skill"))
            continue
        fixed = kept.get(k)
        if fixed is not None:
            if fixed.staff not in staff_keys:
                skipped.append(_skip(k, "staff_not_planned"))
                continue
            windows = [(fixed.start, fixed.start + duration)]
            lock = LOCK_SKILL.format(staff=fixed.staff)
            lock_skills.setdefault(fixed.staff, set()).add(lock)
            need = [*need, lock]
        else:
            asked = _windows(r, d.day, settings)
            if asked is None:
                skipped.append(_skip(k, "not_this_day"))
                continue
            windows = [
                (max(a, d.from_time), b) for a, b in asked if b - max(a, d.from_time) >= duration
            ]
            if not windows:
                skipped.append(_skip(k, "too_late_today"))
                continue
        who = people[r.resident_id]
        place = places[r.site_id]
        visits.append(
            Visit(
                id=k,
                lat=place.lat,
                lon=place.lng,
                duration=duration,
                windows=[Window(start=a, end=b) for a, b in windows],
                skills=need,
                priority=priority(
                    urgent=(r.id or 0) in d.urgent,
                    age=residents.age_of(who.birth_date, d.day),
                    waited=(d.day - r.created_at.astimezone(_tz(settings)).date()).days,
                ),
                required=fixed is not None or k in d.required,
            )
        )
    depot = Depot(id=d.site.code, lat=d.site.lat, lon=d.site.lng)
    problem = Problem(
        depots=[depot],
        staff=[
            {
                "id": skey(s.id or 0),
                "depot": depot.id,
                "shifts": day_shifts,
                "skills": sorted({*s.skills, *lock_skills.get(skey(s.id or 0), set())}),
            }
            for s in d.staff
        ],
        visits=visits,
        travel=Coordinates(speed_kmh=settings.planner_speed_kmh, detour=settings.planner_detour),
    )
    return problem, skipped


def priority(*, urgent: bool, age: int, waited: int) -> int:
    """Urgent +10, aged 80 or over +3, +1 per day already waited (docs/planning.md)."""
    p = (URGENT_PRIORITY if urgent else 0) + (AGED_PRIORITY if age >= AGED else 0) + max(waited, 0)
    return min(p, MAX_PRIORITY)


def _skip(key: str, reason: str) -> dict[str, Any]:
    return {"visit": key, "reason": reason, "detail": SKIP_REASONS[reason][1]}


async def _rows(session: AsyncSession, model: Any, ids: set[int]) -> dict[int, Any]:
    if not ids:
        return {}
    rows = await session.exec(select(model).where(col(model.id).in_(ids)))
    return {row.id: row for row in rows.all()}


async def _solve(problem: Problem, solve: Solve, seconds: float | None) -> Plan:
    if not problem.visits:
        return Plan(
            routes=[],
            unserved=[],
            totals=Totals(
                distance=0, duration=0, served=0, unserved=0, served_priority=0, required_unserved=0
            ),
            feasible=True,
            seconds=0.0,
        )
    return await solve(problem, seconds)


# -- versions


async def get(*, session: AsyncSession, principal: Principal, plan_id: int) -> VisitPlan:
    row = await session.get(VisitPlan, plan_id)
    if row is None:
        raise NotFound(f"上门服务方案 {plan_id}", f"Visit plan {plan_id}")
    await require_visit_plan(session, principal, row)
    return row


async def latest(session: AsyncSession, site_id: int, day: dt.date) -> VisitPlan | None:
    return (
        await session.exec(
            select(VisitPlan)
            .where(VisitPlan.site_id == site_id, VisitPlan.day == day)
            .order_by(col(VisitPlan.version).desc())
            .limit(1)
        )
    ).first()


async def versions(
    *, session: AsyncSession, principal: Principal, site_id: int, day: dt.date
) -> list[PlanSummary]:
    site = await area(session=session, principal=principal, site_id=site_id)
    rows = (
        await session.exec(
            select(VisitPlan)
            .where(VisitPlan.site_id == site.id, VisitPlan.day == day)
            .order_by(col(VisitPlan.version).desc())
        )
    ).all()
    names = await _names(session, {r.created_by for r in rows if r.created_by})
    return [_summary(r, names) for r in rows]


async def _names(session: AsyncSession, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    rows = await session.exec(select(Staff.id, Staff.display_name).where(col(Staff.id).in_(ids)))
    return dict(rows.all())  # type: ignore[arg-type]


def _summary(r: VisitPlan, names: dict[int, str]) -> PlanSummary:
    return PlanSummary(
        id=r.id or 0,
        site_id=r.site_id,
        day=r.day,
        version=r.version,
        status=PlanStatus(r.status),
        change=PlanChange(r.change),
        note=r.note,
        created_at=r.created_at,
        created_by_name=names.get(r.created_by or 0, ""),
        published_at=r.published_at,
        totals=Plan.model_validate(r.plan).totals,
    )


async def _save(
    session: AsyncSession,
    principal: Principal,
    *,
    site: Site,
    day: dt.date,
    change: PlanChange,
    note: str,
    problem: Problem,
    plan: Plan,
    skipped: list[dict[str, Any]],
    locked: list[str],
    urgent: list[int],
    parent: VisitPlan | None,
    audit_kw: dict[str, Any],
) -> VisitPlan:
    """The day's next version (two writers at once: the unique version lets one through)."""
    last = (
        await session.exec(
            select(func.max(VisitPlan.version)).where(
                VisitPlan.site_id == site.id, VisitPlan.day == day
            )
        )
    ).one()
    row = VisitPlan(
        site_id=site.id or 0,
        day=day,
        version=(last or 0) + 1,
        status=PlanStatus.draft,
        change=change,
        parent_id=parent.id if parent else None,
        note=note[:300],
        problem=problem.model_dump(mode="json"),
        plan=plan.model_dump(mode="json"),
        skipped=skipped,
        locked=sorted(set(locked), key=_order),
        urgent=sorted(set(urgent)),
        created_by=principal.staff_fk,
        created_at=utcnow(),
    )
    try:
        async with session.begin_nested():
            session.add(row)
            await session.flush()
    except IntegrityError:
        raise Conflict("plans.race") from None
    audit.record(
        session,
        action=f"plan.{change}",
        target_type="visit_plan",
        target_id=row.id or 0,
        detail={"site": site.code, "day": day.isoformat(), "version": row.version, "note": note},
        **audit_kw,
    )
    return row


def _order(key: str) -> tuple[str, int]:
    return key[0], key_id(key)


def _check_day(settings: Settings, day: dt.date) -> None:
    first = today(settings)
    if not first <= day <= first + dt.timedelta(days=settings.plan_days_ahead):
        raise Invalid("plans.day", days=settings.plan_days_ahead)


async def create(
    *,
    session: AsyncSession,
    principal: Principal,
    settings: Settings,
    plan_in: PlanIn,
    solve: Solve,
    audit_kw: dict[str, Any],
) -> list[VisitPlan]:
    """Plan one day, or several: the visits a day leaves out roll to the next day (with one
    more day waited). One new version per day."""
    site = await area(session=session, principal=principal, site_id=plan_in.site_id)
    staff = await field_staff(session, site)
    if plan_in.staff_ids:
        chosen = set(plan_in.staff_ids)
        if not chosen <= {s.id for s in staff}:
            raise Invalid("plans.staff")
        staff = [s for s in staff if s.id in chosen]
    days = [plan_in.day + dt.timedelta(days=i) for i in range(plan_in.days)]
    for d in days:
        _check_day(settings, d)
    urgent = set(plan_in.urgent)
    out: list[VisitPlan] = []
    planned: set[int] = set()
    for d in days:
        from_time = _now_seconds(settings) if d == today(settings) else 0
        problem, skipped = await build_problem(
            session,
            settings,
            DayInput(site, d, staff, urgent, {}, set(), planned, from_time),
        )
        # The connection goes back to the pool while the worker process solves.
        await session.commit()
        plan = await _solve(problem, solve, plan_in.seconds)
        planned |= {key_id(s.visit) for r in plan.routes for s in r.stops}
        kept = [v.id for v in problem.visits if v.required]
        out.append(
            await _save(
                session,
                principal,
                site=site,
                day=d,
                change=PlanChange.plan,
                note=f"{len(problem.visits)} visits, {len(staff)} staff",
                problem=problem,
                plan=plan,
                skipped=skipped,
                locked=kept,
                urgent=sorted(urgent),
                parent=None,
                audit_kw=audit_kw,
            )
        )
    return out


def _now_seconds(settings: Settings) -> int:
    now = utcnow().astimezone(_tz(settings))
    return now.hour * 3600 + now.minute * 60 + now.second


async def _editable(session: AsyncSession, principal: Principal, plan_id: int) -> VisitPlan:
    row = await get(session=session, principal=principal, plan_id=plan_id)
    last = await latest(session, row.site_id, row.day)
    if last is not None and last.id != row.id:
        raise Conflict("plans.not_latest", latest=last.version)
    return row


async def lock(
    *,
    session: AsyncSession,
    principal: Principal,
    plan_id: int,
    lock_in: LockIn,
    audit_kw: dict[str, Any],
) -> VisitPlan:
    """Lock (or unlock) planned visits: a re-plan keeps them with their visitor and time."""
    row = await _editable(session, principal, plan_id)
    plan = Plan.model_validate(row.plan)
    planned = {s.visit for r in plan.routes for s in r.stops}
    for k in lock_in.visits:
        if k not in planned:
            raise Invalid("plans.no_visit", visit=k)
    locked = set(row.locked)
    locked = locked | set(lock_in.visits) if lock_in.locked else locked - set(lock_in.visits)
    site = await session.get(Site, row.site_id)
    assert site is not None
    words = "locked" if lock_in.locked else "unlocked"
    return await _save(
        session,
        principal,
        site=site,
        day=row.day,
        change=PlanChange.lock,
        note=f"{words} {', '.join(lock_in.visits)}",
        problem=Problem.model_validate(row.problem),
        plan=plan,
        skipped=row.skipped,
        locked=sorted(locked),
        urgent=row.urgent,
        parent=row,
        audit_kw=audit_kw,
    )


def _moved(plan: Plan, move: MoveIn) -> list[Sequence]:
    seqs = feasibility.sequences(plan)
    seqs = [Sequence(s.staff, s.shift, tuple(v for v in s.visits if v != move.visit)) for s in seqs]
    target = next((s for s in seqs if (s.staff, s.shift) == (move.staff, move.shift)), None)
    if target is None:
        target = Sequence(move.staff, move.shift, ())
        seqs.append(target)
    visits = list(target.visits)
    visits.insert(min(move.position, len(visits)), move.visit)
    starts = {move.visit: move.start} if move.start is not None else {}
    moved = Sequence(move.staff, move.shift, tuple(visits), starts)
    # The other visits of the route keep their times as planned where they can: only the
    # moved visit's time is asked for; the rest are timed as soon as they can be.
    return [moved if s is target else s for s in seqs]


def _breach_read(b: Breach, names: dict[str, str]) -> BreachRead:
    zh, en = BREACH_WORDS[b.code]
    who = names.get(b.staff, b.staff)
    return BreachRead(
        code=b.code,
        staff=b.staff,
        visit=b.visit,
        at=b.at,
        limit=b.limit,
        message=zh.format(staff=who),
        message_en=en.format(staff=who),
    )


async def _staff_names(session: AsyncSession, problem: Problem) -> dict[str, str]:
    names = await _names(session, {key_id(s.id) for s in problem.staff})
    return {skey(i): n for i, n in names.items()}


async def check_move(
    *, session: AsyncSession, principal: Principal, plan_id: int, move_in: MoveIn
) -> tuple[VisitPlan, MoveCheckRead]:
    """What moving one visit would do: every rule it breaks (the checker's rules) and the
    change in distance and duration. Nothing is written."""
    row = await get(session=session, principal=principal, plan_id=plan_id)
    problem = Problem.model_validate(row.problem)
    plan = Plan.model_validate(row.plan)
    if move_in.visit not in {v.id for v in problem.visits}:
        raise Invalid("plans.no_visit", visit=move_in.visit)
    matrix = travel.matrix(problem)
    proposed, breaches = feasibility.schedule(
        problem, matrix, _moved(plan, move_in), unserved=plan.unserved
    )
    names = await _staff_names(session, problem)
    return row, MoveCheckRead(
        feasible=not breaches,
        breaches=[_breach_read(b, names) for b in breaches],
        distance_delta=proposed.totals.distance - plan.totals.distance,
        duration_delta=proposed.totals.duration - plan.totals.duration,
        plan=proposed,
    )


async def move(
    *,
    session: AsyncSession,
    principal: Principal,
    plan_id: int,
    move_in: MoveIn,
    audit_kw: dict[str, Any],
) -> VisitPlan:
    """Move one visit by hand: the next version, if the move keeps every rule; refused with
    the reasons (and nothing written) if not."""
    await _editable(session, principal, plan_id)
    row, checked = await check_move(
        session=session, principal=principal, plan_id=plan_id, move_in=move_in
    )
    if not checked.feasible:
        raise Invalid(
            "plans.move",
            reasons="；".join(b.message for b in checked.breaches),
            reasons_en="; ".join(b.message_en for b in checked.breaches),
            details=[b.model_dump() for b in checked.breaches],
        )
    site = await session.get(Site, row.site_id)
    assert site is not None
    names = await _staff_names(session, Problem.model_validate(row.problem))
    when = f" at {_clock(move_in.start)}" if move_in.start is not None else ""
    return await _save(
        session,
        principal,
        site=site,
        day=row.day,
        change=PlanChange.move,
        note=f"{move_in.visit} to {names.get(move_in.staff, move_in.staff)}{when}",
        problem=Problem.model_validate(row.problem),
        plan=checked.plan,
        skipped=row.skipped,
        locked=row.locked,
        urgent=row.urgent,
        parent=row,
        audit_kw=audit_kw,
    )


def _clock(s: int) -> str:
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}"


async def checked_in(session: AsyncSession, request_ids: list[int]) -> dict[int, dt.datetime]:
    """Request id -> when its current visit was checked in at the door."""
    if not request_ids:
        return {}
    rows = await session.exec(
        select(HomeVisit.request_id, VisitCheckIn.at)
        .join(VisitCheckIn, col(VisitCheckIn.visit_id) == col(HomeVisit.id))
        .where(
            col(HomeVisit.request_id).in_(request_ids), HomeVisit.status != VisitStatus.cancelled
        )
    )
    return dict(rows.all())  # type: ignore[arg-type]


async def replan(
    *,
    session: AsyncSession,
    principal: Principal,
    settings: Settings,
    plan_id: int,
    replan_in: ReplanIn,
    solve: Solve,
    audit_kw: dict[str, Any],
) -> VisitPlan:
    """Re-plan the rest of the day: locked visits, and those already started or checked in,
    stay with their visitor at their time (required, that person's shift only, the window
    narrowed to the planned time); visits residents were told of stay in the plan; requests
    cancelled since drop out; newly accepted and urgent ones come in."""
    row = await _editable(session, principal, plan_id)
    site = await session.get(Site, row.site_id)
    assert site is not None
    plan = Plan.model_validate(row.plan)
    if replan_in.from_time is not None:
        from_time = replan_in.from_time
    else:
        from_time = _now_seconds(settings) if row.day == today(settings) else 0
    planned = {s.visit: (r.staff, s.start) for r in plan.routes for s in r.stops}
    arrived = await checked_in(session, [key_id(k) for k in planned])
    kept = {
        k: Kept(staff, start)
        for k, (staff, start) in planned.items()
        if k in row.locked or start < from_time or key_id(k) in arrived
    }
    told = await _published_keys(session, row)
    staff_ids = {key_id(s["id"]) for s in row.problem["staff"]}
    staff = [s for s in await field_staff(session, site) if s.id in staff_ids]
    urgent = set(row.urgent) | set(replan_in.urgent)
    problem, skipped = await build_problem(
        session,
        settings,
        DayInput(site, row.day, staff, urgent, kept, told - set(kept), set(), from_time),
    )
    await session.commit()
    new_plan = await _solve(problem, solve, replan_in.seconds)
    still = [k for k in row.locked if k in {v.id for v in problem.visits}]
    added = sorted(set(replan_in.urgent))
    note = f"from {_clock(from_time)}, kept {len(kept)}" + (
        f", urgent {', '.join(vkey(i) for i in added)}" if added else ""
    )
    return await _save(
        session,
        principal,
        site=site,
        day=row.day,
        change=PlanChange.replan,
        note=note,
        problem=problem,
        plan=new_plan,
        skipped=skipped,
        locked=still,
        urgent=sorted(urgent),
        parent=row,
        audit_kw=audit_kw,
    )


async def _published_keys(session: AsyncSession, row: VisitPlan) -> set[str]:
    """Visits of the day's published version: their residents were told a time."""
    pub = (
        await session.exec(
            select(VisitPlan).where(
                VisitPlan.site_id == row.site_id,
                VisitPlan.day == row.day,
                VisitPlan.status == PlanStatus.published,
            )
        )
    ).first()
    if pub is None:
        return set()
    return {s.visit for r in Plan.model_validate(pub.plan).routes for s in r.stops}


# -- publishing


async def publish(
    *,
    session: AsyncSession,
    principal: Principal,
    settings: Settings,
    plan_id: int,
    steps: Lifecycle,
    audit_kw: dict[str, Any],
) -> VisitPlan:
    """Schedule the version's visits through the home-service lifecycle (each resident whose
    visit is new or moved is told by SMS, as for a visit set by hand); the day's earlier
    published version is superseded. Refused, changing nothing, when a request changed since
    the plan was made or when the version drops a visit a resident was told of."""
    row = await _editable(session, principal, plan_id)
    if row.status == PlanStatus.published:
        raise Conflict("plans.published")
    plan = Plan.model_validate(row.plan)
    problem = Problem.model_validate(row.problem)
    durations = {v.id: v.duration for v in problem.visits}
    stops = [(r.staff, s) for r in plan.routes for s in r.stops]
    ids = [key_id(s.visit) for _, s in stops]
    reqs = await _rows(session, HomeRequest, set(ids))
    numbers = await _case_numbers(session, list(reqs.values()))
    for i in ids:
        req = reqs.get(i)
        if req is None or req.status not in (HomeStatus.accepted, HomeStatus.scheduled):
            zh, en = STATUS_WORDS[HomeStatus(req.status)] if req else ("已删除", "gone")
            raise Conflict("plans.stale", number=numbers.get(i, str(i)), status=zh, status_en=en)
    planned = {s.visit for _, s in stops}
    gone = [k for k in await _published_keys(session, row) if k not in planned]
    told = await _rows(session, HomeRequest, {key_id(k) for k in gone})
    dropped = sorted(
        k for k in gone if (r := told.get(key_id(k))) and r.status == HomeStatus.scheduled
    )
    if dropped:
        shown = ", ".join(numbers.get(key_id(k), k) for k in dropped)
        raise Conflict("plans.drops_scheduled", numbers=shown)
    now_visits = await current_visits(session, ids)
    changed = []
    for staff, s in stops:
        rid = key_id(s.visit)
        starts_at = at(settings, row.day, s.start)
        v = now_visits.get(rid)
        if v is not None and v.staff_id == key_id(staff) and v.starts_at == starts_at:
            continue  # as the resident was told already
        changed.append((rid, staff, starts_at, durations[s.visit]))
    # Visits that move free their old times first, so two swapped visits do not collide.
    for rid, *_ in changed:
        v = now_visits.get(rid)
        if v is not None:
            v.status = VisitStatus.cancelled
            session.add(v)
    await session.flush()
    for rid, staff, starts_at, seconds in changed:
        await steps.schedule(
            rid,
            starts_at=starts_at,
            minutes=math.ceil(seconds / 60),
            staff_id=key_id(staff),
            planned_by="planner",
        )
    for other in (
        await session.exec(
            select(VisitPlan).where(
                VisitPlan.site_id == row.site_id,
                VisitPlan.day == row.day,
                VisitPlan.status == PlanStatus.published,
            )
        )
    ).all():
        other.status = PlanStatus.superseded
        session.add(other)
    row.status = PlanStatus.published
    row.published_at = utcnow()
    row.published_by = principal.staff_fk
    session.add(row)
    audit.record(
        session,
        action="plan.publish",
        target_type="visit_plan",
        target_id=row.id or 0,
        detail={"version": row.version, "scheduled": len(changed), "visits": len(stops)},
        **audit_kw,
    )
    await session.flush()
    return row


async def _case_numbers(session: AsyncSession, reqs: list[HomeRequest]) -> dict[int, str]:
    cases = await _rows(session, Case, {r.case_id for r in reqs})
    return {r.id or 0: cases[r.case_id].number for r in reqs if r.case_id in cases}


# -- reading


async def read(*, session: AsyncSession, settings: Settings, row: VisitPlan) -> PlanRead:
    """A version with what the page shows beside it: staff, depots, and each request."""
    problem = Problem.model_validate(row.problem)
    plan = Plan.model_validate(row.plan)
    site = await session.get(Site, row.site_id)
    assert site is not None
    names = await _names(session, {row.created_by} if row.created_by else set())
    staff_rows = await _rows(session, Staff, {key_id(s.id) for s in problem.staff})
    keys = [v.id for v in problem.visits] + [s["visit"] for s in row.skipped]
    ids = [key_id(k) for k in keys]
    reqs = await _rows(session, HomeRequest, set(ids))
    people = await _rows(session, Resident, {r.resident_id for r in reqs.values()})
    items = await _rows(session, ServiceItem, {r.item_id for r in reqs.values()})
    places = await _rows(session, Site, {r.site_id for r in reqs.values()})
    numbers = await _case_numbers(session, list(reqs.values()))
    arrived = await checked_in(session, ids)
    in_problem = {v.id: v for v in problem.visits}
    visits = []
    for k in keys:
        r = reqs.get(key_id(k))
        if r is None:
            continue
        v = in_problem.get(k)
        item, who, place = items[r.item_id], people[r.resident_id], places[r.site_id]
        visits.append(
            PlanVisitRead(
                key=k,
                request_id=r.id or 0,
                case_number=numbers.get(r.id or 0, ""),
                status=r.status,
                resident_name=who.name,
                resident_age=residents.age_of(who.birth_date, row.day),
                item_name=item.name,
                item_name_en=item.name_en,
                community=place.name,
                lat=place.lat,
                lng=place.lng,
                duration=v.duration if v else item.home_visit_minutes * 60,
                windows=[(w.start, w.end) for w in v.windows] if v else [],
                skills=[s for s in (v.skills if v else item.home_visit_skills) if "lock." not in s],
                priority=v.priority if v else 0,
                urgent=(r.id or 0) in row.urgent,
                locked=k in row.locked,
                required=bool(v and v.required),
                checked_in_at=arrived.get(r.id or 0),
            )
        )
    last = await latest(session, row.site_id, row.day)
    return PlanRead(
        **_summary(row, names).model_dump(),
        site_name=site.name,
        plan=plan,
        skipped=row.skipped,
        locked=row.locked,
        urgent=row.urgent,
        staff=[
            PlanStaffRead(
                key=s.id,
                staff_id=key_id(s.id),
                name=staff_rows[key_id(s.id)].display_name if key_id(s.id) in staff_rows else s.id,
                skills=[k for k in s.skills if not k.startswith("lock.")],
                depot=s.depot,
            )
            for s in problem.staff
        ],
        depots=[
            PlanDepotRead(
                key=d.id,
                name=site.name if d.id == site.code else d.id,
                name_en=site.name_en if d.id == site.code else d.id,
                lat=d.lat or 0.0,
                lng=d.lon or 0.0,
            )
            for d in problem.depots
        ],
        visits=visits,
        latest=last is not None and last.id == row.id,
        tile_url=settings.map_tile_url,
        tile_attribution=settings.map_tile_attribution,
    )
