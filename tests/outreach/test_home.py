"""Home-service intake: who qualifies (age from the ID number, a certificate on file, a declared
pregnancy), what an ineligible caller is offered instead, who sees which part of a request,
and bad input that changes nothing."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

from core.settings import Settings
from tests.conftest import User
from tests.factories import aged
from tests.outreach.home_helpers import (
    PHONE,
    SmsSpy,
    client,
    created,
    register,
    request,
    resident_phone,
    sms,
    sql,
    today,
)
from tests.web.test_errors import expect_error

__all__ = ["client", "resident_phone", "sms"]  # fixtures


async def check(user: User, resident_id: int | None, item: str = "RS-005", **extra: Any) -> Any:
    body: dict[str, Any] = {"item_code": item, **extra}
    if resident_id is not None:
        body["resident_id"] = resident_id
    resp = await user.post("/api/v1/home/check", json=body)
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def count(settings: Settings, table: str) -> int:
    return (await sql(settings, f"SELECT count(*) FROM {table}"))[0][0]


async def test_an_80_year_old_qualifies_and_a_31_year_old_is_shown_where_else_to_go(
    as_user: Any, settings: Settings
) -> None:
    operator = await as_user("operator")
    old = await register(operator, 80, 701)
    young = await register(operator, 31, 703)

    yes = await check(operator, old)
    assert (yes["eligible"], yes["basis"], yes["problems"], yes["alternatives"]) == (
        True,
        "elderly",
        [],
        [],
    )
    assert yes["address_on_file"] is True and yes["address_masked"].endswith("****")
    assert "502" not in yes["address_masked"]

    no = await check(operator, young)
    assert no["eligible"] is False and no["basis"] is None
    assert [p["code"] for p in no["problems"]] == ["home.age", "home.disability"]
    assert "31" in no["problems"][0]["message"] and "60" in no["problems"][0]["message"]
    kinds = [a["kind"] for a in no["alternatives"]]
    assert kinds == ["hall", "remote_assist", "appointment"]
    hall = no["alternatives"][0]
    # The nearest hall with a human-resources window: Gaoqiao's, a few km from the point.
    assert hall["site_name"] == "高桥镇便民服务中心" or "高桥" in hall["site_name"]
    assert 0 < hall["distance_km"] < 10 and hall["line_name"]
    assert no["alternatives"][1]["site_name"] == no["community_name"]
    assert no["alternatives"][2]["line_id"] == hall["line_id"]

    # Asking anyway is refused with the same reasons and alternatives; nothing is written.
    cases_before = await count(settings, "service_case")
    resp = await request(operator, young)
    body = await expect_error(resp, 422, "home.not_eligible")
    assert "31" in body["message"]
    details = body["details"]
    assert [d["kind"] for d in details if d["type"] == "alternative"] == kinds
    assert await count(settings, "home_request") == 0
    assert await count(settings, "service_case") == cases_before

    # The 80-year-old's request goes through, onto a new case of the item's window.
    req = await created(operator, old)
    assert (req["status"], req["channel"], req["item_code"]) == ("requested", "hotline", "RS-005")
    assert req["address_masked"] == yes["address_masked"] and req["private"] is None
    case = await (
        await (await as_user("coordinator.t07")).get(f"/api/v1/cases/{req['case_id']}")
    ).json()
    assert [e["kind"] for e in case["timeline"]] == ["created", "home.requested"]
    assert case["status"] == "open" and case["line_id"] is not None


async def test_a_disability_certificate_on_file_qualifies_and_stays_out_of_the_operators_view(
    as_user: Any,
) -> None:
    operator = await as_user("operator")
    coordinator = await as_user("coordinator.t07")
    disabled = await register(operator, 45, 705, disabled=True)
    seen = await check(operator, disabled)
    assert seen["eligible"] is True and seen["basis"] is None  # not the operator's to know
    assert (await check(coordinator, disabled))["basis"] == "disabled"
    # An item only for the elderly does not take a certificate.
    only_old = await check(operator, disabled, "RS-010")
    assert only_old["eligible"] is False
    assert [p["code"] for p in only_old["problems"]] == ["home.age"]


async def test_a_declared_pregnancy_qualifies_with_an_expected_date_in_range(
    as_user: Any, settings: Settings
) -> None:
    worker = await as_user("worker")
    resident = await register(worker, 29, 706, male=False)
    assert [p["code"] for p in (await check(worker, resident, "WJ-001"))["problems"]] == [
        "home.pregnancy"
    ]
    due = (today() + dt.timedelta(days=90)).isoformat()
    yes = await check(worker, resident, "WJ-001", pregnant_due=due)
    assert yes["eligible"] is True and yes["basis"] is None
    for bad in (today() - dt.timedelta(days=1), today() + dt.timedelta(days=301)):
        resp = await worker.post(
            "/api/v1/home/check",
            json={"resident_id": resident, "item_code": "WJ-001", "pregnant_due": bad.isoformat()},
        )
        await expect_error(resp, 422, "home.due_date")
    req = await created(worker, resident, "WJ-001", pregnant_due=due)
    assert req["channel"] == "point" and req["private"] is None
    coordinator = await as_user("coordinator.t07")
    full = await (await coordinator.get(f"/api/v1/home/requests/{req['id']}")).json()
    assert full["private"] == {
        "basis": "pregnant",
        "pregnant_due": due,
        "address": "高桥镇幸福路706号3单元502室",
        "notes": "腿脚不便，请先打电话",
    }
    # Stored sealed: the row holds neither the date, the address nor the notes in clear.
    ((cipher, masked),) = await sql(
        settings, "SELECT private_cipher, address_masked FROM home_request"
    )
    assert cipher.startswith("v1:") and due not in cipher and "幸福路706" not in cipher
    assert masked.endswith("****") and "502" not in masked


async def test_an_item_that_cannot_be_done_at_home_is_refused_and_nothing_is_saved(
    as_user: Any, settings: Settings
) -> None:
    operator = await as_user("operator")
    old = await register(operator, 82, 707)
    for path, body in (
        ("check", {"resident_id": old, "item_code": "SJ-003"}),
        ("requests", {"resident_id": old, "item_code": "SJ-003"}),
    ):
        resp = await operator.post(f"/api/v1/home/{path}", json=body)
        err = await expect_error(resp, 422, "home.not_at_home")
        assert "食品经营许可" in err["message"]
    resp = await operator.post(
        "/api/v1/home/requests", json={"resident_id": old, "item_code": "NO-SUCH"}
    )
    await expect_error(resp, 404, "not_found")
    assert await count(settings, "home_request") == 0
    items = await (await operator.get("/api/v1/home/items")).json()
    codes = {i["code"]: i["home_for"] for i in items}
    assert codes["RS-005"] == ["elderly", "disabled"] and "SJ-003" not in codes


async def test_bad_input_gets_a_clear_4xx_and_changes_nothing(
    as_user: Any, settings: Settings, sms: list[SmsSpy]
) -> None:
    operator = await as_user("operator")
    old = await register(operator, 82, 709)
    cases_before = await count(settings, "service_case")
    tomorrow = (today() + dt.timedelta(days=1)).isoformat()
    bad: list[tuple[dict[str, Any], int, str]] = [
        ({"notes": "请\x00先打电话"}, 422, "control_characters"),
        ({"address": "幸福路\x07号"}, 422, "control_characters"),
        ({"notes": "长" * 501}, 422, "validation"),
        ({"address": "路" * 201}, 422, "validation"),
        ({"preferred": [{"date": tomorrow, "part": "am"}] * 7}, 422, "validation"),
        ({"preferred": [{"date": tomorrow, "part": "night"}]}, 422, "validation"),
        ({"preferred": [{"date": "2001-01-01", "part": "am"}]}, 422, "home.preferred"),
        ({"surprise": True}, 422, "validation"),
        ({"resident_id": 2**31}, 422, "validation"),
        ({"resident_id": 999999}, 404, "not_found"),
        ({"community_id": "x"}, 422, "validation"),
    ]
    for extra, status, code in bad:
        resp = await request(operator, extra.pop("resident_id", old), **extra)
        await expect_error(resp, status, code)
    resp = await operator.post("/api/v1/home/requests", json={"item_code": "RS-005"})
    await expect_error(resp, 422, "home.resident_required")
    resp = await operator.post(
        "/api/v1/home/requests", data=b"{not json", headers={"Content-Type": "application/json"}
    )
    await expect_error(resp, None, "invalid_json")
    assert await count(settings, "home_request") == 0
    assert sms[0].to(PHONE) == []
    # The same request twice, even at the same moment: one is taken, the other finds it.
    both = await asyncio.gather(request(operator, old), request(await as_user("operator"), old))
    assert sorted(r.status for r in both) == [201, 409]
    first = await next(r for r in both if r.status == 201).json()
    err = await expect_error(next(r for r in both if r.status == 409), 409, "home.duplicate")
    assert str(first["id"]) in err["message"]
    resp = await request(operator, old)
    await expect_error(resp, 409, "home.duplicate")
    assert await count(settings, "home_request") == 1
    assert await count(settings, "service_case") == cases_before + 1


async def test_the_hotline_finds_a_caller_by_id_number_or_phone_audited(
    as_user: Any, settings: Settings
) -> None:
    operator = await as_user("operator")
    a = await register(operator, 82, 711, phone="13700137001")
    b = await register(operator, 79, 713, phone="13700137001")  # the same household phone
    found = await (await operator.post("/api/v1/home/find", json={"phone": "137 0013 7001"})).json()
    assert [r["id"] for r in found] == [a, b]
    assert found[0]["phone_masked"] == "137****7001" and "address" not in found[0]
    by_id = await (
        await operator.post("/api/v1/home/find", json={"id_number": aged(82, 711)})
    ).json()
    assert [r["id"] for r in by_id] == [a]
    none = await operator.post("/api/v1/home/find", json={"phone": "13700137999"})
    assert await none.json() == []
    await expect_error(await operator.post("/api/v1/home/find", json={}), 422, "home.find_what")
    await expect_error(
        await operator.post("/api/v1/home/find", json={"phone": "12"}), 422, "phone.invalid"
    )
    rows = await sql(
        settings,
        "SELECT action, target_id FROM audit_log WHERE action LIKE 'resident.lookup%' ORDER BY id",
    )
    assert rows == [
        ("resident.lookup", str(a)),
        ("resident.lookup", str(b)),
        ("resident.lookup", str(a)),
        ("resident.lookup_miss", ""),
    ]
    # A role that takes no requests cannot look residents up here.
    clerk = await as_user("clerk")
    await expect_error(
        await clerk.post("/api/v1/home/find", json={"phone": "13700137001"}), 403, "forbidden_role"
    )


async def test_another_towns_coordinator_sees_nothing_and_private_views_are_audited(
    as_user: Any, settings: Settings, resident_phone: Any
) -> None:
    operator = await as_user("operator")
    old = await register(operator, 82, 715)
    req = await created(operator, old)
    path = f"/api/v1/home/requests/{req['id']}"

    elsewhere = await as_user("coordinator.t01")
    await expect_error(await elsewhere.get(path), 404, "not_found")
    await expect_error(await elsewhere.post(f"{path}/accept", json={}), 404, "not_found")
    assert await (await elsewhere.get("/api/v1/home/requests")).json() == []
    stranger = await as_user("field.t07")  # not sent on this request's visit
    await expect_error(await stranger.get(path), 404, "not_found")
    worker_elsewhere = await as_user("worker.t01-c01")
    await expect_error(await worker_elsewhere.get(path), 404, "not_found")
    clerk = await as_user("clerk")
    await expect_error(await clerk.get(path), 403, "forbidden_role")

    # The operator follows the request, masked; the town's coordinator sees all of it.
    mine = await (await operator.get(path)).json()
    assert mine["private"] is None and mine["address_masked"].endswith("****")
    listed = await (await (await as_user("coordinator.t07")).get("/api/v1/home/requests")).json()
    assert [r["id"] for r in listed] == [req["id"]] and listed[0]["private"] is None
    coordinator = await as_user("coordinator.t07")
    full = await (await coordinator.get(path)).json()
    assert full["private"]["basis"] == "elderly" and "502" in full["private"]["address"]

    # The resident on their phone sees their own, in full; another resident's is not there.
    phone = await resident_phone(aged(82, 715))
    own = await (await phone.get(path)).json()
    assert own["private"]["notes"] == "腿脚不便，请先打电话"
    other = await register(operator, 70, 717, phone="13600136000")
    theirs = await created(operator, other)
    await expect_error(await phone.get(f"/api/v1/home/requests/{theirs['id']}"), 404, "not_found")
    assert [r["id"] for r in await (await phone.get("/api/v1/home/requests")).json()] == [req["id"]]

    views = await sql(
        settings,
        "SELECT actor_role, target_id FROM audit_log WHERE action = 'home.request.view_private' "
        "ORDER BY id",
    )
    assert views == [("coordinator", str(req["id"])), ("resident", str(req["id"]))]
