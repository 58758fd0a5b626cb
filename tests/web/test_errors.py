"""Bad input gets a clear 4xx JSON error in the caller's language, and changes nothing."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable
from typing import Any

import aiohttp
import pytest
from sqlalchemy import func
from sqlmodel import select

from core.db import Database
from core.idnumber import check_char
from core.models import AuditEntry, Case, Resident
from core.settings import Settings
from tests.conftest import User
from web.app import create_app

API = "/api/v1"
HUGE = "99999999999999999999"


def id_number(seq: int) -> str:
    first17 = f"3302991950010112{seq}"
    return first17 + check_char(first17)


def has_cjk(text: str) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" for ch in text)


async def expect_error(
    resp: aiohttp.ClientResponse, status: int | None, code: str
) -> dict[str, Any]:
    """The response is a JSON error with this status (any 4xx when None) and code."""
    text = await resp.text()
    if status is None:
        assert 400 <= resp.status < 500, text
    else:
        assert resp.status == status, text
    assert resp.content_type == "application/json", text
    body = json.loads(text)
    err = body["error"]
    assert err["code"] == code, text
    assert isinstance(err["message"], str) and err["message"]
    assert err["request_id"] == resp.headers["X-Request-Id"]
    assert "Traceback" not in text
    return err


async def counts(settings: Settings) -> dict[str, int]:
    db = Database(settings.effective_database_url)
    try:
        async with db.session() as session:
            out = {}
            for name, table in (("residents", Resident), ("cases", Case)):
                out[name] = (await session.exec(select(func.count()).select_from(table))).one()
            # Logins are audited too; count only entries about data.
            q = select(func.count()).where(AuditEntry.action != "staff.login")
            out["audit"] = (await session.exec(q)).one()
            return out
    finally:
        await db.dispose()


@pytest.fixture
async def clerk(as_user: Any) -> User:
    return await as_user("clerk")


@pytest.fixture
async def unchanged(settings: Settings) -> AsyncIterator[None]:
    """The test's bad writes leave residents, cases and the audit log as they were."""
    before = await counts(settings)
    yield
    assert await counts(settings) == before


def raw_post(user: User, path: str, data: Any, content_type: str | None) -> Awaitable[Any]:
    headers = {"X-CSRF-Token": user.csrf}
    if content_type is not None:
        headers["Content-Type"] = content_type
    return user.http.post(f"{user.base}{path}", data=data, headers=headers)


# -- bodies


@pytest.mark.usefixtures("unchanged")
async def test_malformed_json(clerk: User) -> None:
    for raw in (b'{"name": "x",', b"{name: 'x'}", b"\xff\xfe\x00", b"[" * 5000, b"nul"):
        resp = await raw_post(clerk, f"{API}/residents", raw, "application/json")
        await expect_error(resp, 400, "invalid_json")
    resp = await raw_post(clerk, f"{API}/cases", b"{", "application/json")
    await expect_error(resp, 400, "invalid_json")


@pytest.mark.usefixtures("unchanged")
async def test_body_must_be_a_json_object(clerk: User) -> None:
    for body in ([], [{"name": "x", "id_number": id_number(1)}], "张三", 42, None):
        data = json.dumps(body).encode()
        resp = await raw_post(clerk, f"{API}/residents", data, "application/json")
        await expect_error(resp, 422, "validation")


@pytest.mark.usefixtures("unchanged")
async def test_wrong_types_name_the_field(clerk: User) -> None:
    cases = [
        ({"disabled": "maybe"}, "disabled"),
        ({"pregnant": [1]}, "pregnant"),
        ({"community_id": "abc"}, "community_id"),
        ({"name": 12345}, "name"),
    ]
    for extra, field in cases:
        body = {"name": "张三", "id_number": id_number(1), **extra}
        resp = await clerk.post(f"{API}/residents", json=body)
        err = await expect_error(resp, 422, "validation")
        assert [d["loc"] for d in err["details"]] == [[field]], err
        assert all(d["msg"] and d["type"] for d in err["details"])
    # Missing required fields are each named.
    resp = await clerk.post(f"{API}/residents", json={})
    err = await expect_error(resp, 422, "validation")
    assert {tuple(d["loc"]) for d in err["details"]} == {("name",), ("id_number",)}
    assert {d["type"] for d in err["details"]} == {"missing"}
    # A bad ID number says what is wrong with it.
    bad = id_number(1)[:-1] + ("0" if id_number(1)[-1] != "0" else "1")
    resp = await clerk.post(f"{API}/residents", json={"name": "张三", "id_number": bad})
    await expect_error(resp, 422, "id_number.checksum")


@pytest.mark.usefixtures("unchanged")
async def test_unknown_fields_are_refused(clerk: User) -> None:
    body = {"name": "张三", "id_number": id_number(1), "created_by": 1, "is_admin": True}
    resp = await clerk.post(f"{API}/residents", json=body)
    err = await expect_error(resp, 422, "validation")
    assert {tuple(d["loc"]) for d in err["details"]} == {("created_by",), ("is_admin",)}
    assert {d["type"] for d in err["details"]} == {"extra_forbidden"}


@pytest.mark.usefixtures("unchanged")
async def test_body_must_be_sent_as_json(clerk: User) -> None:
    body = json.dumps({"name": "张三", "id_number": id_number(1)})
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "text/json", None):
        resp = await raw_post(clerk, f"{API}/residents", body.encode(), content_type)
        await expect_error(resp, None, "unsupported_media_type")
    resp = await clerk.http.post(
        f"{clerk.base}{API}/residents",
        data={"name": "张三", "id_number": id_number(1)},
        headers={"X-CSRF-Token": clerk.csrf},
    )
    await expect_error(resp, None, "unsupported_media_type")


async def test_json_with_charset_parameter_is_accepted(clerk: User, settings: Settings) -> None:
    body = json.dumps({"name": "张三", "id_number": id_number(1)}).encode()
    resp = await raw_post(clerk, f"{API}/residents", body, "application/json; charset=utf-8")
    assert resp.status == 201, await resp.text()
    assert (await counts(settings))["residents"] == 1


async def test_oversized_body(aiohttp_client: Any, settings: Settings) -> None:
    small = settings.model_copy(update={"max_json_body_bytes": 1024})
    client = await aiohttp_client(create_app(small))
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        clerk = User(http, str(client.make_url("")).rstrip("/"))
        assert (await clerk.login("clerk")).status == 200
        before = await counts(small)
        body = {"name": "张三", "id_number": id_number(1), "address": "路" * 100}
        big = {**body, "address": "x" * 2000}
        resp = await clerk.post(f"{API}/residents", json=big)
        err = await expect_error(resp, 413, "body_too_large")
        assert "1024" in err["message"]

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: chunked encoding
            data = json.dumps(big).encode()
            for i in range(0, len(data), 256):
                yield data[i : i + 256]

        resp = await clerk.http.post(
            f"{clerk.base}{API}/residents",
            data=chunks(),
            headers={"X-CSRF-Token": clerk.csrf, "Content-Type": "application/json"},
        )
        await expect_error(resp, 413, "body_too_large")
        assert await counts(small) == before
        # Just under the limit is fine.
        resp = await clerk.post(f"{API}/residents", json=body)
        assert resp.status == 201, await resp.text()


# -- routes and ids


async def test_unknown_route_is_a_json_404(clerk: User) -> None:
    for method, path in (
        ("GET", f"{API}/nope"),
        ("GET", f"{API}/items/MZ-001/extra"),
        ("POST", f"{API}/nope"),
        ("GET", "/api/v2/items"),
    ):
        resp = await clerk.request(method, path, json={})
        await expect_error(resp, 404, "route_not_found")


async def test_wrong_method_is_a_json_405(clerk: User, settings: Settings) -> None:
    before = await counts(settings)
    for method, path in (
        ("DELETE", f"{API}/items"),
        ("PUT", f"{API}/residents"),
        ("GET", f"{API}/auth/login"),
        ("PATCH", f"{API}/cases/1"),
        ("POST", f"{API}/items"),
    ):
        resp = await clerk.request(method, path, json={"name": "x"})
        await expect_error(resp, 405, "method_not_allowed")
    assert await counts(settings) == before


async def test_405_lists_the_allowed_methods(clerk: User) -> None:
    # RFC 9110 §15.5.6: a 405 response must carry an Allow header.
    resp = await clerk.request("DELETE", f"{API}/items")
    assert resp.status == 405
    assert "GET" in resp.headers.get("Allow", "")
    resp = await clerk.request("GET", f"{API}/auth/login")
    assert resp.status == 405
    assert "POST" in resp.headers.get("Allow", "")


async def test_bad_path_ids_are_404_never_500(clerk: User, settings: Settings) -> None:
    before = await counts(settings)
    for path in (
        f"{API}/residents/abc",
        f"{API}/sites/-1",
        f"{API}/cases/1.5",
        f"{API}/cases/0x10",
    ):
        await expect_error(await clerk.get(path), 404, "route_not_found")
    for path in (
        f"{API}/residents/{HUGE}",
        f"{API}/sites/{HUGE}",
        f"{API}/cases/{HUGE}",
        f"{API}/sites/2147483648",
        f"{API}/sites/2147483647",
        f"{API}/cases/0",
        f"{API}/residents/1",
    ):
        await expect_error(await clerk.get(path), 404, "not_found")
    resp = await clerk.post(f"{API}/residents/{HUGE}/reveal")
    await expect_error(resp, 404, "not_found")
    assert await counts(settings) == before


async def test_huge_query_numbers_are_never_a_500(as_user: Any) -> None:
    admin = await as_user("admin")
    outcome: dict[str, str] = {}
    for path in (
        f"{API}/sites?offset={HUGE}",
        f"{API}/cases?offset={HUGE}",
        f"{API}/staff?offset={HUGE}",
        f"{API}/audit?before_id={HUGE}",
        f"{API}/audit?before_id=2147483648",  # one past the INTEGER id column
    ):
        resp = await admin.get(path)
        body = await resp.json()
        if resp.status == 200:
            outcome[path] = "empty" if body == [] else f"200 {body!r:.60}"
        else:
            outcome[path] = f"{resp.status} {body['error']['code']}"
    # Either a validation error or simply nothing that far out; never an internal error.
    assert all(v in ("empty", "422 validation") for v in outcome.values()), outcome


async def test_bad_query_parameters(clerk: User) -> None:
    for path, field in (
        (f"{API}/items?limit=abc", "limit"),
        (f"{API}/items?limit=0", "limit"),
        (f"{API}/items?limit=101", "limit"),
        (f"{API}/items?color=red", "color"),
        (f"{API}/sites?kind=planet", "kind"),
        (f"{API}/items?limit=1&limit=2", "limit"),
    ):
        err = await expect_error(await clerk.get(path), 422, "validation")
        assert [d["loc"] for d in err["details"]] == [[field]], (path, err)


async def test_unknown_codes_are_not_found(clerk: User) -> None:
    err = await expect_error(await clerk.get(f"{API}/items/NOPE-404"), 404, "not_found")
    assert "NOPE-404" in err["message"]
    await expect_error(await clerk.get(f"{API}/bundles/NOPE-404"), 404, "not_found")
    lookup = await clerk.post(f"{API}/residents/lookup", json={"id_number": id_number(8)})
    await expect_error(lookup, 404, "not_found")


@pytest.mark.usefixtures("unchanged")
async def test_failed_case_writes_change_nothing(as_user: Any) -> None:
    worker = await as_user("worker")
    site = worker.me["site_ids"][0]
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({"item_code": "NOPE-1", "site_id": site}, 404, "not_found"),
        ({"item_code": "MZ-001", "site_id": 2147483647}, 404, "not_found"),
        ({"item_code": "MZ-001", "site_id": site, "resident_id": 2147483647}, 404, "not_found"),
        ({"item_code": "MZ-001", "site_id": 1}, 403, "forbidden_site"),
        ({"item_code": "MZ-001", "site_id": "here"}, 422, "validation"),
        ({"item_code": "MZ-001"}, 422, "validation"),
        ({"item_code": "MZ-001", "site_id": site, "status": "completed"}, 422, "validation"),
    ]
    for body, status, code in cases:
        resp = await worker.post(f"{API}/cases", json=body)
        await expect_error(resp, status, code)


async def test_failed_resident_writes_change_nothing(clerk: User, settings: Settings) -> None:
    body = {"name": "张三", "id_number": id_number(1)}
    assert (await clerk.post(f"{API}/residents", json=body)).status == 201
    before = await counts(settings)
    resp = await clerk.post(f"{API}/residents", json={**body, "name": "李四"})
    await expect_error(resp, 409, "conflict")
    resp = await clerk.post(
        f"{API}/residents", json={"name": "王五", "id_number": id_number(2), "community_id": 1}
    )
    await expect_error(resp, 404, "not_found")  # site 1 is the district, not a community
    resp = await clerk.post(
        f"{API}/residents", json={"name": "王五", "id_number": id_number(2), "phone": "12345"}
    )
    await expect_error(resp, 422, "phone.invalid")
    assert await counts(settings) == before


# -- language


async def test_messages_follow_the_callers_language(clerk: User) -> None:
    path = f"{API}/items/NOPE-404"
    zh = await expect_error(await clerk.get(path), 404, "not_found")
    assert has_cjk(zh["message"])
    for headers, query in (
        ({"Accept-Language": "en"}, ""),
        ({"Accept-Language": "en-US,en;q=0.9,zh-CN;q=0.5"}, ""),
        ({}, "?lang=en"),
        ({"Accept-Language": "zh-CN"}, "?lang=en"),
    ):
        en = await expect_error(await clerk.get(path + query, headers=headers), 404, "not_found")
        assert en["message"] == "Service item NOPE-404 not found", (headers, query)
    for headers, query in (
        ({"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.8"}, ""),
        ({"Accept-Language": "en"}, "?lang=zh"),
    ):
        err = await expect_error(await clerk.get(path + query, headers=headers), 404, "not_found")
        assert err["message"] == zh["message"]


async def test_language_applies_to_every_kind_of_error(clerk: User, as_user: Any) -> None:
    anon = await as_user()
    for method, path, user, status, code, english in (
        ("GET", f"{API}/items", anon, 401, "unauthenticated", "Please log in"),
        ("GET", f"{API}/nope", clerk, 404, "route_not_found", "No such endpoint"),
        ("DELETE", f"{API}/items", clerk, 405, "method_not_allowed", "Method not allowed"),
        ("GET", f"{API}/items?limit=0", clerk, 422, "validation", "Some fields are invalid"),
        ("GET", f"{API}/staff", clerk, 403, "forbidden_role", "Your role may not do this"),
    ):
        resp = await user.request(method, path)
        assert has_cjk((await expect_error(resp, status, code))["message"])
        sep = "&" if "?" in path else "?"
        resp = await user.request(method, f"{path}{sep}lang=en")
        assert (await expect_error(resp, status, code))["message"] == english
        resp = await user.request(method, path, headers={"Accept-Language": "en"})
        assert (await expect_error(resp, status, code))["message"] == english


async def test_english_body_errors(clerk: User) -> None:
    resp = await raw_post(clerk, f"{API}/residents?lang=en", b"{", "application/json")
    err = await expect_error(resp, 400, "invalid_json")
    assert err["message"] == "The request body is not valid JSON"
    resp = await clerk.post(
        f"{API}/residents",
        json={"name": "张三", "id_number": "3302"},
        headers={"Accept-Language": "en"},
    )
    err = await expect_error(resp, 422, "id_number.length")
    assert err["message"] == "An ID number has 18 characters; this one has 4"


# -- request id on errors


async def test_error_request_id_matches_header(client: Any) -> None:
    seen: set[str] = set()
    for _ in range(3):
        resp = await client.get(f"{API}/items")
        err = await expect_error(resp, 401, "unauthenticated")
        seen.add(err["request_id"])
    assert len(seen) == 3
    resp = await client.get(f"{API}/items", headers={"X-Request-Id": "trace-42"})
    err = await expect_error(resp, 401, "unauthenticated")
    assert err["request_id"] == "trace-42"
