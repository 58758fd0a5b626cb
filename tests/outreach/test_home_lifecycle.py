"""A home-service request from the phone call to delivery: triage, a visit set by hand, the
case handled; each step once on the case timeline and once by SMS, illegal steps refused
with nothing changed."""

from __future__ import annotations

import datetime as dt
from typing import Any

from core.settings import Settings
from tests.factories import aged
from tests.outreach.home_helpers import (
    PHONE,
    SmsSpy,
    client,
    created,
    field_staff_id,
    register,
    resident_phone,
    sms,
    soon,
    sql,
    step,
    today,
)
from tests.web.test_errors import expect_error

__all__ = ["client", "resident_phone", "sms"]  # fixtures

OPERATOR_PHONE = "13800138111"


async def test_from_the_phone_call_to_delivery_each_step_once(
    as_user: Any, settings: Settings, sms: list[SmsSpy]
) -> None:
    await sql(settings, "UPDATE staff SET phone = :p WHERE username = 'operator'", p=OPERATOR_PHONE)
    operator = await as_user("operator")
    coordinator = await as_user("coordinator.t07")
    resident = await register(operator, 82, 801)
    req = await created(operator, resident)
    rid = req["id"]

    # Triage: a question first, answered by the operator on a second call, then accepted.
    asked = await step(coordinator, rid, "ask", {"text": "请问哪天家里有人？"})
    assert (asked["status"], asked["info_question"]) == ("needs_info", "请问哪天家里有人？")
    answered = await step(
        operator,
        rid,
        "answer",
        {"text": "周三上午都在家", "preferred": [{"date": today().isoformat(), "part": "pm"}]},
    )
    assert answered["status"] == "requested"
    assert answered["preferred"] == [{"date": today().isoformat(), "part": "pm"}]
    full = await (await coordinator.get(f"/api/v1/home/requests/{rid}")).json()
    assert full["private"]["notes"].endswith("周三上午都在家")
    accepted = await step(coordinator, rid, "accept", {"note": "符合条件"})
    assert accepted["status"] == "accepted" and accepted["info_question"] == ""

    # The visit: a time and a field staff member of the town, set by hand.
    staff_id = await field_staff_id(coordinator, rid)
    first = soon(days=2, hour=9)
    scheduled = await step(
        coordinator,
        rid,
        "schedule",
        {"starts_at": first.isoformat(), "minutes": 60, "staff_id": staff_id},
    )
    assert scheduled["status"] == "scheduled"
    assert scheduled["visit"]["staff_id"] == staff_id
    assert dt.datetime.fromisoformat(scheduled["visit"]["starts_at"]) == first
    # Moved once: the resident hears of the new time too.
    later = soon(days=3, hour=14)
    moved = await step(
        coordinator,
        rid,
        "schedule",
        {"starts_at": later.isoformat(), "minutes": 90, "staff_id": staff_id},
    )
    assert dt.datetime.fromisoformat(moved["visit"]["starts_at"]) == later

    # The field staff member now sees the request in full (to go there), and records the visit.
    field = await as_user("field.t07")
    theirs = await (await field.get("/api/v1/home/requests")).json()
    assert [r["id"] for r in theirs] == [rid]
    seen = await (await field.get(f"/api/v1/home/requests/{rid}")).json()
    assert "502" in seen["private"]["address"]
    visited = await step(field, rid, "visit", {"basis_confirmed": True})
    assert visited["status"] == "visited" and visited["visit"]["status"] == "done"
    handled = await step(coordinator, rid, "handled", {"note": "社保卡已补办"})
    assert handled["status"] == "handled"
    delivered = await step(coordinator, rid, "delivered", {})
    assert delivered["status"] == "delivered"

    # Each step once on the case's timeline, in plain order; the case itself is completed.
    case = await (await coordinator.get(f"/api/v1/cases/{req['case_id']}")).json()
    kinds = [e["kind"] for e in case["timeline"]]
    assert kinds == [
        "created",
        "home.requested",
        "home.info_requested",
        "home.info_given",
        "home.accepted",
        "home.visit_scheduled",
        "home.visit_scheduled",
        "home.visit_done",
        "home.handled",
        "status.completed",
        "home.delivered",
    ]
    assert case["status"] == "completed"
    timeline_text = str(case["timeline"])
    # Nothing sensitive: neither the address nor the notes (a time stamp may well hold "502").
    assert "幸福路" not in timeline_text and "502室" not in timeline_text
    assert "腿脚" not in timeline_text

    # One SMS per step to the resident, each with its own link; a copy to the operator.
    spy = sms[0]
    assert spy.to(PHONE) == [
        "home.requested",
        "home.needs_info",
        "home.accepted",
        "home.scheduled",
        "home.scheduled",
        "home.visited",
        "home.handled",
        "home.delivered",
    ]
    mine = [m for m in spy.sent if m.phone == PHONE and m.kind.startswith("home.")]
    assert len({m.key for m in mine}) == len(mine)
    assert all(m.params["link"].startswith("/resident/l/") for m in mine)
    assert len({m.params["link"] for m in mine}) == len(mine)
    assert mine[4].params["time"].endswith(f"{later:%H:%M}") and mine[4].params["staff"]
    for m in mine:
        assert set(m.params) <= {"item", "link", "time", "staff"}
    staff_copies = [m for m in spy.sent if m.phone == OPERATOR_PHONE]
    assert [m.params["step"] for m in staff_copies] == [
        "已提交",
        "需要居民补充信息",
        "已受理",
        "已安排上门",
        "已安排上门",
        "已上门",
        "已办结",
        "结果已送达",
    ]
    assert all(m.kind == "home.staff" and m.params["number"] == str(rid) for m in staff_copies)
    # The gateway queued each of them once, under its own key.
    queued = await sql(settings, "SELECT key FROM sms_outbox WHERE key LIKE 'home:%' ORDER BY id")
    assert [k for (k,) in queued] == [m.key for m in spy.sent if m.kind.startswith("home.")]

    # Every step is in the audit log with who did it.
    rows = await sql(
        settings,
        "SELECT action, actor_role FROM audit_log WHERE target_type = 'home_request' "
        "AND action NOT LIKE '%view_private' ORDER BY id",
    )
    assert rows == [
        ("home.request.create", "operator"),
        ("home.request.ask", "coordinator"),
        ("home.request.answer", "operator"),
        ("home.request.accept", "coordinator"),
        ("home.request.schedule", "coordinator"),
        ("home.request.schedule", "coordinator"),
        ("home.request.visit", "field_staff"),
        ("home.request.handle", "coordinator"),
        ("home.request.deliver", "coordinator"),
    ]


async def test_illegal_steps_are_refused_and_change_nothing(
    as_user: Any, settings: Settings, sms: list[SmsSpy]
) -> None:
    operator = await as_user("operator")
    coordinator = await as_user("coordinator.t07")
    req = await created(operator, await register(operator, 82, 803))
    rid = req["id"]
    sent = len(sms[0].sent)
    for name, body in (
        ("handled", {}),
        ("delivered", {}),
        ("answer", {"text": "x"}),
        ("schedule", {"starts_at": soon().isoformat(), "staff_id": 1}),
    ):
        await expect_error(
            await coordinator.post(f"/api/v1/home/requests/{rid}/{name}", json=body),
            409,
            "home.state",
        )
    resp = await coordinator.post(f"/api/v1/home/requests/{rid}/visit", json={"basis_confirmed": 1})
    await expect_error(resp, 422, "validation")  # strict: a boolean, not 1
    await expect_error(
        await coordinator.post(f"/api/v1/home/requests/{rid}/decline", json={"text": ""}),
        422,
        "validation",
    )
    # Roles: the operator cannot triage, the field staff cannot accept.
    await expect_error(
        await operator.post(f"/api/v1/home/requests/{rid}/accept", json={}), 403, "forbidden_role"
    )
    await step(coordinator, rid, "accept", {})
    await expect_error(
        await coordinator.post(f"/api/v1/home/requests/{rid}/accept", json={}), 409, "home.state"
    )
    # A visit: not in the past, not a day next year, not by someone of another town or busy.
    own = await field_staff_id(coordinator, rid)
    for when, staff, status, code in (
        (dt.datetime.now(dt.UTC) - dt.timedelta(hours=1), own, 422, "home.visit_time"),
        (dt.datetime.now(dt.UTC) + dt.timedelta(days=200), own, 422, "home.visit_time"),
        (soon(), 1, 422, "home.staff"),  # the admin, not field staff
    ):
        resp = await coordinator.post(
            f"/api/v1/home/requests/{rid}/schedule",
            json={"starts_at": when.isoformat(), "staff_id": staff},
        )
        await expect_error(resp, status, code)
    ((other_town,),) = await sql(settings, "SELECT id FROM staff WHERE username = 'field.t01'")
    resp = await coordinator.post(
        f"/api/v1/home/requests/{rid}/schedule",
        json={"starts_at": soon().isoformat(), "staff_id": other_town},
    )
    await expect_error(resp, 422, "home.staff")
    for edge in ("9999-12-31T23:59:59+14:00", "0001-01-01T00:00:00-12:00"):
        resp = await coordinator.post(
            f"/api/v1/home/requests/{rid}/schedule", json={"starts_at": edge, "staff_id": own}
        )
        await expect_error(resp, 422, "validation")
    far = {"start": "9999-12-31", "end": "9999-12-31"}
    await expect_error(await coordinator.get("/api/v1/home/counts", params=far), 422, "validation")
    naive = await coordinator.post(
        f"/api/v1/home/requests/{rid}/schedule",
        json={"starts_at": "2030-01-01T09:00:00", "staff_id": own},
    )
    await expect_error(naive, 422, "validation")  # a time without its zone is ambiguous
    after = await (await coordinator.get(f"/api/v1/home/requests/{rid}")).json()
    assert (after["status"], after["visit"]) == ("accepted", None)
    assert [m.kind for m in sms[0].sent[sent:]] == ["home.accepted"]

    # The same field staff member cannot be in two homes at once.
    second = await created(operator, await register(operator, 85, 805, phone="13600136001"))
    await step(coordinator, second["id"], "accept", {})
    at = soon(days=2, hour=10)
    await step(
        coordinator, rid, "schedule", {"starts_at": at.isoformat(), "minutes": 60, "staff_id": own}
    )
    resp = await coordinator.post(
        f"/api/v1/home/requests/{second['id']}/schedule",
        json={"starts_at": (at + dt.timedelta(minutes=30)).isoformat(), "staff_id": own},
    )
    await expect_error(resp, 409, "home.staff_busy")
    again = await (await coordinator.get(f"/api/v1/home/requests/{second['id']}")).json()
    assert again["status"] == "accepted"


async def test_a_pregnancy_not_confirmed_at_the_visit_declines_the_request(
    as_user: Any, sms: list[SmsSpy]
) -> None:
    worker = await as_user("worker")
    coordinator = await as_user("coordinator.t07")
    resident = await register(worker, 27, 806, male=False)
    due = (today() + dt.timedelta(days=120)).isoformat()
    req = await created(worker, resident, "WJ-001", pregnant_due=due)
    rid = req["id"]
    await step(coordinator, rid, "accept", {})
    staff_id = await field_staff_id(coordinator, rid)
    await step(
        coordinator, rid, "schedule", {"starts_at": soon().isoformat(), "staff_id": staff_id}
    )
    # Field staff of another town were not sent: not theirs to see or record.
    stranger = await as_user("field.t01")
    resp = await stranger.post(f"/api/v1/home/requests/{rid}/visit", json={"basis_confirmed": True})
    await expect_error(resp, 404, "not_found")
    out = await step(coordinator, rid, "visit", {"basis_confirmed": False})
    assert out["status"] == "declined" and out["decline_reason"]
    case = await (await coordinator.get(f"/api/v1/cases/{req['case_id']}")).json()
    assert case["status"] == "cancelled"
    assert [e["kind"] for e in case["timeline"]][-3:] == [
        "home.visit_done",
        "home.declined",
        "status.cancelled",
    ]
    assert sms[0].to(PHONE)[-1] == "home.declined"
    # Declined is final; a new request for the same item may be made again.
    await expect_error(
        await coordinator.post(f"/api/v1/home/requests/{rid}/accept", json={}), 409, "home.state"
    )
    again = await created(worker, resident, "WJ-001", pregnant_due=due)
    assert again["id"] != rid


async def test_the_resident_asks_on_their_phone_answers_and_cancels(
    as_user: Any, resident_phone: Any, sms: list[SmsSpy]
) -> None:
    worker = await as_user("worker")
    await register(worker, 75, 807)
    phone = await resident_phone(aged(75, 807))
    req = await created(phone, None, "RS-004")
    rid = req["id"]
    assert (req["channel"], req["status"]) == ("resident", "requested")
    coordinator = await as_user("coordinator.t07")
    await step(coordinator, rid, "ask", {"text": "请确认上门地址"})
    answered = await step(
        phone, rid, "answer", {"text": "地址没变", "address": "高桥镇幸福路807号1单元101室"}
    )
    assert answered["status"] == "requested" and answered["address_masked"].endswith("****")
    assert answered["private"]["address"] == "高桥镇幸福路807号1单元101室"
    # A resident cannot triage, look others up, nor ask for someone else.
    await expect_error(
        await phone.post("/api/v1/home/find", json={"phone": PHONE}), 403, "forbidden_role"
    )
    await expect_error(
        await phone.post(f"/api/v1/home/requests/{rid}/accept", json={}), 403, "forbidden_role"
    )
    other = await register(worker, 88, 809, phone="13600136002")
    resp = await phone.post(
        "/api/v1/home/requests", json={"item_code": "RS-004", "resident_id": other}
    )
    await expect_error(resp, 404, "not_found")
    cancelled = await step(phone, rid, "cancel", {"text": "已自行去大厅办理"})
    assert cancelled["status"] == "cancelled"
    assert sms[0].to(PHONE) == ["home.requested", "home.needs_info", "home.cancelled"]
    # A worker of the point sees what happened, masked.
    seen = await (await worker.get(f"/api/v1/home/requests/{rid}")).json()
    assert seen["status"] == "cancelled" and seen["private"] is None


async def test_counts_per_community_of_the_callers_area(as_user: Any) -> None:
    operator = await as_user("operator")
    coordinator = await as_user("coordinator.t07")
    one = await created(operator, await register(operator, 82, 811))
    await created(operator, await register(operator, 83, 813, phone="13600136003"))
    await step(coordinator, one["id"], "decline", {"text": "已由家属到大厅办理"})
    span = {"start": today().isoformat(), "end": today().isoformat()}
    rows = await (await coordinator.get("/api/v1/home/counts", params=span)).json()
    assert [(r["requested"], r["accepted"], r["declined"]) for r in rows] == [(2, 0, 1)]
    elsewhere = await as_user("coordinator.t01")
    assert await (await elsewhere.get("/api/v1/home/counts", params=span)).json() == []
    district = await as_user("supervisor")
    assert len(await (await district.get("/api/v1/home/counts", params=span)).json()) == 1
    bad = await coordinator.get(
        "/api/v1/home/counts", params={"start": "2026-01-02", "end": "2026-01-01"}
    )
    await expect_error(bad, 422, "validation")
