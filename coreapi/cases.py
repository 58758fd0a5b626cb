"""HTTP handlers of cases: open, list, read with the timeline, rate."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from pydantic import Field
from sqlalchemy.exc import IntegrityError

from core import audit, cases, eligibility, residents
from core.access import CaseUse, require_case
from core.db import utcnow
from core.errors import Conflict, NotFound
from core.inputs import MAX_ID
from core.models import (
    CaseCreate,
    CaseEligibilityRead,
    CaseRead,
    CaseStatus,
    EligibilityAcceptIn,
    RatingIn,
    RatingRead,
    ResidentSummary,
)
from coreapi.shapes import MAX_OFFSET, V1, Query
from httpapi.api import Api, Ctx


class CaseQuery(Query):
    status: CaseStatus | None = None
    site_id: int | None = Field(default=None, ge=1, le=MAX_ID)
    limit: int = Field(default=50, ge=1, le=200)
    offset: int = Field(default=0, ge=0, le=MAX_OFFSET)


async def create_case(ctx: Ctx) -> CaseRead:
    case = await cases.create(session=ctx.session, principal=ctx.me, case_in=ctx.body)
    audit.record(
        ctx.session,
        action="case.create",
        target_type="case",
        target_id=case.id or 0,
        **ctx.audit_kw(),
    )
    return await cases.read(session=ctx.session, case=case)


async def list_cases(ctx: Ctx) -> list[CaseRead]:
    q: CaseQuery = ctx.query
    rows = await cases.list_cases(
        session=ctx.session,
        principal=ctx.me,
        status=q.status,
        site_id=q.site_id,
        limit=q.limit,
        offset=q.offset,
    )
    return [await cases.read(session=ctx.session, case=c, timeline=False) for c in rows]


async def rate_case(ctx: Ctx) -> RatingRead:
    try:
        rated = await cases.rate(
            session=ctx.session,
            principal=ctx.me,
            case_id=ctx.path_int("case_id"),
            rating_in=ctx.body,
        )
        await ctx.session.flush()
    except IntegrityError:  # two ratings at once: the second loses on the primary key
        raise Conflict("case.rated") from None
    return rated


async def case_resident(ctx: Ctx) -> ResidentSummary:
    """The resident panel beside a call: masked details and earlier cases (audited)."""
    case = await cases.get(session=ctx.session, case_id=ctx.path_int("case_id"))
    await require_case(ctx.session, ctx.me, case, CaseUse.serve)
    if case.resident_id is None:
        raise NotFound(f"办件 {case.id} 的居民", f"Resident of case {case.id}")
    resident = await residents.get(session=ctx.session, resident_id=case.resident_id)
    audit.record(
        ctx.session,
        action="resident.view",
        target_type="resident",
        target_id=resident.id or 0,
        detail={"case": case.id},
        **ctx.audit_kw(),
    )
    return await residents.summary(
        session=ctx.session, resident=resident, exclude_case_id=case.id, today=_today(ctx)
    )


def _today(ctx: Ctx) -> dt.date:
    """Today in the deployment's timezone (ages are counted in it)."""
    return utcnow().astimezone(ZoneInfo(ctx.settings.timezone)).date()


async def case_eligibility(ctx: Ctx) -> CaseEligibilityRead:
    """The case's items checked against its resident, for the staff serving it."""
    case = await cases.get(session=ctx.session, case_id=ctx.path_int("case_id"))
    await require_case(ctx.session, ctx.me, case, CaseUse.serve)
    return await eligibility.for_case(session=ctx.session, case=case, today=_today(ctx))


async def accept_eligibility(ctx: Ctx) -> CaseEligibilityRead:
    """The clerk accepts a case despite an eligibility mismatch, with a reason (timeline)."""
    case = await cases.get(session=ctx.session, case_id=ctx.path_int("case_id"))
    await require_case(ctx.session, ctx.me, case, CaseUse.review)
    body: EligibilityAcceptIn = ctx.body
    out = await eligibility.accept(
        session=ctx.session,
        case=case,
        actor_id=ctx.me.staff_fk,
        reason=body.reason,
        today=_today(ctx),
    )
    audit.record(
        ctx.session,
        action="case.eligibility_accept",
        target_type="case",
        target_id=case.id or 0,
        detail={"rules": out.accepted.rules if out.accepted else []},
        **ctx.audit_kw(),
    )
    return out


async def get_case(ctx: Ctx) -> CaseRead:
    case = await cases.get(session=ctx.session, case_id=ctx.path_int("case_id"))
    await require_case(ctx.session, ctx.me, case)
    return await cases.read(session=ctx.session, case=case)


def register(api: Api) -> None:
    a = api.add
    id_ = r"{%s:[0-9]+}"
    a(
        "GET",
        f"{V1}/cases/{id_ % 'case_id'}/resident",
        case_resident,
        summary="The case's resident for the staff serving it: masked, with earlier cases",
        action="case.read",
        response=ResidentSummary,
        tags=("cases",),
    )
    a(
        "GET",
        f"{V1}/cases/{id_ % 'case_id'}/eligibility",
        case_eligibility,
        summary="The case's items checked against its resident, and any acceptance",
        action="case.read",
        response=CaseEligibilityRead,
        tags=("cases",),
    )
    a(
        "POST",
        f"{V1}/cases/{id_ % 'case_id'}/eligibility/accept",
        accept_eligibility,
        summary="Accept the case despite an eligibility mismatch, with a reason (clerk)",
        action="case.accept_eligibility",
        body=EligibilityAcceptIn,
        response=CaseEligibilityRead,
        tags=("cases",),
    )
    a(
        "POST",
        f"{V1}/cases",
        create_case,
        summary="Open a case",
        action="case.create",
        body=CaseCreate,
        response=CaseRead,
        status=201,
        tags=("cases",),
    )
    a(
        "GET",
        f"{V1}/cases",
        list_cases,
        summary="Cases in my area",
        action="case.read",
        query=CaseQuery,
        response=list[CaseRead],
        tags=("cases",),
    )
    a(
        "GET",
        f"{V1}/cases/{id_ % 'case_id'}",
        get_case,
        summary="One case with its timeline",
        action="case.read",
        response=CaseRead,
        tags=("cases",),
    )
    a(
        "POST",
        f"{V1}/cases/{id_ % 'case_id'}/rating",
        rate_case,
        summary="The resident's rating (好差评) of a finished case, 1 to 5, once",
        action="case.rate",
        body=RatingIn,
        response=RatingRead,
        status=201,
        tags=("cases",),
    )
