"""HTTP routes of the licence register and the expiry reminders: the staff's register, imports
of existing licences, each type's reminder policy, the counts per period, and the resident's
own reminders."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from aiohttp import ClientPayloadError
from pydantic import BaseModel, ConfigDict, Field, model_validator

from core.access import area_sites
from core.db import utcnow
from core.errors import AppError, Invalid, TooLarge, UnsupportedMediaType
from core.inputs import Id
from httpapi import keys
from httpapi.api import Api, Ctx, request_lang
from outreach import licence_import, licences, reminders
from outreach.models import (
    LicenceImportRead,
    LicencePage,
    LicenceRead,
    LicenceStatus,
    LicenceTypeRead,
    PolicyIn,
    ReminderCounts,
    ReminderStopIn,
    ResidentRemindersRead,
)

V1 = "/api/v1"
TAGS = ("licences",)
# What an import may be sent as; the content decides between CSV and XLSX.
IMPORT_TYPES = frozenset(
    {"text/csv", "application/csv", licence_import.XLSX, "application/octet-stream"}
)
# A custom period longer than this is a statistics question.
MAX_COUNT_DAYS = 366


def _today(ctx: Ctx) -> dt.date:
    return licences.local_date(utcnow(), ctx.settings)


class LicenceQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type_id: Id | None = None
    status: LicenceStatus | None = None
    expiring_days: int | None = Field(default=None, ge=0, le=3660)
    expired: bool = False
    q: str = Field(default="", max_length=64)
    limit: int = Field(default=50, ge=1, le=licences.MAX_PAGE)
    offset: int = Field(default=0, ge=0, le=1_000_000)


class ImportQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    site_id: Id
    filename: str = Field(default="", max_length=200)


class CountsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # the first and last day, inclusive, in the district's time zone
    start: dt.date = Field(ge=dt.date(2000, 1, 1), le=dt.date(2100, 12, 31))
    end: dt.date = Field(ge=dt.date(2000, 1, 1), le=dt.date(2100, 12, 31))

    @model_validator(mode="after")
    def _days(self) -> CountsQuery:
        if self.end < self.start:
            raise ValueError("end is before start")
        if (self.end - self.start).days >= MAX_COUNT_DAYS:
            raise ValueError(f"a period is at most {MAX_COUNT_DAYS} days")
        return self


async def list_types(ctx: Ctx) -> list[LicenceTypeRead]:
    return await licences.list_types(ctx.session)


async def set_policy(ctx: Ctx) -> LicenceTypeRead:
    body: PolicyIn = ctx.body
    return await licences.set_policy(
        session=ctx.session,
        principal=ctx.me,
        type_id=ctx.path_int("type_id"),
        offsets=body.offsets,
        request_id=ctx.request_id,
        ip=ctx.ip,
    )


async def list_licences(ctx: Ctx) -> LicencePage:
    q: LicenceQuery = ctx.query
    return await licences.list_licences(
        session=ctx.session,
        principal=ctx.me,
        cipher=ctx.request.app[keys.CIPHER],
        today=_today(ctx),
        type_id=q.type_id,
        status=q.status,
        expiring_days=q.expiring_days,
        expired=q.expired,
        q=q.q,
        limit=q.limit,
        offset=q.offset,
        request_id=ctx.request_id,
        ip=ctx.ip,
    )


async def get_licence(ctx: Ctx) -> LicenceRead:
    return await licences.get_licence(
        session=ctx.session, principal=ctx.me, licence_id=ctx.path_int("licence_id")
    )


class ImportInterrupted(AppError):
    status = 400
    default_code = "upload.interrupted"


async def _body(ctx: Ctx) -> bytes:
    """The file, refused past the limit without reading further."""
    request, limit = ctx.request, ctx.settings.licence_import_max_bytes
    if request.content_type not in IMPORT_TYPES:
        raise UnsupportedMediaType("licence_import.unreadable")
    if request.content_length is not None and request.content_length > limit:
        raise TooLarge("licence_import.too_large", size=request.content_length, limit=limit)
    chunks, size = [], 0
    try:
        async for chunk in request.content.iter_chunked(1 << 16):
            size += len(chunk)
            if size > limit:
                raise TooLarge("licence_import.too_large", size=size, limit=limit)
            chunks.append(chunk)
    except (ConnectionError, ClientPayloadError):
        raise ImportInterrupted() from None
    if not size:
        raise Invalid("licence_import.empty")
    return b"".join(chunks)


async def import_licences(ctx: Ctx) -> LicenceImportRead:
    q: ImportQuery = ctx.query
    return await licence_import.import_file(
        session=ctx.session,
        settings=ctx.settings,
        cipher=ctx.request.app[keys.CIPHER],
        principal=ctx.me,
        data=await _body(ctx),
        filename=q.filename,
        site_id=q.site_id,
        lang=request_lang(ctx.request),
        now=utcnow(),
        request_id=ctx.request_id,
        ip=ctx.ip,
    )


async def list_imports(ctx: Ctx) -> list[LicenceImportRead]:
    return await licence_import.list_imports(session=ctx.session, principal=ctx.me)


async def reminder_counts(ctx: Ctx) -> ReminderCounts:
    q: CountsQuery = ctx.query
    zone = ZoneInfo(ctx.settings.timezone)

    def midnight(day: dt.date) -> dt.datetime:
        return dt.datetime.combine(day, dt.time(), zone).astimezone(dt.UTC)

    area = area_sites(ctx.me)
    site_ids = None
    if area is not None:
        site_ids = {i for (i,) in (await ctx.session.exec(area)).all()}
    return await reminders.counts(
        ctx.session,
        start=midnight(q.start),
        end=midnight(q.end + dt.timedelta(days=1)),
        site_ids=site_ids,
    )


async def my_reminders(ctx: Ctx) -> ResidentRemindersRead:
    assert ctx.me.resident_id is not None
    return await licences.resident_view(
        session=ctx.session, resident_id=ctx.me.resident_id, today=_today(ctx)
    )


async def stop_reminders(ctx: Ctx) -> ResidentRemindersRead:
    body: ReminderStopIn = ctx.body
    return await licences.set_stopped(
        session=ctx.session,
        principal=ctx.me,
        type_id=body.type_id,
        stopped=body.stop,
        now=utcnow(),
        today=_today(ctx),
        request_id=ctx.request_id,
        ip=ctx.ip,
    )


def register(api: Api) -> None:
    a = api.add
    a(
        "GET",
        f"{V1}/licence-types",
        list_types,
        summary="Licence types, their validity and reminder policies",
        action="licence.read",
        response=list[LicenceTypeRead],
        tags=TAGS,
    )
    a(
        "PUT",
        f"{V1}/licence-types/{{type_id:[0-9]+}}/policy",
        set_policy,
        summary="Set a licence type's reminder policy: days from expiry (audited)",
        action="licence.policy",
        body=PolicyIn,
        response=LicenceTypeRead,
        tags=TAGS,
    )
    a(
        "GET",
        f"{V1}/licences",
        list_licences,
        summary="The licence register of my area, soonest expiry first",
        action="licence.read",
        query=LicenceQuery,
        response=LicencePage,
        tags=TAGS,
    )
    a(
        "GET",
        f"{V1}/licences/{{licence_id:[0-9]+}}",
        get_licence,
        summary="One licence, with its reminders and their delivery",
        action="licence.read",
        response=LicenceRead,
        tags=TAGS,
    )
    a(
        "POST",
        f"{V1}/licences/import",
        import_licences,
        summary=(
            "Import existing licences: the body is a CSV or XLSX file (Content-Type text/csv "
            "or the XLSX type); all rows or none, with a row-by-row report (422)"
        ),
        action="licence.import",
        query=ImportQuery,
        response=LicenceImportRead,
        status=201,
        tags=TAGS,
    )
    a(
        "GET",
        f"{V1}/licence-imports",
        list_imports,
        summary="The latest imports into the registers of my area",
        action="licence.read",
        response=list[LicenceImportRead],
        tags=TAGS,
    )
    a(
        "GET",
        f"{V1}/reminders/counts",
        reminder_counts,
        summary="Expiry reminders due, queued, delivered and stopped in a period (my area)",
        action="licence.read",
        query=CountsQuery,
        response=ReminderCounts,
        tags=TAGS,
    )
    a(
        "GET",
        f"{V1}/resident/reminders",
        my_reminders,
        summary="My licences and their expiry reminders (a resident on their phone)",
        action="reminder.own",
        response=ResidentRemindersRead,
        tags=("resident",),
    )
    a(
        "POST",
        f"{V1}/resident/reminders/stop",
        stop_reminders,
        summary="Stop or restart my reminders: of one licence type, or with no type of all",
        action="reminder.own",
        body=ReminderStopIn,
        response=ResidentRemindersRead,
        tags=("resident",),
    )
