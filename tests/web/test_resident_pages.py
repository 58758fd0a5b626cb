"""What the resident's phone pages call: their own identity, rules and cases, nobody else's."""

from __future__ import annotations

from typing import Any

from tests.conftest import User
from tests.factories import aged
from tests.signaling.helpers import gaoqiao_setup
from tests.signaling.test_self_service import PHONE, resident_device

__all__ = ["resident_device"]  # the fixture


async def test_the_shared_client_gets_the_residents_csrf_token(
    as_user: Any, resident_device: Any
) -> None:
    worker = await as_user("worker")
    setup = await gaoqiao_setup(worker)
    number = aged(72, 431)
    point = setup["point"]["id"]
    body = {"name": "陈阿婆", "id_number": number, "phone": PHONE, "community_id": point}
    resp = await worker.post("/api/v1/residents", json=body)
    assert resp.status == 201, await resp.text()
    phone: User = await resident_device(number)
    assert (phone.me["age"], phone.me["elderly"], phone.me["phone_masked"]) == (
        72,
        True,
        "139****9000",
    )
    # GET /auth/me (which the pages' client reads for its CSRF header) answers for a resident
    # with the resident session's token, so a write from the page goes through.
    me = await (await phone.get("/api/v1/auth/me")).json()
    assert (me["role"], me["csrf_token"]) == ("resident", phone.csrf)
    again = await (await phone.get("/api/v1/resident-auth/me")).json()
    assert again["csrf_token"] == phone.csrf and again["elderly"] is True


async def test_a_resident_checks_an_items_rules_against_themself_only(
    as_user: Any, resident_device: Any
) -> None:
    worker = await as_user("worker")
    setup = await gaoqiao_setup(worker)
    point = setup["point"]["id"]
    mine, theirs = aged(70, 433), aged(85, 435)
    ids = []
    for number, tel in ((mine, PHONE), (theirs, "13600136001")):
        body = {"name": "居民", "id_number": number, "phone": tel, "community_id": point}
        resp = await worker.post("/api/v1/residents", json=body)
        assert resp.status == 201, await resp.text()
        ids.append((await resp.json())["id"])
    phone: User = await resident_device(mine)
    code = setup["item"]["code"]  # 高龄津贴: 80 and over

    resp = await phone.get(f"/api/v1/items/{code}/eligibility", params={"resident_id": ids[0]})
    assert resp.status == 200, await resp.text()
    result = await resp.json()
    assert result["eligible"] is False
    assert [p["code"] for p in result["problems"]] == ["eligibility.too_young"]
    # Someone else's record answers as if it did not exist.
    resp = await phone.get(f"/api/v1/items/{code}/eligibility", params={"resident_id": ids[1]})
    assert resp.status == 404
    # Staff still check it as before.
    resp = await worker.get(f"/api/v1/items/{code}/eligibility", params={"resident_id": ids[1]})
    assert resp.status == 200 and (await resp.json())["eligible"] is True
