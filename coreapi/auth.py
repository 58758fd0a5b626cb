"""Staff sign-in and residents signing in on their own device (remote assist 2.0)."""

from __future__ import annotations

from aiohttp import web

from core import audit, resident_auth, resident_links, residents, staff
from core.errors import Forbidden
from core.models import (
    CodeLogin,
    CodeRequest,
    LinkCodeLogin,
    LinkIn,
    LinkLoginRead,
    LinkRead,
    ResidentMe,
    ResidentSession,
    StaffSession,
)
from core.settings import Settings
from coreapi.shapes import V1, LoginIn, MeRead, me_read
from httpapi import keys
from httpapi.api import Api, Ctx, json_response


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
    response = json_response(me_read(result.principal, result.csrf_token))
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
    # A resident's phone asks too (the pages share one client): their session holds the token.
    table = ResidentSession if ctx.me.is_resident else StaffSession
    row = await ctx.session.get(table, ctx.me.session_id)
    return me_read(ctx.me, row.csrf_token if row else "")


async def resident_code(ctx: Ctx) -> dict[str, bool]:
    await resident_auth.request_code(
        session=ctx.session,
        cipher=ctx.request.app[keys.CIPHER],
        sms=ctx.request.app[keys.SMS],
        request=ctx.body,
    )
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
    response = json_response(me_)
    max_age = int(resident_auth.SESSION_TTL.total_seconds())
    _session_cookies(response, s, resident_auth.RESIDENT_COOKIE, token, me_.csrf_token, max_age)
    return response


async def resident_link(ctx: Ctx) -> LinkRead:
    return await resident_links.check(
        session=ctx.session, token=ctx.body.token, settings=ctx.settings
    )


async def resident_link_code(ctx: Ctx) -> LinkRead:
    return await resident_links.send_code(
        session=ctx.session,
        token=ctx.body.token,
        settings=ctx.settings,
        cipher=ctx.request.app[keys.CIPHER],
        sms=ctx.request.app[keys.SMS],
    )


async def resident_link_login(ctx: Ctx) -> web.Response:
    s = ctx.settings
    token, me_, path = await resident_links.login(
        session=ctx.session,
        token=ctx.body.token,
        code=ctx.body.code,
        settings=s,
        cipher=ctx.request.app[keys.CIPHER],
    )
    audit.record(
        ctx.session,
        actor=None,
        action="resident.login",
        target_type="resident",
        target_id=me_.resident_id,
        detail={"via": "sms_link"},
        request_id=ctx.request_id,
        ip=ctx.ip,
    )
    response = json_response(LinkLoginRead(**me_.model_dump(), path=path))
    max_age = int(resident_auth.SESSION_TTL.total_seconds())
    _session_cookies(response, s, resident_auth.RESIDENT_COOKIE, token, me_.csrf_token, max_age)
    return response


async def resident_me(ctx: Ctx) -> ResidentMe:
    p = ctx.me
    if not p.is_resident or p.resident_id is None:
        raise Forbidden("forbidden_role")
    row = await residents.get(session=ctx.session, resident_id=p.resident_id)
    sess = await ctx.session.get(ResidentSession, p.session_id)
    return resident_auth.me_of(row, sess.csrf_token if sess else "")


async def resident_logout(ctx: Ctx) -> web.Response:
    if not ctx.me.is_resident:
        raise Forbidden("forbidden_role")
    await resident_auth.logout(session=ctx.session, session_id=ctx.me.session_id)
    response = json_response({"ok": True})
    response.del_cookie(resident_auth.RESIDENT_COOKIE, path="/")
    response.del_cookie("cw_csrf", path="/")
    return response


async def openapi(ctx: Ctx) -> dict[str, object]:
    return ctx.request.app[keys.API].openapi()


def register(api: Api) -> None:
    a = api.add
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
        body=CodeRequest,
        tags=("resident",),
    )
    a(
        "POST",
        f"{V1}/resident-auth/login",
        resident_login,
        auth=False,
        summary="Resident sign-in with the SMS code; sets the resident cookie",
        body=CodeLogin,
        response=ResidentMe,
        tags=("resident",),
    )
    a(
        "POST",
        f"{V1}/resident-auth/link",
        resident_link,
        auth=False,
        summary="Where an SMS sign-in link leads and where its code goes; changes nothing",
        body=LinkIn,
        response=LinkRead,
        tags=("resident",),
    )
    a(
        "POST",
        f"{V1}/resident-auth/link/code",
        resident_link_code,
        auth=False,
        status=202,
        summary="Send the sign-in code for an SMS link to the resident's registered phone",
        body=LinkIn,
        response=LinkRead,
        tags=("resident",),
    )
    a(
        "POST",
        f"{V1}/resident-auth/link/login",
        resident_link_login,
        auth=False,
        summary="Sign in through an SMS link with its code (uses the link up); sets the cookie",
        body=LinkCodeLogin,
        response=LinkLoginRead,
        tags=("resident",),
    )
    a(
        "GET",
        f"{V1}/resident-auth/me",
        resident_me,
        summary="The signed-in resident",
        response=ResidentMe,
        tags=("resident",),
    )
    a(
        "POST",
        f"{V1}/resident-auth/logout",
        resident_logout,
        summary="Resident sign-out",
        tags=("resident",),
    )
