"""HTTP routes of visit plans (coordinators) and of the visit day (field staff)."""

from __future__ import annotations

from httpapi import keys
from httpapi.api import Api, Ctx
from outreach.home_steps import Lifecycle
from scheduler import field, plans
from scheduler.models import (
    CheckInIn,
    CheckInRead,
    DayQuery,
    FieldRouteRead,
    LockIn,
    MoveCheckRead,
    MoveIn,
    PlanAreaRead,
    PlanIn,
    PlanQuery,
    PlanRead,
    PlanSiteQuery,
    PlanStaffRead,
    PlanSummary,
    ReplanIn,
    ServicePointRead,
    VisitPlan,
)
from scheduler.planning import travel
from scheduler.planning.problem import Coordinates, Plan, Problem
from scheduler.views import PLANNER

V1 = "/api/v1"
PLAN = "{plan_id:[0-9]+}"
VISIT = "{visit_id:[0-9]+}"


def _solver(ctx: Ctx) -> plans.Solve:
    """Solves in the node's worker process; road times first when a router is configured."""
    s = ctx.settings

    async def solve(problem: Problem, seconds: float | None) -> Plan:
        if isinstance(problem.travel, Coordinates) and s.planner_road_router_url:
            m = await travel.RoadRouter(s.planner_road_router_url).table(travel.points(problem))
            problem = problem.model_copy(update={"travel": m})
        return await ctx.request.app[PLANNER].plan(problem, seconds=seconds or s.planner_seconds)

    return solve


async def _read(ctx: Ctx, row: VisitPlan) -> PlanRead:
    return await plans.read(session=ctx.session, settings=ctx.settings, row=row)


async def list_areas(ctx: Ctx) -> list[PlanAreaRead]:
    return await plans.areas(session=ctx.session, principal=ctx.me)


async def plan_staff(ctx: Ctx) -> list[PlanStaffRead]:
    return await plans.staff_choices(
        session=ctx.session, principal=ctx.me, site_id=ctx.query.site_id
    )


async def list_versions(ctx: Ctx) -> list[PlanSummary]:
    return await plans.versions(
        session=ctx.session, principal=ctx.me, site_id=ctx.query.site_id, day=ctx.query.day
    )


async def create_plan(ctx: Ctx) -> list[PlanRead]:
    rows = await plans.create(
        session=ctx.session,
        principal=ctx.me,
        settings=ctx.settings,
        plan_in=ctx.body,
        solve=_solver(ctx),
        audit_kw=ctx.audit_kw(),
    )
    return [await _read(ctx, r) for r in rows]


async def get_plan(ctx: Ctx) -> PlanRead:
    row = await plans.get(session=ctx.session, principal=ctx.me, plan_id=ctx.path_int("plan_id"))
    return await _read(ctx, row)


async def lock_visits(ctx: Ctx) -> PlanRead:
    row = await plans.lock(
        session=ctx.session,
        principal=ctx.me,
        plan_id=ctx.path_int("plan_id"),
        lock_in=ctx.body,
        audit_kw=ctx.audit_kw(),
    )
    return await _read(ctx, row)


async def check_move(ctx: Ctx) -> MoveCheckRead:
    _, checked = await plans.check_move(
        session=ctx.session, principal=ctx.me, plan_id=ctx.path_int("plan_id"), move_in=ctx.body
    )
    return checked


async def move_visit(ctx: Ctx) -> PlanRead:
    row = await plans.move(
        session=ctx.session,
        principal=ctx.me,
        plan_id=ctx.path_int("plan_id"),
        move_in=ctx.body,
        audit_kw=ctx.audit_kw(),
    )
    return await _read(ctx, row)


async def replan(ctx: Ctx) -> PlanRead:
    row = await plans.replan(
        session=ctx.session,
        principal=ctx.me,
        settings=ctx.settings,
        plan_id=ctx.path_int("plan_id"),
        replan_in=ctx.body,
        solve=_solver(ctx),
        audit_kw=ctx.audit_kw(),
    )
    return await _read(ctx, row)


async def publish(ctx: Ctx) -> PlanRead:
    steps = Lifecycle(
        session=ctx.session,
        principal=ctx.me,
        sms=ctx.request.app[keys.SMS],
        settings=ctx.settings,
        cipher=ctx.request.app[keys.CIPHER],
        request_id=ctx.request_id,
        ip=ctx.ip,
    )
    row = await plans.publish(
        session=ctx.session,
        principal=ctx.me,
        settings=ctx.settings,
        plan_id=ctx.path_int("plan_id"),
        steps=steps,
        audit_kw=ctx.audit_kw(),
    )
    return await _read(ctx, row)


async def field_route(ctx: Ctx) -> FieldRouteRead:
    return await field.route(
        session=ctx.session,
        principal=ctx.me,
        cipher=ctx.request.app[keys.CIPHER],
        settings=ctx.settings,
        day=ctx.query.day,
        audit_kw=ctx.audit_kw(),
    )


async def check_in(ctx: Ctx) -> CheckInRead:
    return await field.check_in(
        session=ctx.session,
        principal=ctx.me,
        settings=ctx.settings,
        visit_id=ctx.path_int("visit_id"),
        check_in_in=ctx.body,
        audit_kw=ctx.audit_kw(),
    )


async def service_point(ctx: Ctx) -> ServicePointRead:
    return await field.service_point(
        session=ctx.session,
        principal=ctx.me,
        settings=ctx.settings,
        visit_id=ctx.path_int("visit_id"),
    )


def register(api: Api) -> None:
    tags = ("plans",)
    api.add(
        "GET",
        f"{V1}/plans/areas",
        list_areas,
        summary="The areas (towns, the district) the caller may plan visits for",
        action="plan.read",
        response=list[PlanAreaRead],
        tags=tags,
    )
    api.add(
        "GET",
        f"{V1}/plans/staff",
        plan_staff,
        summary="The field staff an area's plan can send",
        action="plan.read",
        query=PlanSiteQuery,
        response=list[PlanStaffRead],
        tags=tags,
    )
    api.add(
        "GET",
        f"{V1}/plans",
        list_versions,
        summary="The versions of an area's plan for a day, newest first",
        action="plan.read",
        query=PlanQuery,
        response=list[PlanSummary],
        tags=tags,
    )
    api.add(
        "POST",
        f"{V1}/plans",
        create_plan,
        summary="Plan a day (or several) of home visits from the area's accepted requests: a "
        "new version per day",
        action="plan.manage",
        body=PlanIn,
        response=list[PlanRead],
        status=201,
        tags=tags,
    )
    api.add(
        "GET",
        f"{V1}/plans/{PLAN}",
        get_plan,
        summary="One version of a plan: routes, visits left out with reasons, totals",
        action="plan.read",
        response=PlanRead,
        tags=tags,
    )
    api.add(
        "POST",
        f"{V1}/plans/{PLAN}/locks",
        lock_visits,
        summary="Lock or unlock planned visits (a re-plan keeps locked ones): a new version",
        action="plan.manage",
        body=LockIn,
        response=PlanRead,
        status=201,
        tags=tags,
    )
    api.add(
        "POST",
        f"{V1}/plans/{PLAN}/move/check",
        check_move,
        summary="What moving one visit by hand would do: the rules it breaks, the change in "
        "cost. Nothing is written",
        action="plan.read",
        body=MoveIn,
        response=MoveCheckRead,
        tags=tags,
    )
    api.add(
        "POST",
        f"{V1}/plans/{PLAN}/move",
        move_visit,
        summary="Move one visit by hand: a new version, or 422 with the reasons",
        action="plan.manage",
        body=MoveIn,
        response=PlanRead,
        status=201,
        tags=tags,
    )
    api.add(
        "POST",
        f"{V1}/plans/{PLAN}/replan",
        replan,
        summary="Re-plan the rest of the day, keeping locked visits: a new version",
        action="plan.manage",
        body=ReplanIn,
        response=PlanRead,
        status=201,
        tags=tags,
    )
    api.add(
        "POST",
        f"{V1}/plans/{PLAN}/publish",
        publish,
        summary="Publish a version: its visits are scheduled and residents told by SMS",
        action="plan.manage",
        response=PlanRead,
        tags=tags,
    )
    api.add(
        "GET",
        f"{V1}/field/route",
        field_route,
        summary="The field staff member's visits of a day, in order, with addresses (audited)",
        action="field.route",
        query=DayQuery,
        response=FieldRouteRead,
        tags=("field",),
    )
    api.add(
        "POST",
        f"{V1}/field/visits/{VISIT}/check-in",
        check_in,
        summary="Check in at the resident's door: time and GPS (audited)",
        action="field.check_in",
        body=CheckInIn,
        response=CheckInRead,
        status=201,
        tags=("field",),
    )
    api.add(
        "GET",
        f"{V1}/field/visits/{VISIT}/service",
        service_point,
        summary="What the tablet needs to take a number for the visit's case at the home",
        action="field.route",
        response=ServicePointRead,
        tags=("field",),
    )
