"""HTTP handlers of the shared domain: they parse, call a service, and shape the answer."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import IntegrityError

from core import audit, cases, catalog, resident_auth, residents, sites, staff
from core.access import Principal
from core.errors import Conflict, Forbidden
from core.models import AuditEntry, CaseStatus, ResidentSession, Role, SiteKind, StaffSession
from core.settings import Settings
from web import keys
from web.http import Api, Ctx, json_response

V1 = "/api/v1"
MAX_ID = 2**31 - 1
MAX_OFFSET = 1_000_000  # deeper paging than this is a forged or broken request


class Query(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LoginIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=200)


class MeRead(BaseModel):
    id: int
    username: str
    display_name: str
    role: Role
    site_ids: list[int]
    line_ids: list[int]
    skills: list[str]
    csrf_token: str


class ItemQuery(Query):
    q: str = Field(default="", max_length=100)
    department: str | None = Field(default=None, max_length=32)
    remote: bool = False
    limit: int = Field(default=20, ge=1, le=100)


class SiteQuery(Query):
    kind: SiteKind | None = None
    parent_id: int | None = Field(default=None, ge=1, le=MAX_ID)
    limit: int = Field(default=500, ge=1, le=1000)
    offset: int = Field(default=0, ge=0, le=MAX_OFFSET)


class NearestQuery(Query):
    lat: float = Field(ge=-90, le=90)
    lng: float = Field(ge=-180, le=180)
    kind: Literal["hall", "community"] = "hall"
    limit: int = Field(default=5, ge=1, le=50)


class LineQuery(Query):
    site_id: int | None = Field(default=None, ge=1, le=MAX_ID)
    department: str | None = Field(default=None, max_length=32)


class CaseQuery(Query):
    status: CaseStatus | None = None
    site_id: int | None = Field(default=None, ge=1, le=MAX_ID)
    limit: int = Field(default=50, ge=1, le=200)
    offset: int = Field(default=0, ge=0, le=MAX_OFFSET)


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


class RevealRead(BaseModel):
    id_number: str


def _me(p: Principal, csrf: str) -> MeRead:
    return MeRead(
        id=p.staff_id,
        username=p.username,
        display_name=p.display_name,
        role=p.role,
        site_ids=sorted(p.site_ids),
        line_ids=sorted(p.line_ids),
        skills=list(p.skills),
        csrf_token=csrf,
    )


# -- auth


async def login(ctx: Ctx) -> web.Response:
    s = ctx.settings
    previous = ctx.request.cookies.get(s.session_cookie_name)
    if previous:
        # Switching users on a shared counter PC: the old session ends here, not at expiry.
        await staff.logout(session=ctx.session, session_id=staff.token_hash(previous))
    result = await staff.login(
        session=ctx.session,
        passwords=ctx.request.app[keys.PASSWORDS],
        settings=s,
        username=ctx.body.username,
        password=ctx.body.password,
        ip=ctx.ip,
        user_agent=ctx.request.headers.get("User-Agent", ""),
    )
    audit.record(
        ctx.session,
        actor=result.principal,
        action="staff.login",
        target_type="staff",
        target_id=result.principal.staff_id,
        request_id=ctx.request_id,
        ip=ctx.ip,
    )
    await ctx.session.commit()
    response = json_response(_me(result.principal, result.csrf_token))
    _session_cookies(
        response,
        s,
        s.session_cookie_name,
        result.token,
        result.csrf_token,
        s.session_max_age_seconds,
    )
    return response


def _session_cookies(
    response: web.Response, s: Settings, name: str, token: str, csrf: str, max_age: int
) -> None:
    """The HttpOnly session cookie, and the CSRF token the page echoes in X-CSRF-Token."""
    response.set_cookie(
        name,
        token,
        max_age=max_age,
        path="/",
        httponly=True,
        samesite="Lax",
        secure=s.cookie_secure,
    )
    response.set_cookie(
        "cw_csrf",
        csrf,
        max_age=max_age,
        path="/",
        httponly=False,
        samesite="Strict",
        secure=s.cookie_secure,
    )


async def logout(ctx: Ctx) -> web.Response:
    await staff.logout(session=ctx.session, session_id=ctx.me.session_id)
    response = json_response({"ok": True})
    response.del_cookie(ctx.settings.session_cookie_name, path="/")
    response.del_cookie("cw_csrf", path="/")
    return response


async def me(ctx: Ctx) -> MeRead:
    row = await ctx.session.get(StaffSession, ctx.me.session_id)
    return _me(ctx.me, row.csrf_token if row else "")


# -- residents on their own device (remote assist 2.0)


async def resident_code(ctx: Ctx) -> dict[str, bool]:
    await resident_auth.request_code(
        session=ctx.session,
        cipher=ctx.request.app[keys.CIPHER],
        sms=ctx.request.app[keys.SMS],
        request=ctx.body,
    )
    await ctx.session.commit()
    # The same answer whether or not a code went out: the form must not reveal who exists.
    return {"sent": True}


async def resident_login(ctx: Ctx) -> web.Response:
    s = ctx.settings
    token, me_ = await resident_auth.login(
        session=ctx.session, cipher=ctx.request.app[keys.CIPHER], request=ctx.body
    )
    audit.record(
        ctx.session,
        actor=None,
        action="resident.login",
        target_type="resident",
        target_id=me_.resident_id,
        request_id=ctx.request_id,
        ip=ctx.ip,
    )
    await ctx.session.commit()
    response = json_response(me_)
    max_age = int(resident_auth.SESSION_TTL.total_seconds())
    _session_cookies(response, s, resident_auth.RESIDENT_COOKIE, token, me_.csrf_token, max_age)
    return response


async def resident_me(ctx: Ctx) -> resident_auth.ResidentMe:
    p = ctx.me
    if not p.is_resident or p.resident_id is None:
        raise Forbidden("forbidden_role")
    row = await residents.get(session=ctx.session, resident_id=p.resident_id)
    sess = await ctx.session.get(ResidentSession, p.session_id)
    return resident_auth.ResidentMe(
        resident_id=p.resident_id,
        name=row.name,
        id_masked=row.id_masked,
        community_id=row.community_id,
        csrf_token=sess.csrf_token if sess else "",
    )


async def resident_logout(ctx: Ctx) -> web.Response:
    if not ctx.me.is_resident:
        raise Forbidden("forbidden_role")
    await resident_auth.logout(session=ctx.session, session_id=ctx.me.session_id)
    response = json_response({"ok": True})
    response.del_cookie(resident_auth.RESIDENT_COOKIE, path="/")
    response.del_cookie("cw_csrf", path="/")
    return response


# -- catalog


async def list_departments(ctx: Ctx) -> list[catalog.DepartmentRead]:
    return await catalog.list_departments(session=ctx.session)


async def search_items(ctx: Ctx) -> list[catalog.ItemRead]:
    q: ItemQuery = ctx.query
    return await catalog.search(
        session=ctx.session, query=q.q, department=q.department, remote_only=q.remote, limit=q.limit
    )


async def get_item(ctx: Ctx) -> catalog.ItemRead:
    item = await catalog.get_item(session=ctx.session, code=ctx.request.match_info["code"])
    return (await catalog.read_items(ctx.session, [item]))[0]


async def list_bundles(ctx: Ctx) -> list[catalog.BundleRead]:
    return await catalog.list_bundles(session=ctx.session)


async def get_bundle(ctx: Ctx) -> catalog.BundleRead:
    bundle = await catalog.get_bundle(session=ctx.session, code=ctx.request.match_info["code"])
    return await catalog.read_bundle(session=ctx.session, bundle=bundle)


# -- sites


async def list_sites(ctx: Ctx) -> list[sites.SiteRead]:
    q: SiteQuery = ctx.query
    rows = await sites.list_sites(
        session=ctx.session, kind=q.kind, parent_id=q.parent_id, limit=q.limit, offset=q.offset
    )
    return [sites.site_read(s) for s in rows]


async def nearest_sites(ctx: Ctx) -> list[sites.NearbySite]:
    q: NearestQuery = ctx.query
    kinds = sites.HALL_KINDS if q.kind == "hall" else (SiteKind.community,)
    return await sites.nearest(
        session=ctx.session, lat=q.lat, lng=q.lng, kinds=kinds, limit=q.limit
    )


async def get_site(ctx: Ctx) -> sites.SiteRead:
    return sites.site_read(await sites.get(session=ctx.session, site_id=ctx.path_int("site_id")))


async def list_lines(ctx: Ctx) -> list[sites.LineRead]:
    q: LineQuery = ctx.query
    return await sites.list_lines(session=ctx.session, site_id=q.site_id, department=q.department)


# -- residents


async def check_id_number(ctx: Ctx) -> residents.IdNumberCheck:
    return residents.check(ctx.body.id_number)


async def create_resident(ctx: Ctx) -> residents.ResidentRead:
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
    await ctx.session.commit()
    return residents.read(row)


async def lookup_resident(ctx: Ctx) -> residents.ResidentRead:
    row = await residents.find_by_number(
        session=ctx.session, cipher=ctx.request.app[keys.CIPHER], id_number=ctx.body.id_number
    )
    audit.record(
        ctx.session,
        action="resident.lookup",
        target_type="resident",
        target_id=row.id or 0,
        **ctx.audit_kw(),
    )
    await ctx.session.commit()
    return residents.read(row)


async def _visible_resident(ctx: Ctx) -> residents.Resident:
    row = await residents.get(session=ctx.session, resident_id=ctx.path_int("resident_id"))
    await residents.require_visible(ctx.session, ctx.me, row)
    return row


async def get_resident(ctx: Ctx) -> residents.ResidentRead:
    row = await _visible_resident(ctx)
    audit.record(
        ctx.session,
        action="resident.view",
        target_type="resident",
        target_id=row.id or 0,
        **ctx.audit_kw(),
    )
    await ctx.session.commit()
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
    await ctx.session.commit()
    return RevealRead(id_number=residents.reveal(ctx.request.app[keys.CIPHER], row))


# -- cases


async def create_case(ctx: Ctx) -> cases.CaseRead:
    case = await cases.create(session=ctx.session, principal=ctx.me, case_in=ctx.body)
    audit.record(
        ctx.session,
        action="case.create",
        target_type="case",
        target_id=case.id or 0,
        **ctx.audit_kw(),
    )
    await ctx.session.commit()
    return await cases.read(session=ctx.session, case=case)


async def list_cases(ctx: Ctx) -> list[cases.CaseRead]:
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


async def rate_case(ctx: Ctx) -> cases.RatingRead:
    try:
        rated = await cases.rate(
            session=ctx.session,
            principal=ctx.me,
            case_id=ctx.path_int("case_id"),
            rating_in=ctx.body,
        )
        await ctx.session.commit()
    except IntegrityError:  # two ratings at once: the second loses on the primary key
        raise Conflict("case.rated") from None
    return rated


async def get_case(ctx: Ctx) -> cases.CaseRead:
    case = await cases.get(session=ctx.session, case_id=ctx.path_int("case_id"))
    await cases.require_access(ctx.session, ctx.me, case)
    return await cases.read(session=ctx.session, case=case)


# -- staff and audit


async def list_staff(ctx: Ctx) -> list[staff.StaffRead]:
    q: StaffQuery = ctx.query
    rows = await staff.list_staff(session=ctx.session, role=q.role, limit=q.limit, offset=q.offset)
    return [await staff.read(session=ctx.session, staff=s) for s in rows]


async def create_staff(ctx: Ctx) -> staff.StaffRead:
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
    await ctx.session.commit()
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


async def openapi(ctx: Ctx) -> dict[str, object]:
    return ctx.request.app[keys.API].openapi()


def register(api: Api) -> None:
    """Declare the shared domain's routes."""
    a = api.add
    id_ = r"{%s:[0-9]+}"
    a(
        "POST",
        f"{V1}/auth/login",
        login,
        summary="Log in; sets the session cookie",
        auth=False,
        body=LoginIn,
        response=MeRead,
        tags=("auth",),
    )
    a("POST", f"{V1}/auth/logout", logout, summary="Log out", tags=("auth",))
    a("GET", f"{V1}/auth/me", me, summary="Who am I", response=MeRead, tags=("auth",))
    a("GET", f"{V1}/openapi.json", openapi, summary="This document", auth=False, tags=("meta",))
    a(
        "POST",
        f"{V1}/resident-auth/code",
        resident_code,
        auth=False,
        status=202,
        summary="Send a sign-in code to a resident's registered phone",
        body=resident_auth.CodeRequest,
        tags=("resident",),
    )
    a(
        "POST",
        f"{V1}/resident-auth/login",
        resident_login,
        auth=False,
        summary="Resident sign-in with the SMS code; sets the resident cookie",
        body=resident_auth.CodeLogin,
        response=resident_auth.ResidentMe,
        tags=("resident",),
    )
    a(
        "GET",
        f"{V1}/resident-auth/me",
        resident_me,
        summary="The signed-in resident",
        response=resident_auth.ResidentMe,
        tags=("resident",),
    )
    a(
        "POST",
        f"{V1}/resident-auth/logout",
        resident_logout,
        summary="Resident sign-out",
        tags=("resident",),
    )

    a(
        "GET",
        f"{V1}/departments",
        list_departments,
        summary="Departments with item counts",
        action="catalog.read",
        response=list[catalog.DepartmentRead],
        tags=("catalog",),
    )
    a(
        "GET",
        f"{V1}/items",
        search_items,
        summary="Search or list service items",
        action="catalog.read",
        query=ItemQuery,
        response=list[catalog.ItemRead],
        tags=("catalog",),
    )
    a(
        "GET",
        f"{V1}/items/{{code}}",
        get_item,
        summary="One service item with its materials",
        action="catalog.read",
        response=catalog.ItemRead,
        tags=("catalog",),
    )
    a(
        "GET",
        f"{V1}/bundles",
        list_bundles,
        summary="Item bundles (一事联办)",
        action="catalog.read",
        response=list[catalog.BundleRead],
        tags=("catalog",),
    )
    a(
        "GET",
        f"{V1}/bundles/{{code}}",
        get_bundle,
        summary="One bundle",
        action="catalog.read",
        response=catalog.BundleRead,
        tags=("catalog",),
    )

    a(
        "GET",
        f"{V1}/sites",
        list_sites,
        summary="List sites",
        action="sites.read",
        query=SiteQuery,
        response=list[sites.SiteRead],
        tags=("sites",),
    )
    a(
        "GET",
        f"{V1}/sites/nearest",
        nearest_sites,
        summary="Nearest halls to a coordinate",
        action="sites.read",
        query=NearestQuery,
        response=list[sites.NearbySite],
        tags=("sites",),
    )
    a(
        "GET",
        f"{V1}/sites/{id_ % 'site_id'}",
        get_site,
        summary="One site",
        action="sites.read",
        response=sites.SiteRead,
        tags=("sites",),
    )
    a(
        "GET",
        f"{V1}/lines",
        list_lines,
        summary="Window lines",
        action="sites.read",
        query=LineQuery,
        response=list[sites.LineRead],
        tags=("sites",),
    )

    a(
        "POST",
        f"{V1}/identity/check",
        check_id_number,
        summary="Validate an ID number live",
        action="resident.read",
        body=residents.ResidentLookup,
        response=residents.IdNumberCheck,
        tags=("residents",),
    )
    a(
        "POST",
        f"{V1}/residents",
        create_resident,
        summary="Register a resident",
        action="resident.create",
        body=residents.ResidentCreate,
        response=residents.ResidentRead,
        status=201,
        tags=("residents",),
    )
    a(
        "POST",
        f"{V1}/residents/lookup",
        lookup_resident,
        summary="Find a resident by ID number",
        action="resident.read",
        body=residents.ResidentLookup,
        response=residents.ResidentRead,
        tags=("residents",),
    )
    a(
        "GET",
        f"{V1}/residents/{id_ % 'resident_id'}",
        get_resident,
        summary="One resident (masked)",
        action="resident.read",
        response=residents.ResidentRead,
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

    a(
        "POST",
        f"{V1}/cases",
        create_case,
        summary="Open a case",
        action="case.create",
        body=cases.CaseCreate,
        response=cases.CaseRead,
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
        response=list[cases.CaseRead],
        tags=("cases",),
    )
    a(
        "GET",
        f"{V1}/cases/{id_ % 'case_id'}",
        get_case,
        summary="One case with its timeline",
        action="case.read",
        response=cases.CaseRead,
        tags=("cases",),
    )
    a(
        "POST",
        f"{V1}/cases/{id_ % 'case_id'}/rating",
        rate_case,
        summary="The resident's rating (好差评) of a finished case, 1 to 5, once",
        action="case.rate",
        body=cases.RatingIn,
        response=cases.RatingRead,
        status=201,
        tags=("cases",),
    )

    a(
        "GET",
        f"{V1}/staff",
        list_staff,
        summary="Staff",
        action="staff.read",
        query=StaffQuery,
        response=list[staff.StaffRead],
        tags=("staff",),
    )
    a(
        "POST",
        f"{V1}/staff",
        create_staff,
        summary="Add a staff member",
        action="staff.manage",
        body=staff.StaffCreate,
        response=staff.StaffRead,
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
