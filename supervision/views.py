"""HTTP routes of supervision: the alerts of the caller's area (wait, line and overdue
follow-up alerts, one lifecycle), their counts per period, the thresholds of the area, and the
bad-rating follow-ups."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, model_validator

from core.db import utcnow
from httpapi.api import Api, Ctx
from supervision import (
    alerts,
    board_views,
    followups,
    lifecycle,
    line_alerts,
    periods,
    stats_views,
    thresholds,
    tidal_views,
)
from supervision.lifecycle import Kind
from supervision.models import (
    AlertCounts,
    AlertNote,
    AlertRead,
    DepartmentThresholdRead,
    FollowupAlertRead,
    FollowupContact,
    FollowupRead,
    FollowupRecordIn,
    LineAlertRead,
    LineThresholdRead,
    ThresholdsIn,
    ThresholdsView,
)

V1 = "/api/v1"
ID = "{%s:[0-9]+}"
TAGS = ("supervision",)


class AlertQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    open: bool = True
    limit: int = Field(default=100, ge=1, le=500)


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


# -- the alerts: one lifecycle, three kinds, the same three routes each


def _list(name: str, kind: Kind[Any, Any]) -> Callable[[Ctx], Awaitable[list[Any]]]:
    async def handler(ctx: Ctx) -> list[Any]:
        q: AlertQuery = ctx.query
        return await lifecycle.list_alerts(
            kind, session=ctx.session, principal=ctx.me, open_only=q.open, limit=q.limit
        )

    handler.__name__ = name  # the operationId
    return handler


def _act(name: str, kind: Kind[Any, Any], step: Callable[..., Awaitable[Any]]) -> Any:
    """The handler of an acknowledge or resolve: the alert of the path, the note of the body."""

    async def handler(ctx: Ctx) -> Any:
        return await step(
            kind,
            session=ctx.session,
            principal=ctx.me,
            outbox=ctx.outbox,
            alert_id=ctx.path_int("alert_id"),
            note=ctx.body.note,
            now=utcnow(),
            request_id=ctx.request_id,
            ip=ctx.ip,
        )

    handler.__name__ = name
    return handler


# (path, kind, read shape, operationId suffix, what the summaries call it)
KINDS: tuple[tuple[str, Kind[Any, Any], Any, str, str], ...] = (
    ("alerts", alerts.WAIT, AlertRead, "", "wait alert"),
    ("line-alerts", line_alerts.LINE, LineAlertRead, "_line", "line alert"),
    (
        "followup-alerts",
        followups.FOLLOWUP,
        FollowupAlertRead,
        "_followup",
        "overdue follow-up alert",
    ),
)


async def alert_counts(ctx: Ctx) -> AlertCounts:
    q: CountsQuery = ctx.query
    tz = ctx.settings.timezone
    now = utcnow()
    today = q.date or now.astimezone(ZoneInfo(tz)).date()
    start, end = periods.bounds(q.period, tz=tz, today=today, start=q.start, end=q.end)
    out = await line_alerts.counts(session=ctx.session, principal=ctx.me, start=start, end=end)
    opened, on_time, overdue = await followups.counts(
        session=ctx.session, principal=ctx.me, start=start, end=end, now=now
    )
    out.followups_opened, out.followups_closed_on_time, out.followups_overdue = (
        opened,
        on_time,
        overdue,
    )
    return out


# -- thresholds


async def get_thresholds(ctx: Ctx) -> ThresholdsView:
    return await thresholds.view(session=ctx.session, principal=ctx.me, settings=ctx.settings)


async def set_line_thresholds(ctx: Ctx) -> LineThresholdRead:
    return await thresholds.set_line(
        session=ctx.session,
        principal=ctx.me,
        settings=ctx.settings,
        line_id=ctx.path_int("line_id"),
        body=ctx.body,
        request_id=ctx.request_id,
        ip=ctx.ip,
    )


async def set_department_thresholds(ctx: Ctx) -> DepartmentThresholdRead:
    return await thresholds.set_department(
        session=ctx.session,
        principal=ctx.me,
        settings=ctx.settings,
        site_id=ctx.path_int("site_id"),
        department=ctx.request.match_info["department"],
        body=ctx.body,
        request_id=ctx.request_id,
        ip=ctx.ip,
    )


# -- follow-ups


class FollowupQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    open: bool = True
    limit: int = Field(default=200, ge=1, le=500)


async def list_followups(ctx: Ctx) -> list[FollowupRead]:
    q: FollowupQuery = ctx.query
    return await followups.list_followups(
        session=ctx.session, principal=ctx.me, open_only=q.open, limit=q.limit, now=utcnow()
    )


async def get_followup(ctx: Ctx) -> FollowupRead:
    return await followups.get_followup(
        session=ctx.session,
        principal=ctx.me,
        followup_id=ctx.path_int("followup_id"),
        now=utcnow(),
    )


async def record_followup(ctx: Ctx) -> FollowupRead:
    return await followups.record(
        session=ctx.session,
        principal=ctx.me,
        outbox=ctx.outbox,
        followup_id=ctx.path_int("followup_id"),
        body=ctx.body,
        now=utcnow(),
        request_id=ctx.request_id,
        ip=ctx.ip,
    )


async def followup_contact(ctx: Ctx) -> FollowupContact:
    return await followups.contact(
        session=ctx.session,
        principal=ctx.me,
        followup_id=ctx.path_int("followup_id"),
        request_id=ctx.request_id,
        ip=ctx.ip,
    )


def register(api: Api) -> None:
    board_views.register(api)
    tidal_views.register(api)  # tidal windows (supervision/tidal_views.py)
    stats_views.register(api)  # statistics (supervision/stats_views.py)
    for path, kind, read, suffix, what in KINDS:
        api.add(
            "GET",
            f"{V1}/{path}",
            _list(f"list_{path.replace('-', '_')}", kind),
            summary=f"The {what}s of the lines in my area, newest first",
            action="alert.read",
            query=AlertQuery,
            response=list[read],
            tags=TAGS,
        )
        for step, verb, summary in (
            ("acknowledge", lifecycle.acknowledge, "Take {} on, with a note of what will be done"),
            ("resolve", lifecycle.resolve, "Close {} by hand"),
        ):
            api.add(
                "POST",
                f"{V1}/{path}/{ID % 'alert_id'}/{step}",
                _act(f"{step}{suffix}", kind, verb),
                summary=summary.format(f"a {what}") + " (audited)",
                action="alert.manage",
                body=AlertNote,
                response=read,
                tags=TAGS,
            )
    api.add(
        "GET",
        f"{V1}/alerts/counts",
        alert_counts,
        summary=(
            "Yellow, red and wait alerts raised, and bad-rating follow-ups opened, closed on "
            "time and overdue, in a day, week, month or custom period"
        ),
        action="alert.read",
        query=CountsQuery,
        response=AlertCounts,
        tags=TAGS,
    )
    api.add(
        "GET",
        f"{V1}/thresholds",
        get_thresholds,
        summary="The alert thresholds of my area: defaults, departments, and each line's own",
        action="threshold.read",
        response=ThresholdsView,
        tags=TAGS,
    )
    api.add(
        "PUT",
        f"{V1}/thresholds/lines/{ID % 'line_id'}",
        set_line_thresholds,
        summary="Set a line's own thresholds; an empty field inherits (audited)",
        action="threshold.manage",
        body=ThresholdsIn,
        response=LineThresholdRead,
        tags=TAGS,
    )
    api.add(
        "PUT",
        f"{V1}/thresholds/departments/{ID % 'site_id'}/{{department:[a-z0-9_]+}}",
        set_department_thresholds,
        summary="Set a department's thresholds at a site of my area; empty inherits (audited)",
        action="threshold.manage",
        body=ThresholdsIn,
        response=DepartmentThresholdRead,
        tags=TAGS,
    )
    api.add(
        "GET",
        f"{V1}/followups",
        list_followups,
        summary="Bad-rating follow-ups of my area: open ones by deadline, or all, newest first",
        action="followup.read",
        query=FollowupQuery,
        response=list[FollowupRead],
        tags=TAGS,
    )
    api.add(
        "GET",
        f"{V1}/followups/{ID % 'followup_id'}",
        get_followup,
        summary="One bad-rating follow-up",
        action="followup.read",
        response=FollowupRead,
        tags=TAGS,
    )
    api.add(
        "POST",
        f"{V1}/followups/{ID % 'followup_id'}/record",
        record_followup,
        summary="Record the call-back and the rectification, and close when both are done",
        action="followup.manage",
        body=FollowupRecordIn,
        response=FollowupRead,
        tags=TAGS,
    )
    api.add(
        "POST",
        f"{V1}/followups/{ID % 'followup_id'}/contact",
        followup_contact,
        summary="The resident's phone number for the call-back (audited)",
        action="followup.manage",
        response=FollowupContact,
        tags=TAGS,
    )
