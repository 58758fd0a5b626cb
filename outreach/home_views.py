"""HTTP routes of home service: the items, the hotline's lookup, the eligibility check,
requests and their steps, the field staff to send, and counts per community."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, model_validator

from core.models import ResidentFound
from httpapi import keys
from httpapi.api import Api, Ctx
from outreach import home, home_steps
from outreach.models import (
    HomeAnswerIn,
    HomeCheckIn,
    HomeCheckRead,
    HomeCounts,
    HomeFind,
    HomeItemRead,
    HomeNote,
    HomeReason,
    HomeRequest,
    HomeRequestIn,
    HomeRequestRead,
    HomeScheduleIn,
    HomeStaffChoice,
    HomeStatus,
    HomeVisitDoneIn,
)

V1 = "/api/v1"
ID = "{request_id:[0-9]+}"
MAX_OFFSET = 1_000_000
MAX_COUNT_DAYS = 366
# Days outside these years can only be typos or forged, and the end's next day must exist.
MIN_YEAR, MAX_YEAR = 2000, 2100


class RequestQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: HomeStatus | None = None
    open: bool = False  # only requests still in progress
    mine: bool = False  # only requests I took
    limit: int = Field(default=50, ge=1, le=200)
    offset: int = Field(default=0, ge=0, le=MAX_OFFSET)


class CountsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    start: dt.date  # first day, inclusive, in the deployment's time zone
    end: dt.date  # last day, inclusive

    @model_validator(mode="after")
    def _span(self) -> CountsQuery:
        if not (MIN_YEAR <= self.start.year and self.end.year <= MAX_YEAR):
            raise ValueError(f"days between {MIN_YEAR} and {MAX_YEAR}")
        if self.end < self.start or (self.end - self.start).days >= MAX_COUNT_DAYS:
            raise ValueError(f"start <= end, at most {MAX_COUNT_DAYS} days")
        return self


def _steps(ctx: Ctx) -> home_steps.Lifecycle:
    return home_steps.Lifecycle(
        session=ctx.session,
        principal=ctx.me,
        sms=ctx.request.app[keys.SMS],
        settings=ctx.settings,
        cipher=ctx.request.app[keys.CIPHER],
        request_id=ctx.request_id,
        ip=ctx.ip,
    )


async def _answer(ctx: Ctx, req: HomeRequest) -> HomeRequestRead:
    """A request as the caller may see it (its sensitive part only where allowed, audited)."""
    return await home.read_one(
        session=ctx.session,
        principal=ctx.me,
        cipher=ctx.request.app[keys.CIPHER],
        settings=ctx.settings,
        req=req,
        request_id=ctx.request_id,
        ip=ctx.ip,
    )


async def list_items(ctx: Ctx) -> list[HomeItemRead]:
    return await home.list_items(session=ctx.session)


async def find_resident(ctx: Ctx) -> list[ResidentFound]:
    return await home.find(
        session=ctx.session,
        cipher=ctx.request.app[keys.CIPHER],
        settings=ctx.settings,
        principal=ctx.me,
        find_in=ctx.body,
        request_id=ctx.request_id,
        ip=ctx.ip,
    )


async def check_request(ctx: Ctx) -> HomeCheckRead:
    return await home.check(
        session=ctx.session,
        principal=ctx.me,
        settings=ctx.settings,
        check_in=ctx.body,
        request_id=ctx.request_id,
        ip=ctx.ip,
    )


async def create_request(ctx: Ctx) -> HomeRequestRead:
    req = await home.create(
        session=ctx.session,
        principal=ctx.me,
        cipher=ctx.request.app[keys.CIPHER],
        sms=ctx.request.app[keys.SMS],
        settings=ctx.settings,
        request_in=ctx.body,
        request_id=ctx.request_id,
        ip=ctx.ip,
    )
    return (await home.reads(session=ctx.session, rows=[req], settings=ctx.settings))[0]


async def list_requests(ctx: Ctx) -> list[HomeRequestRead]:
    q: RequestQuery = ctx.query
    rows = await home.list_requests(
        session=ctx.session,
        principal=ctx.me,
        status=q.status,
        open_only=q.open,
        mine=q.mine,
        limit=q.limit,
        offset=q.offset,
    )
    return await home.reads(session=ctx.session, rows=rows, settings=ctx.settings)


async def get_request(ctx: Ctx) -> HomeRequestRead:
    req = await home.visible(
        session=ctx.session, principal=ctx.me, request_id=ctx.path_int("request_id")
    )
    return await _answer(ctx, req)


def _step(
    name: str, run: Callable[[home_steps.Lifecycle, int, Ctx], Awaitable[HomeRequest]]
) -> Callable[[Ctx], Awaitable[HomeRequestRead]]:
    """The handler of one step: the request of the path, the body, the request after it."""

    async def handler(ctx: Ctx) -> HomeRequestRead:
        req = await run(_steps(ctx), ctx.path_int("request_id"), ctx)
        return await _answer(ctx, req)

    handler.__name__ = name  # the operationId
    return handler


accept = _step("accept_request", lambda s, i, c: s.accept(i, c.body.note))
ask = _step("ask_for_information", lambda s, i, c: s.ask(i, c.body.text))
answer = _step("give_information", lambda s, i, c: s.answer(i, c.body))
decline = _step("decline_request", lambda s, i, c: s.decline(i, c.body.text))
cancel = _step("cancel_request", lambda s, i, c: s.cancel(i, c.body.text))
schedule = _step(
    "schedule_visit",
    lambda s, i, c: s.schedule(
        i, starts_at=c.body.starts_at, minutes=c.body.minutes, staff_id=c.body.staff_id
    ),
)
visited = _step("visit_done", lambda s, i, c: s.visited(i, basis_confirmed=c.body.basis_confirmed))
handled = _step("case_handled", lambda s, i, c: s.handled(i, c.body.note))
delivered = _step("result_delivered", lambda s, i, c: s.delivered(i, c.body.note))


async def field_staff(ctx: Ctx) -> list[HomeStaffChoice]:
    return await _steps(ctx).field_staff(ctx.path_int("request_id"))


async def counts(ctx: Ctx) -> list[HomeCounts]:
    q: CountsQuery = ctx.query
    tz = ZoneInfo(ctx.settings.timezone)
    start = dt.datetime.combine(q.start, dt.time(), tz)
    end = dt.datetime.combine(q.end + dt.timedelta(days=1), dt.time(), tz)
    return await home.counts(session=ctx.session, principal=ctx.me, start=start, end=end)


def register(api: Api) -> None:
    tags = ("home service",)
    a = api.add
    a(
        "GET",
        f"{V1}/home/items",
        list_items,
        summary="Service items that can be handled at home, and for whom",
        action="home.request",
        response=list[HomeItemRead],
        tags=tags,
    )
    a(
        "POST",
        f"{V1}/home/find",
        find_resident,
        summary="Find the caller by ID number or registered phone (audited, rate-limited)",
        action="home.intake",
        body=HomeFind,
        response=list[ResidentFound],
        tags=tags,
    )
    a(
        "POST",
        f"{V1}/home/check",
        check_request,
        summary="Whether a resident can be served at home for an item; if not, why and "
        "where else (audited)",
        action="home.request",
        body=HomeCheckIn,
        response=HomeCheckRead,
        tags=tags,
    )
    a(
        "POST",
        f"{V1}/home/requests",
        create_request,
        summary="Take a home-service request (422 with the reasons and alternatives when the "
        "resident does not qualify)",
        action="home.request",
        body=HomeRequestIn,
        response=HomeRequestRead,
        status=201,
        tags=tags,
    )
    a(
        "GET",
        f"{V1}/home/requests",
        list_requests,
        summary="Requests I may see, newest first (addresses masked)",
        action="home.read",
        query=RequestQuery,
        response=list[HomeRequestRead],
        tags=tags,
    )
    a(
        "GET",
        f"{V1}/home/requests/{ID}",
        get_request,
        summary="One request; its sensitive part for the roles that need it (audited)",
        action="home.read",
        response=HomeRequestRead,
        tags=tags,
    )
    steps: list[tuple[str, object, str, type[BaseModel], str]] = [
        ("accept", accept, "home.triage", HomeNote, "Accept a request"),
        ("ask", ask, "home.triage", HomeReason, "Ask the resident for information"),
        ("answer", answer, "home.answer", HomeAnswerIn, "Give the information asked for"),
        ("decline", decline, "home.triage", HomeReason, "Decline a request, with the reason"),
        ("cancel", cancel, "home.cancel", HomeReason, "Cancel a request, with the reason"),
        ("schedule", schedule, "home.triage", HomeScheduleIn, "Set the visit's time and staff"),
        ("visit", visited, "home.visit", HomeVisitDoneIn, "The visit took place"),
        ("handled", handled, "home.triage", HomeNote, "The case was handled"),
        ("delivered", delivered, "home.triage", HomeNote, "The result reached the resident"),
    ]
    for path, handler, action, body, summary in steps:
        a(
            "POST",
            f"{V1}/home/requests/{ID}/{path}",
            handler,  # type: ignore[arg-type]
            summary=summary,
            action=action,
            body=body,
            response=HomeRequestRead,
            tags=tags,
        )
    a(
        "GET",
        f"{V1}/home/requests/{ID}/field-staff",
        field_staff,
        summary="Field staff who can be sent to this request's community",
        action="home.triage",
        response=list[HomeStaffChoice],
        tags=tags,
    )
    a(
        "GET",
        f"{V1}/home/counts",
        counts,
        summary="Requests per community point of my area in a period, by outcome",
        action="home.counts",
        query=CountsQuery,
        response=list[HomeCounts],
        tags=tags,
    )
