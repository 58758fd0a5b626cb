"""HTTP handlers of residents: ID checks, registration, lookup, masked reads, reveal."""

from __future__ import annotations

from pydantic import BaseModel

from core import audit, residents
from core.access import require_resident
from core.models import IdNumberCheck, ResidentCreate, ResidentFound, ResidentLookup, ResidentRead
from coreapi.shapes import V1
from httpapi import keys
from httpapi.api import Api, Ctx


class RevealRead(BaseModel):
    id_number: str


async def check_id_number(ctx: Ctx) -> IdNumberCheck:
    return residents.check(ctx.body.id_number)


async def create_resident(ctx: Ctx) -> ResidentRead:
    row = await residents.create(
        session=ctx.session,
        cipher=ctx.request.app[keys.CIPHER],
        resident_in=ctx.body,
        created_by=ctx.me.staff_id,
    )
    audit.record(
        ctx.session,
        action="resident.create",
        target_type="resident",
        target_id=row.id or 0,
        **ctx.audit_kw(),
    )
    return residents.read(row)


async def lookup_resident(ctx: Ctx) -> ResidentFound:
    return await residents.lookup(
        session=ctx.session,
        cipher=ctx.request.app[keys.CIPHER],
        settings=ctx.settings,
        principal=ctx.me,
        id_number=ctx.body.id_number,
        request_id=ctx.request_id,
        ip=ctx.ip,
    )


async def _visible_resident(ctx: Ctx) -> residents.Resident:
    row = await residents.get(session=ctx.session, resident_id=ctx.path_int("resident_id"))
    await require_resident(ctx.session, ctx.me, row)
    return row


async def get_resident(ctx: Ctx) -> ResidentRead:
    row = await _visible_resident(ctx)
    audit.record(
        ctx.session,
        action="resident.view",
        target_type="resident",
        target_id=row.id or 0,
        **ctx.audit_kw(),
    )
    return residents.read(row)


async def reveal_resident_id(ctx: Ctx) -> RevealRead:
    row = await _visible_resident(ctx)
    audit.record(
        ctx.session,
        action="resident.reveal_id",
        target_type="resident",
        target_id=row.id or 0,
        **ctx.audit_kw(),
    )
    return RevealRead(id_number=residents.reveal(ctx.request.app[keys.CIPHER], row))


def register(api: Api) -> None:
    a = api.add
    id_ = r"{%s:[0-9]+}"
    a(
        "POST",
        f"{V1}/identity/check",
        check_id_number,
        summary="Validate an ID number live",
        action="resident.read",
        body=ResidentLookup,
        response=IdNumberCheck,
        tags=("residents",),
    )
    a(
        "POST",
        f"{V1}/residents",
        create_resident,
        summary="Register a resident",
        action="resident.create",
        body=ResidentCreate,
        response=ResidentRead,
        status=201,
        tags=("residents",),
    )
    a(
        "POST",
        f"{V1}/residents/lookup",
        lookup_resident,
        summary="Find a resident by the ID number on their card (audited, rate-limited)",
        action="resident.read",
        body=ResidentLookup,
        response=ResidentFound,
        tags=("residents",),
    )
    a(
        "GET",
        f"{V1}/residents/{id_ % 'resident_id'}",
        get_resident,
        summary="One resident (masked)",
        action="resident.read",
        response=ResidentRead,
        tags=("residents",),
    )
    a(
        "POST",
        f"{V1}/residents/{id_ % 'resident_id'}/reveal",
        reveal_resident_id,
        summary="The full ID number (audited)",
        action="resident.reveal_id",
        response=RevealRead,
        tags=("residents",),
    )
