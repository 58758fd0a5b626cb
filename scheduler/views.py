"""HTTP handlers for appointments."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from httpapi.api import Api, Ctx
from scheduler import service
from scheduler.models import AppointmentCreate, AppointmentRead

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


def register(api: Api) -> None:
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
