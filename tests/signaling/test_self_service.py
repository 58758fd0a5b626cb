"""Remote assist 2.0: a resident on their own phone signs in by SMS code and takes a number."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import aiohttp
import pytest
from sqlalchemy import text

from core.db import Database
from core.settings import Settings
from tests.conftest import User
from tests.factories import aged
from tests.signaling.helpers import Sock, gaoqiao_setup
from tests.uploads.helpers import complete_materials

PHONE = "13900139000"


async def sms_codes(settings: Settings, phone: str) -> list[str]:
    db = Database(settings.effective_database_url)
    try:
        async with db.engine.connect() as conn:
            rows = await conn.execute(
                text("SELECT body FROM sms_message WHERE phone = :p ORDER BY id"), {"p": phone}
            )
            return [re.search(r"\d{6}", body).group(0) for (body,) in rows]  # type: ignore[union-attr]
    finally:
        await db.dispose()


@pytest.fixture
async def resident_device(
    as_user: Any, settings: Settings
) -> AsyncIterator[Callable[..., Coroutine[Any, Any, User]]]:
    """resident_device(id_number) -> a phone browser signed in as that resident."""
    opened: list[aiohttp.ClientSession] = []
    base = (await as_user()).base

    async def make(id_number: str, phone: str = PHONE) -> User:
        http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        opened.append(http)
        user = User(http, base)
        resp = await http.post(
            f"{base}/api/v1/resident-auth/code", json={"id_number": id_number, "phone": phone}
        )
        assert resp.status == 202, await resp.text()
        code = (await sms_codes(settings, phone))[-1]
        resp = await http.post(
            f"{base}/api/v1/resident-auth/login",
            json={"id_number": id_number, "phone": phone, "code": code},
        )
        assert resp.status == 200, await resp.text()
        user.me = await resp.json()
        user.csrf = user.me["csrf_token"]
        return user

    yield make
    for h in opened:
        await h.close()


async def _register(worker: User, number: str, community_id: int, phone: str = PHONE) -> int:
    resp = await worker.post(
        "/api/v1/residents",
        json={"name": "陈阿婆", "id_number": number, "phone": phone, "community_id": community_id},
    )
    assert resp.status == 201, await resp.text()
    return (await resp.json())["id"]


async def test_sign_in_codes_reveal_nothing_and_cannot_be_guessed(
    as_user: Any, settings: Settings
) -> None:
    worker = await as_user("worker")
    setup = await gaoqiao_setup(worker)
    number = aged(70, 321)
    await _register(worker, number, setup["point"]["id"])
    anon = await as_user()
    # Unknown resident, wrong phone, right pair: the same answer, but only the last gets an SMS.
    for body in (
        {"id_number": aged(50, 777), "phone": PHONE},
        {"id_number": number, "phone": "13700137000"},
        {"id_number": number, "phone": PHONE},
    ):
        resp = await anon.post("/api/v1/resident-auth/code", json=body)
        assert (resp.status, await resp.json()) == (202, {"sent": True})
    assert len(await sms_codes(settings, PHONE)) == 1
    assert await sms_codes(settings, "13700137000") == []
    code = (await sms_codes(settings, PHONE))[0]
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    for _ in range(5):
        resp = await anon.post(
            "/api/v1/resident-auth/login", json={"id_number": number, "phone": PHONE, "code": wrong}
        )
        assert resp.status == 401
        assert (await resp.json())["error"]["code"] == "bad_credentials"
    # Five wrong guesses void the code: even the right one no longer works.
    resp = await anon.post(
        "/api/v1/resident-auth/login", json={"id_number": number, "phone": PHONE, "code": code}
    )
    assert resp.status == 401


async def test_resident_takes_a_number_from_home_and_is_served_on_video(
    as_user: Any, resident_device: Any, settings: Settings
) -> None:
    worker = await as_user("worker")
    setup = await gaoqiao_setup(worker)
    number = aged(85, 432)
    rid = await _register(worker, number, setup["point"]["id"])
    phone = await resident_device(number)
    me = await (await phone.get("/api/v1/resident-auth/me")).json()
    assert (me["resident_id"], me["id_masked"]) == (rid, number[:4] + "*" * 10 + number[-4:])
    # Residents can search the catalog themselves.
    assert (await phone.get("/api/v1/items", params={"q": "高龄"})).status == 200

    device = await Sock(phone).connect()
    clerk = await Sock(await as_user("clerk")).connect()
    try:
        payload = {
            "line_id": setup["line"]["id"],
            "item_code": setup["item"]["code"],
            "site_id": setup["point"]["id"],
            "consent": True,
        }
        ticket = await device.ok("ticket:take", payload)
        assert ticket["channel"] == "self"
        assert ticket["priority_reason"] == "age80"
        assert ticket["resident_name"] == "陈阿婆"
        # Not at another community's point, and a resident cannot serve the queue.
        other = dict(payload, site_id=setup["point"]["id"] + 1)
        assert (await device.err("ticket:take", other))["code"] == "forbidden_site"
        assert (await device.err("queue:call_next"))["code"] == "forbidden_role"

        called = await clerk.ok("queue:call_next")
        assert called["ticket"]["id"] == ticket["id"]
        await device.wait("ticket:called")
        answered = await device.ok("ticket:answer", {"ticket_id": ticket["id"]})
        roles = {p["role"]: p for p in answered["call"]["participants"]}
        assert roles["resident"]["display_name"] == "陈阿婆"
        assert roles["resident"]["resident_id"] == rid
        await device.ok(
            "call:signal",
            {
                "call_id": called["call"]["call_id"],
                "to": called["call"]["participant_id"],
                "kind": "offer",
                "sdp": "v=0 from a phone\r\n",
            },
        )
        assert (await clerk.wait("call:signal"))["sdp"] == "v=0 from a phone\r\n"
        # The resident photographs their own documents on the phone.
        await complete_materials(phone, clerk.user, ticket["case_id"])
        await clerk.ok("ticket:finish", {"ticket_id": ticket["id"], "outcome": "completed"})
        assert (await device.wait("case:finished"))["outcome"] == "completed"

        sync = await device.ok("state:sync")
        assert sync["tickets"] == []
        assert [c["call_id"] for c in sync["calls"]] == [called["call"]["call_id"]]
        case = await phone.get(f"/api/v1/cases/{ticket['case_id']}")
        assert (await case.json())["status"] == "completed"
        mine = await (await phone.get("/api/v1/cases")).json()
        assert [c["id"] for c in mine] == [ticket["case_id"]]
    finally:
        await device.close()
        await clerk.close()


async def test_a_resident_sees_only_their_own_tickets(as_user: Any, resident_device: Any) -> None:
    worker = await as_user("worker")
    setup = await gaoqiao_setup(worker)
    mine = aged(66, 111)
    await _register(worker, mine, setup["point"]["id"])
    theirs = aged(67, 222)
    other_rid = await _register(worker, theirs, setup["point"]["id"], phone="13600136000")
    wsock = await Sock(worker).connect()
    phone = await resident_device(mine)
    device = await Sock(phone).connect()
    try:
        ticket = await wsock.ok(
            "ticket:take",
            {
                "line_id": setup["line"]["id"],
                "item_code": setup["item"]["code"],
                "site_id": setup["point"]["id"],
                "resident_id": other_rid,
                "consent": True,
            },
        )
        err = await device.err("ticket:watch", {"ticket_id": ticket["id"]})
        assert err["code"] == "not_found"
        assert (await phone.get(f"/api/v1/cases/{ticket['case_id']}")).status == 404
        assert (await phone.get("/api/v1/residents/1")).status == 403
    finally:
        await device.close()
        await wsock.close()


async def test_staff_accounts_can_never_have_the_resident_role(as_user: Any) -> None:
    admin = await as_user("admin")
    resp = await admin.post(
        "/api/v1/staff",
        json={
            "username": "fake.resident",
            "display_name": "x",
            "role": "resident",
            "password": "long-enough-password",
        },
    )
    assert resp.status == 422
