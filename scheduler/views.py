"""HTTP handlers for appointments and home-visit planning."""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from core.errors import Invalid
from httpapi import keys
from httpapi.api import Api, Ctx
from scheduler import calendars, service
from scheduler.models import AppointmentCreate, AppointmentView, SlotsQuery, SlotsRead
from scheduler.planning import travel
from scheduler.planning.problem import Coordinates, Plan, Problem
from scheduler.planning.worker import Planner

PLANNER: web.AppKey[Planner] = web.AppKey("planner", Planner)

V1 = "/api/v1"


class AppointmentQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    resident_id: int | None = Field(default=None, ge=1, le=2**31 - 1)  # a resident: themself


async def book(ctx: Ctx) -> AppointmentView:
    a = await service.book(
        session=ctx.session,
        settings=ctx.settings,
        principal=ctx.me,
        appointment_in=ctx.body,
        sms=ctx.request.app[keys.SMS],
    )
    return await service.view(ctx.session, a)


async def list_appointments(ctx: Ctx) -> list[AppointmentView]:
    me = ctx.me
    resident_id = me.resident_id if me.is_resident else ctx.query.resident_id
    if resident_id is None:
        raise Invalid(details=[{"loc": ["query", "resident_id"], "msg": "required"}])
    rows = await service.list_for(session=ctx.session, principal=me, resident_id=resident_id)
    return [await service.view(ctx.session, a) for a in rows]


async def cancel(ctx: Ctx) -> AppointmentView:
    a = await service.cancel(
        session=ctx.session, principal=ctx.me, appointment_id=ctx.path_int("appointment_id")
    )
    return await service.view(ctx.session, a)


async def line_slots(ctx: Ctx) -> SlotsRead:
    line = await service.line_for_slots(ctx.session, ctx.me, ctx.path_int("line_id"))
    q: SlotsQuery = ctx.query
    return await calendars.slots(ctx.session, ctx.settings, line, start=q.from_, days=q.days)


class SolveQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    seconds: float | None = Field(default=None, gt=0, le=120)


async def solve(ctx: Ctx) -> Plan:
    """Solve a problem in the node's worker process; the database connection is given back
    first (a solve takes seconds)."""
    problem: Problem = ctx.body
    s = ctx.settings
    await ctx.session.commit()
    if isinstance(problem.travel, Coordinates) and s.planner_road_router_url:
        m = await travel.RoadRouter(s.planner_road_router_url).table(travel.points(problem))
        problem = problem.model_copy(update={"travel": m})
    seconds = ctx.query.seconds or s.planner_seconds
    return await ctx.request.app[PLANNER].plan(problem, seconds=seconds)


def register(api: Api) -> None:
    # visit plans and the visit day (they read PLANNER); courier deliveries of licences
    from scheduler import delivery_views, plans_views

    plans_views.register(api)
    delivery_views.register(api)
    api.add(
        "POST",
        f"{V1}/planning/solve",
        solve,
        summary="Plan home visits: routes per staff member and shift, visits left out with "
        "reasons (docs/planning.md)",
        action="plan.solve",
        body=Problem,
        query=SolveQuery,
        response=Plan,
        tags=("planning",),
    )
    api.add(
        "POST",
        f"{V1}/appointments",
        book,
        summary="Book an appointment slot on a line",
        action="appointment.book",
        body=AppointmentCreate,
        response=AppointmentView,
        status=201,
        tags=("appointments",),
    )
    api.add(
        "GET",
        f"{V1}/appointments",
        list_appointments,
        summary="A resident's appointments",
        action="appointment.book",
        query=AppointmentQuery,
        response=list[AppointmentView],
        tags=("appointments",),
    )
    api.add(
        "POST",
        f"{V1}/appointments/{{appointment_id:[0-9]+}}/cancel",
        cancel,
        summary="Cancel a booked appointment",
        action="appointment.book",
        response=AppointmentView,
        tags=("appointments",),
    )
    api.add(
        "GET",
        f"{V1}/lines/{{line_id:[0-9]+}}/slots",
        line_slots,
        summary="A line's appointment calendar: days from `from` (local today), open or why "
        "not, and each slot's remaining places (docs/appointments.md)",
        action="appointment.book",
        query=SlotsQuery,
        response=SlotsRead,
        tags=("appointments",),
    )
