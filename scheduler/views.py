"""HTTP handlers for appointments and home-visit planning."""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from httpapi.api import Api, Ctx
from scheduler import service
from scheduler.models import AppointmentCreate, AppointmentRead
from scheduler.planning import travel
from scheduler.planning.problem import Coordinates, Plan, Problem
from scheduler.planning.worker import Planner

PLANNER: web.AppKey[Planner] = web.AppKey("planner", Planner)

V1 = "/api/v1"


class AppointmentQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    resident_id: int = Field(ge=1, le=2**31 - 1)


async def book(ctx: Ctx) -> AppointmentRead:
    a = await service.book(
        session=ctx.session, settings=ctx.settings, principal=ctx.me, appointment_in=ctx.body
    )
    return service.read(a)


async def list_appointments(ctx: Ctx) -> list[AppointmentRead]:
    rows = await service.list_for(
        session=ctx.session, principal=ctx.me, resident_id=ctx.query.resident_id
    )
    return [service.read(a) for a in rows]


async def cancel(ctx: Ctx) -> AppointmentRead:
    a = await service.cancel(
        session=ctx.session, principal=ctx.me, appointment_id=ctx.path_int("appointment_id")
    )
    return service.read(a)


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
        response=AppointmentRead,
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
        response=list[AppointmentRead],
        tags=("appointments",),
    )
    api.add(
        "POST",
        f"{V1}/appointments/{{appointment_id:[0-9]+}}/cancel",
        cancel,
        summary="Cancel a booked appointment",
        action="appointment.book",
        response=AppointmentRead,
        tags=("appointments",),
    )
