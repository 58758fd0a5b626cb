"""HTTP routes of supervision: the wait alerts of the caller's area and their lifecycle."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from core.db import utcnow
from httpapi.api import Api, Ctx
from supervision import alerts
from supervision.models import AlertNote, AlertRead

V1 = "/api/v1"


class AlertQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    open: bool = True
    limit: int = Field(default=100, ge=1, le=500)


async def list_alerts(ctx: Ctx) -> list[AlertRead]:
    q: AlertQuery = ctx.query
    return await alerts.list_alerts(
        session=ctx.session, principal=ctx.me, open_only=q.open, limit=q.limit
    )


async def acknowledge(ctx: Ctx) -> AlertRead:
    return await alerts.acknowledge(
        session=ctx.session,
        principal=ctx.me,
        outbox=ctx.outbox,
        alert_id=ctx.path_int("alert_id"),
        note=ctx.body.note,
        now=utcnow(),
        request_id=ctx.request_id,
        ip=ctx.ip,
    )


async def resolve(ctx: Ctx) -> AlertRead:
    return await alerts.resolve(
        session=ctx.session,
        principal=ctx.me,
        outbox=ctx.outbox,
        alert_id=ctx.path_int("alert_id"),
        note=ctx.body.note,
        now=utcnow(),
        request_id=ctx.request_id,
        ip=ctx.ip,
    )


def register(api: Api) -> None:
    api.add(
        "GET",
        f"{V1}/alerts",
        list_alerts,
        summary="Wait alerts of the lines in my area, newest first",
        action="alert.read",
        query=AlertQuery,
        response=list[AlertRead],
        tags=("supervision",),
    )
    api.add(
        "POST",
        f"{V1}/alerts/{{alert_id:[0-9]+}}/acknowledge",
        acknowledge,
        summary="Take an alert on, with a note of what will be done (audited)",
        action="alert.manage",
        body=AlertNote,
        response=AlertRead,
        tags=("supervision",),
    )
    api.add(
        "POST",
        f"{V1}/alerts/{{alert_id:[0-9]+}}/resolve",
        resolve,
        summary="Close an alert by hand (audited)",
        action="alert.manage",
        body=AlertNote,
        response=AlertRead,
        tags=("supervision",),
    )
