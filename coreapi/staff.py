"""HTTP handlers of staff and the audit log."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, Field

from core import audit, staff
from core.inputs import MAX_ID
from core.models import AuditEntry, Role, StaffCreate, StaffRead
from coreapi.shapes import MAX_OFFSET, V1, Query
from httpapi import keys
from httpapi.api import Api, Ctx


class StaffQuery(Query):
    role: Role | None = None
    limit: int = Field(default=200, ge=1, le=1000)
    offset: int = Field(default=0, ge=0, le=MAX_OFFSET)


class AuditQuery(Query):
    action: str | None = Field(default=None, max_length=64)
    target_type: str | None = Field(default=None, max_length=32)
    target_id: str | None = Field(default=None, max_length=64)
    actor_id: int | None = Field(default=None, ge=1, le=MAX_ID)
    before_id: int | None = Field(default=None, ge=1, le=MAX_ID)
    limit: int = Field(default=100, ge=1, le=500)


class AuditRead(BaseModel):
    id: int
    at: dt.datetime
    actor_id: int | None
    actor_role: str
    action: str
    target_type: str
    target_id: str
    detail: dict[str, object]
    request_id: str


async def list_staff(ctx: Ctx) -> list[StaffRead]:
    q: StaffQuery = ctx.query
    rows = await staff.list_staff(session=ctx.session, role=q.role, limit=q.limit, offset=q.offset)
    return [await staff.read(session=ctx.session, staff=s) for s in rows]


async def create_staff(ctx: Ctx) -> StaffRead:
    row = await staff.create(
        session=ctx.session, passwords=ctx.request.app[keys.PASSWORDS], staff_in=ctx.body
    )
    audit.record(
        ctx.session,
        action="staff.create",
        target_type="staff",
        target_id=row.id or 0,
        detail={"username": row.username, "role": row.role},
        **ctx.audit_kw(),
    )
    return await staff.read(session=ctx.session, staff=row)


async def list_audit(ctx: Ctx) -> list[AuditRead]:
    q: AuditQuery = ctx.query
    rows: list[AuditEntry] = await audit.list_entries(
        session=ctx.session,
        action=q.action,
        target_type=q.target_type,
        target_id=q.target_id,
        actor_id=q.actor_id,
        limit=q.limit,
        before_id=q.before_id,
    )
    return [AuditRead.model_validate(r, from_attributes=True) for r in rows]


def register(api: Api) -> None:
    a = api.add
    a(
        "GET",
        f"{V1}/staff",
        list_staff,
        summary="Staff",
        action="staff.read",
        query=StaffQuery,
        response=list[StaffRead],
        tags=("staff",),
    )
    a(
        "POST",
        f"{V1}/staff",
        create_staff,
        summary="Add a staff member",
        action="staff.manage",
        body=StaffCreate,
        response=StaffRead,
        status=201,
        tags=("staff",),
    )
    a(
        "GET",
        f"{V1}/audit",
        list_audit,
        summary="Audit log",
        action="audit.read",
        query=AuditQuery,
        response=list[AuditRead],
        tags=("audit",),
    )
