"""Staff login, sessions, CSRF and origin checks, and who may call what."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Awaitable, Callable
from http.cookies import SimpleCookie
from typing import Any

import aiohttp
import pytest
from sqlalchemy import func
from sqlmodel import select
from yarl import URL

from core.db import Database, utcnow
from core.idnumber import check_char
from core.models import Resident, Staff, StaffSession
from core.settings import Settings
from core.staff import token_hash, touch_interval
from tests.conftest import DEMO_PASSWORD, User
from web.app import create_app

API = "/api/v1"
DEMO_USERS = ("worker", "clerk", "expert", "supervisor", "coordinator", "courier", "admin")


def id_number(seq: int) -> str:
    """A valid resident ID number (born 1950-01-01), distinct for each seq in 0..9."""
    first17 = f"3302991950010112{seq}"
    return first17 + check_char(first17)


async def error_of(resp: aiohttp.ClientResponse) -> dict[str, Any]:
    body = await resp.json()
    assert body["error"]["request_id"] == resp.headers["X-Request-Id"]
    return body["error"]


async def expect_error(resp: aiohttp.ClientResponse, status: int, code: str) -> dict[str, Any]:
    text = await resp.text()
    assert resp.status == status, text
    err = await error_of(resp)
    assert err["code"] == code, text
    return err


async def in_db(settings: Settings, fn: Callable[[Any], Awaitable[Any]]) -> Any:
    """Run fn(session) against the test database outside the app, then commit."""
    db = Database(settings.effective_database_url)
    try:
        async with db.session() as session:
            out = await fn(session)
            await session.commit()
            return out
    finally:
        await db.dispose()


async def update_session(settings: Settings, token: str, **values: Any) -> None:
    async def fn(session: Any) -> None:
        row = await session.get(StaffSession, token_hash(token))
        assert row is not None, "no session row for this token"
        for key, value in values.items():
            setattr(row, key, value)
        session.add(row)

    await in_db(settings, fn)


async def set_active(settings: Settings, username: str, active: bool) -> None:
    async def fn(session: Any) -> None:
        row = (await session.exec(select(Staff).where(Staff.username == username))).one()
        row.active = active
        session.add(row)

    await in_db(settings, fn)


async def resident_count(settings: Settings) -> int:
    async def fn(session: Any) -> int:
        return (await session.exec(select(func.count()).select_from(Resident))).one()

    return await in_db(settings, fn)


def session_token(user: User, settings: Settings) -> str:
    cookies = user.http.cookie_jar.filter_cookies(URL(user.base))
    return cookies[settings.session_cookie_name].value


def set_cookies(resp: aiohttp.ClientResponse) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for header in resp.headers.getall("Set-Cookie", []):
        jar: SimpleCookie = SimpleCookie()
        jar.load(header)
        out.update(jar)
    return out


class Server:
    """A test server on the test database with some settings changed, and its browsers."""

    def __init__(self, client: Any, settings: Settings, sessions: list[aiohttp.ClientSession]):
        self.client = client
        self.settings = settings
        self.base = str(client.make_url("")).rstrip("/")
        self._sessions = sessions

    async def user(self, username: str | None = None, password: str = DEMO_PASSWORD) -> User:
        http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        self._sessions.append(http)
        user = User(http, self.base)
        if username:
            resp = await user.login(username, password)
            assert resp.status == 200, await resp.text()
        return user


@pytest.fixture
async def server(
    aiohttp_client: Any, settings: Settings
) -> AsyncIterator[Callable[..., Awaitable[Server]]]:
    """server(session_idle_seconds=60, ...) -> a Server running with those settings changed."""
    sessions: list[aiohttp.ClientSession] = []

    async def make(**overrides: Any) -> Server:
        s = settings.model_copy(update=overrides)
        return Server(await aiohttp_client(create_app(s)), s, sessions)

    yield make
    for http in sessions:
        await http.close()


# -- login


async def test_login_sets_safe_cookies_and_opens_a_session(
    as_user: Any, settings: Settings
) -> None:
    user = await as_user()
    resp = await user.login("clerk")
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["username"] == "clerk"
    assert body["role"] == "clerk"
    assert len(body["csrf_token"]) >= 32
    cookies = set_cookies(resp)
    session_cookie = cookies[settings.session_cookie_name]
    assert session_cookie["httponly"] is True
    assert session_cookie["samesite"].lower() == "lax"
    assert session_cookie["path"] == "/"
    assert len(session_cookie.value) >= 32
    # The session token itself is only in the cookie, never in the body.
    assert session_cookie.value not in await resp.text()
    csrf_cookie = cookies["cw_csrf"]
    assert not csrf_cookie["httponly"]
    assert csrf_cookie.value == body["csrf_token"]

    me = await user.get(f"{API}/auth/me")
    assert me.status == 200
    me_body = await me.json()
    assert me_body["username"] == "clerk"
    assert me_body["role"] == "clerk"
    assert me_body["csrf_token"] == body["csrf_token"]


async def test_username_is_case_insensitive(as_user: Any) -> None:
    user = await as_user()
    resp = await user.login("  Clerk ")
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["username"] == "clerk"


async def test_password_hash_never_leaves_the_server(as_user: Any, settings: Settings) -> None:
    async def hashes(session: Any) -> list[str]:
        return list((await session.exec(select(Staff.password_hash))).all())

    admin = await as_user()
    texts = [await (await admin.login("admin")).text()]
    for path in (f"{API}/auth/me", f"{API}/staff", f"{API}/staff?limit=1000"):
        resp = await admin.get(path)
        assert resp.status == 200
        texts.append(await resp.text())
    created = await admin.post(
        f"{API}/staff",
        json={
            "username": "new.clerk",
            "display_name": "新窗口",
            "role": "clerk",
            "password": "a-long-enough-password",
        },
    )
    assert created.status == 201, await created.text()
    texts.append(await created.text())
    audit = await admin.get(f"{API}/audit")
    assert audit.status == 200
    texts.append(await audit.text())

    all_hashes = await in_db(settings, hashes)
    assert len(all_hashes) > 7
    for text in texts:
        assert "argon2" not in text
        assert "password_hash" not in text
        assert "a-long-enough-password" not in text
        for h in all_hashes:
            assert h not in text


async def test_wrong_password_and_unknown_user_look_the_same(as_user: Any) -> None:
    user = await as_user()
    wrong = await user.login("clerk", "not-the-password")
    wrong_err = await expect_error(wrong, 401, "bad_credentials")
    unknown = await user.login("nobody-here", "not-the-password")
    unknown_err = await expect_error(unknown, 401, "bad_credentials")
    assert wrong_err["message"] == unknown_err["message"]
    assert set(wrong_err) == set(unknown_err) == {"code", "message", "request_id"}
    for err in (wrong_err, unknown_err):
        assert "clerk" not in err["message"]
        assert "nobody" not in err["message"]
    assert "Set-Cookie" not in wrong.headers
    # Neither attempt left the browser logged in.
    await expect_error(await user.get(f"{API}/auth/me"), 401, "unauthenticated")


async def test_login_rejects_bad_bodies(as_user: Any) -> None:
    user = await as_user()
    for body in ({"username": "clerk"}, {"username": "", "password": "x"}, {"password": "x"}):
        resp = await user.http.post(f"{user.base}{API}/auth/login", json=body)
        await expect_error(resp, 422, "validation")


# -- rate limits


async def test_failures_lock_one_username_then_the_ip(server: Any) -> None:
    srv = await server(login_max_failures=3, login_max_failures_per_ip=5, login_window_seconds=600)

    async def attempt(username: str, password: str = DEMO_PASSWORD) -> aiohttp.ClientResponse:
        return await (await srv.user()).login(username, password)  # a fresh browser each time

    for _ in range(3):
        await expect_error(await attempt("worker", "wrong-password"), 401, "bad_credentials")
    # Even the right password is refused now, with a hint when to retry.
    locked = await attempt("worker")
    err = await expect_error(locked, 429, "rate_limited")
    retry_after = int(locked.headers["Retry-After"])
    assert 1 <= retry_after <= 601
    assert str(retry_after) in err["message"]
    assert "Set-Cookie" not in locked.headers
    # Spelling the username differently does not get around the limit.
    await expect_error(await attempt(" WORKER "), 429, "rate_limited")

    # Other accounts from the same address still work (3 of the 5 per-address failures used).
    assert (await attempt("clerk")).status == 200
    await expect_error(await attempt("expert", "wrong-password"), 401, "bad_credentials")
    await expect_error(await attempt("ghost", "wrong-password"), 401, "bad_credentials")
    # Now the address has used up its 5 failures: every account is refused from it.
    for name in ("coordinator", "admin", "ghost2"):
        resp = await attempt(name)
        await expect_error(resp, 429, "rate_limited")
        assert int(resp.headers["Retry-After"]) >= 1


async def test_unknown_usernames_are_limited_like_real_ones(server: Any) -> None:
    srv = await server(login_max_failures=2, login_max_failures_per_ip=100)
    user = await srv.user()
    for name in ("ghost", "clerk"):
        for _ in range(2):
            await expect_error(await user.login(name, "wrong-password"), 401, "bad_credentials")
        await expect_error(await user.login(name, "wrong-password"), 429, "rate_limited")
        await expect_error(await user.login(name), 429, "rate_limited")


async def test_login_success_resets_the_users_failures(server: Any) -> None:
    srv = await server(login_max_failures=3, login_max_failures_per_ip=100)

    async def attempt(password: str = DEMO_PASSWORD) -> aiohttp.ClientResponse:
        return await (await srv.user()).login("clerk", password)

    for _ in range(2):
        await expect_error(await attempt("wrong-password"), 401, "bad_credentials")
    assert (await attempt()).status == 200
    for _ in range(2):
        await expect_error(await attempt("wrong-password"), 401, "bad_credentials")
    # 4 failures in the window, but only 2 since the last success: still allowed.
    assert (await attempt()).status == 200


# -- logout


async def test_logout_ends_the_session_for_good(as_user: Any, settings: Settings) -> None:
    user = await as_user("clerk")
    other_browser = await as_user("clerk")
    token = session_token(user, settings)
    old_csrf = user.csrf

    resp = await user.post(f"{API}/auth/logout")
    assert resp.status == 200, await resp.text()
    cleared = set_cookies(resp)
    assert cleared[settings.session_cookie_name].value == ""
    await expect_error(await user.get(f"{API}/auth/me"), 401, "unauthenticated")

    # Replaying the old cookie by hand does not bring the session back.
    async with aiohttp.ClientSession(
        cookie_jar=aiohttp.CookieJar(unsafe=True), cookies={settings.session_cookie_name: token}
    ) as replay:
        resp = await replay.get(f"{user.base}{API}/auth/me")
        await expect_error(resp, 401, "unauthenticated")
        resp = await replay.post(
            f"{user.base}{API}/residents",
            json={"name": "张三", "id_number": id_number(1)},
            headers={"X-CSRF-Token": old_csrf},
        )
        await expect_error(resp, 401, "unauthenticated")
    assert await resident_count(settings) == 0

    # Logging out one browser leaves the same user's other sessions alone.
    assert (await other_browser.get(f"{API}/auth/me")).status == 200


# -- expiry


async def test_idle_session_expires(server: Any) -> None:
    srv = await server(session_idle_seconds=60)
    user = await srv.user("clerk")
    token = session_token(user, srv.settings)

    await update_session(srv.settings, token, last_seen_at=utcnow() - dt.timedelta(seconds=30))
    assert (await user.get(f"{API}/auth/me")).status == 200

    # Expiry allows for the throttled last_seen_at writes (core.staff.touch_interval).
    unused = dt.timedelta(seconds=61) + touch_interval(srv.settings)
    await update_session(srv.settings, token, last_seen_at=utcnow() - unused)
    await expect_error(await user.get(f"{API}/auth/me"), 401, "session_expired")
    # Gone for good, not just for that one request.
    assert (await user.get(f"{API}/auth/me")).status == 401
    assert (await user.get(f"{API}/items")).status == 401


async def test_activity_keeps_an_idle_session_alive(server: Any) -> None:
    """A session ends session_idle_seconds after the last request, not after the last-but-one."""
    srv = await server(session_idle_seconds=60)
    user = await srv.user("clerk")
    token = session_token(user, srv.settings)

    # The user's last request was 45 s ago; now they make another one.
    await update_session(srv.settings, token, last_seen_at=utcnow() - dt.timedelta(seconds=45))
    assert (await user.get(f"{API}/auth/me")).status == 200

    # 30 s later (shift the stored time back by 30 s) the session must still be alive: the
    # user was active 30 s ago, well within the 60 s idle limit.
    async def shift(session: Any) -> None:
        row = await session.get(StaffSession, token_hash(token))
        row.last_seen_at = row.last_seen_at - dt.timedelta(seconds=30)
        session.add(row)

    await in_db(srv.settings, shift)
    resp = await user.get(f"{API}/auth/me")
    assert resp.status == 200, await resp.text()


async def test_absolute_expiry_even_when_active(server: Any) -> None:
    srv = await server(session_idle_seconds=60)
    user = await srv.user("worker")
    token = session_token(user, srv.settings)
    await update_session(
        srv.settings,
        token,
        last_seen_at=utcnow(),
        expires_at=utcnow() - dt.timedelta(seconds=1),
    )
    err = await expect_error(await user.get(f"{API}/auth/me"), 401, "session_expired")
    assert err["message"]
    assert (await user.get(f"{API}/auth/me")).status == 401


# -- inactive staff


async def test_deactivated_staff_are_locked_out(as_user: Any, settings: Settings) -> None:
    user = await as_user("worker")
    await set_active(settings, "worker", False)

    await expect_error(await user.get(f"{API}/auth/me"), 401, "unauthenticated")
    resp = await user.post(f"{API}/residents", json={"name": "张三", "id_number": id_number(2)})
    assert resp.status == 401
    assert await resident_count(settings) == 0

    fresh = await as_user()
    wrong = await fresh.login("clerk", "wrong-password")
    inactive = await fresh.login("worker")
    inactive_err = await expect_error(inactive, 401, "bad_credentials")
    assert inactive_err["message"] == (await error_of(wrong))["message"]

    # Reactivated, the account works again.
    await set_active(settings, "worker", True)
    assert (await fresh.login("worker")).status == 200


# -- CSRF and origin


async def test_writes_need_the_sessions_csrf_token(as_user: Any, settings: Settings) -> None:
    clerk = await as_user("clerk")
    other = await as_user("worker")
    body = {"name": "李四", "id_number": id_number(3)}
    url = f"{clerk.base}{API}/residents"

    resp = await clerk.http.post(url, json=body)
    await expect_error(resp, 403, "csrf")
    resp = await clerk.http.post(url, json=body, headers={"X-CSRF-Token": "not-the-token"})
    await expect_error(resp, 403, "csrf")
    # Another session's token is no good either.
    resp = await clerk.http.post(url, json=body, headers={"X-CSRF-Token": other.csrf})
    await expect_error(resp, 403, "csrf")
    # Logout is a write too.
    resp = await clerk.http.post(f"{clerk.base}{API}/auth/logout")
    await expect_error(resp, 403, "csrf")

    assert await resident_count(settings) == 0
    lookup = await clerk.post(f"{API}/residents/lookup", json={"id_number": body["id_number"]})
    await expect_error(lookup, 404, "not_found")
    assert (await clerk.get(f"{API}/auth/me")).status == 200  # still logged in

    resp = await clerk.post(f"{API}/residents", json=body)
    assert resp.status == 201, await resp.text()
    assert await resident_count(settings) == 1


async def test_a_csrf_header_that_is_not_ascii_is_refused_like_a_wrong_one(
    as_user: Any,
) -> None:
    """A header of other bytes (as a fuzzer or a broken proxy sends) is a 403, not a 500."""
    clerk = await as_user("clerk")
    for sent in ("é", "令牌".encode().decode("latin-1"), clerk.csrf[:-1] + "\u00ff"):
        resp = await clerk.http.post(
            f"{clerk.base}{API}/auth/logout", headers={"X-CSRF-Token": sent}
        )
        await expect_error(resp, 403, "csrf")
    assert (await clerk.get(f"{API}/auth/me")).status == 200


async def test_foreign_origin_is_refused(as_user: Any, settings: Settings) -> None:
    clerk = await as_user("clerk")
    body = {"name": "王五", "id_number": id_number(4)}
    for origin in ("https://evil.example", "null", f"{clerk.base}.evil.example"):
        resp = await clerk.post(f"{API}/residents", json=body, headers={"Origin": origin})
        await expect_error(resp, 403, "forbidden_origin")
    # Login from a foreign page is refused as well (login CSRF).
    anon = await as_user()
    resp = await anon.http.post(
        f"{anon.base}{API}/auth/login",
        json={"username": "clerk", "password": DEMO_PASSWORD},
        headers={"Origin": "https://evil.example"},
    )
    await expect_error(resp, 403, "forbidden_origin")
    assert "Set-Cookie" not in resp.headers
    assert await resident_count(settings) == 0

    resp = await clerk.post(f"{API}/residents", json=body, headers={"Origin": clerk.base})
    assert resp.status == 201, await resp.text()
    assert await resident_count(settings) == 1


async def test_configured_extra_origin_passes(server: Any) -> None:
    srv = await server(allowed_origins="https://portal.example.gov.cn/, https://b.example")
    clerk = await srv.user("clerk")
    resp = await clerk.post(
        f"{API}/residents",
        json={"name": "赵六", "id_number": id_number(5)},
        headers={"Origin": "https://portal.example.gov.cn"},
    )
    assert resp.status == 201, await resp.text()
    resp = await clerk.post(
        f"{API}/residents",
        json={"name": "钱七", "id_number": id_number(6)},
        headers={"Origin": "https://c.example"},
    )
    await expect_error(resp, 403, "forbidden_origin")
    assert await resident_count(srv.settings) == 1


# -- who may call what (core/access.py POLICY)

ALLOWED: dict[str, frozenset[str]] = {
    "GET items": frozenset(DEMO_USERS),
    "POST residents": frozenset({"worker", "clerk", "coordinator", "admin"}),
    "POST residents/{id}/reveal": frozenset({"clerk", "admin"}),
    "GET cases": frozenset(set(DEMO_USERS) - {"courier"}),
    "POST cases": frozenset({"worker", "clerk", "admin"}),
    "GET staff": frozenset({"supervisor", "admin"}),
    "POST staff": frozenset({"admin"}),
    "GET audit": frozenset({"supervisor", "admin"}),
}


@pytest.mark.parametrize("endpoint", list(ALLOWED))
async def test_role_matrix(as_user: Any, endpoint: str) -> None:
    users = {name: await as_user(name) for name in DEMO_USERS}
    clerk, worker = users["clerk"], users["worker"]
    secret = id_number(9)
    created = await clerk.post(f"{API}/residents", json={"name": "孙八", "id_number": secret})
    assert created.status == 201, await created.text()
    resident_id = (await created.json())["id"]
    worker_site = worker.me["site_ids"][0]

    async def call(name: str, i: int) -> aiohttp.ClientResponse:
        u = users[name]
        if endpoint == "GET items":
            return await u.get(f"{API}/items?q=低保")
        if endpoint == "POST residents":
            return await u.post(
                f"{API}/residents", json={"name": "周九", "id_number": id_number(i)}
            )
        if endpoint == "POST residents/{id}/reveal":
            return await u.post(f"{API}/residents/{resident_id}/reveal")
        if endpoint == "GET cases":
            return await u.get(f"{API}/cases")
        if endpoint == "POST cases":
            return await u.post(
                f"{API}/cases", json={"item_code": "MZ-001", "site_id": worker_site}
            )
        if endpoint == "GET staff":
            return await u.get(f"{API}/staff")
        if endpoint == "POST staff":
            return await u.post(
                f"{API}/staff",
                json={
                    "username": f"made.by.{name}",
                    "display_name": "新同事",
                    "role": "clerk",
                    "password": "a-long-enough-password",
                },
            )
        assert endpoint == "GET audit"
        return await u.get(f"{API}/audit")

    outcome: dict[str, str] = {}
    for i, name in enumerate(DEMO_USERS):
        resp = await call(name, i)
        if 200 <= resp.status < 300:
            outcome[name] = "ok"
            if endpoint == "POST residents/{id}/reveal":
                assert (await resp.json())["id_number"] == secret
        else:
            err = await error_of(resp)
            outcome[name] = f"{resp.status} {err['code']}"
    expected = {
        name: "ok" if name in ALLOWED[endpoint] else "403 forbidden_role" for name in DEMO_USERS
    }
    assert outcome == expected


async def test_anonymous_requests_need_a_login(as_user: Any, settings: Settings) -> None:
    anon = await as_user()
    calls = [
        ("GET", f"{API}/auth/me"),
        ("POST", f"{API}/auth/logout"),
        ("GET", f"{API}/items"),
        ("GET", f"{API}/items/MZ-001"),
        ("GET", f"{API}/departments"),
        ("GET", f"{API}/sites"),
        ("GET", f"{API}/sites/1"),
        ("GET", f"{API}/cases"),
        ("GET", f"{API}/staff"),
        ("GET", f"{API}/audit"),
        ("POST", f"{API}/residents"),
        ("POST", f"{API}/residents/1/reveal"),
        ("POST", f"{API}/cases"),
        ("POST", f"{API}/staff"),
    ]
    for method, path in calls:
        kw: dict[str, Any] = {}
        if method == "POST":
            kw["json"] = {"name": "张三", "id_number": id_number(7)}
        resp = await anon.request(method, path, **kw)
        err = await expect_error(resp, 401, "unauthenticated")
        assert err["message"]
    # A made-up cookie is no better than none.
    async with aiohttp.ClientSession(
        cookie_jar=aiohttp.CookieJar(unsafe=True),
        cookies={settings.session_cookie_name: "forged-token-" + "x" * 30},
    ) as forged:
        resp = await forged.get(f"{anon.base}{API}/auth/me")
        await expect_error(resp, 401, "unauthenticated")
        resp = await forged.get(f"{anon.base}{API}/items")
        await expect_error(resp, 401, "unauthenticated")
    assert await resident_count(settings) == 0
