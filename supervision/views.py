"""HTTP routes of supervision: the wait and line alerts of the caller's area, their lifecycle,
and their counts per period."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import TypeVar
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, model_validator

from core.db import utcnow
from httpapi.api import Api, Ctx
from supervision import alerts, line_alerts, periods
from supervision.models import AlertCounts, AlertNote, AlertRead, LineAlertRead

R = TypeVar("R")

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


class CountsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    period: periods.Period = periods.Period.day
    date: dt.date | None = None  # a day inside the day, week or month; empty: today
    start: dt.date | None = None  # custom: the first and last day, inclusive
    end: dt.date | None = None

    @model_validator(mode="after")
    def _custom_days(self) -> CountsQuery:
        if self.period == periods.Period.custom:
            if self.start is None or self.end is None or self.end < self.start:
                raise ValueError("a custom period needs start and end, start <= end")
            if (self.end - self.start).days >= periods.MAX_CUSTOM_DAYS:
                raise ValueError(f"a custom period is at most {periods.MAX_CUSTOM_DAYS} days")
        return self


async def list_line_alerts(ctx: Ctx) -> list[LineAlertRead]:
    q: AlertQuery = ctx.query
    return await line_alerts.list_alerts(
        session=ctx.session, principal=ctx.me, open_only=q.open, limit=q.limit
    )


def _act(name: str, action: Callable[..., Awaitable[R]]) -> Callable[[Ctx], Awaitable[R]]:
    """The handler of an acknowledge or resolve: the alert of the path, the note of the body."""

    async def handler(ctx: Ctx) -> R:
        return await action(
            session=ctx.session,
            principal=ctx.me,
            outbox=ctx.outbox,
            alert_id=ctx.path_int("alert_id"),
            note=ctx.body.note,
            now=utcnow(),
            request_id=ctx.request_id,
            ip=ctx.ip,
        )

    handler.__name__ = name  # the operationId
    return handler


acknowledge = _act("acknowledge", alerts.acknowledge)
resolve = _act("resolve", alerts.resolve)
acknowledge_line = _act("acknowledge_line", line_alerts.acknowledge)
resolve_line = _act("resolve_line", line_alerts.resolve)


async def alert_counts(ctx: Ctx) -> AlertCounts:
    q: CountsQuery = ctx.query
    tz = ctx.settings.timezone
    today = q.date or utcnow().astimezone(ZoneInfo(tz)).date()
    start, end = periods.bounds(q.period, tz=tz, today=today, start=q.start, end=q.end)
    return await line_alerts.counts(session=ctx.session, principal=ctx.me, start=start, end=end)


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
    api.add(
        "GET",
        f"{V1}/alerts/counts",
        alert_counts,
        summary="Yellow, red and wait alerts raised in a day, week, month or custom period",
        action="alert.read",
        query=CountsQuery,
        response=AlertCounts,
        tags=("supervision",),
    )
    api.add(
        "GET",
        f"{V1}/line-alerts",
        list_line_alerts,
        summary="Yellow and red line alerts of the lines in my area, newest first",
        action="alert.read",
        query=AlertQuery,
        response=list[LineAlertRead],
        tags=("supervision",),
    )
    api.add(
        "POST",
        f"{V1}/line-alerts/{{alert_id:[0-9]+}}/acknowledge",
        acknowledge_line,
        summary="Take a line alert on, with a note of what will be done (audited)",
        action="alert.manage",
        body=AlertNote,
        response=LineAlertRead,
        tags=("supervision",),
    )
    api.add(
        "POST",
        f"{V1}/line-alerts/{{alert_id:[0-9]+}}/resolve",
        resolve_line,
        summary="Close a line alert by hand (audited)",
        action="alert.manage",
        body=AlertNote,
        response=LineAlertRead,
        tags=("supervision",),
    )
