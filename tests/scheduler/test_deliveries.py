"""Courier deliveries of licences: one order per completed case that asks for it, the courier's
day, dispatch with a code by SMS, proof at the door (resident or proxy), wrong last-4 digits
locking the delivery and telling the supervisors, replayed and foreign codes, a proof posted
twice, failed attempts and re-attempts, scoping, and the audit of every proof view."""

from __future__ import annotations

import base64
import datetime as dt
import io
import re
import secrets
from typing import Any

from PIL import Image
from sqlmodel import select

from core.db import Database, utcnow
from core.models import Case, Resident, ServiceItem, Site, WindowLine
from core.settings import Settings
from httpapi import keys
from outreach import licences
from scheduler import deliveries
from tests.conftest import User
from tests.outreach.home_helpers import PHONE, client, register, sms, sql
from tests.web.test_errors import expect_error

__all__ = ["client", "sms"]  # fixtures

API = "/api/v1"


def picture(fmt: str = "JPEG", size: tuple[int, int] = (64, 48)) -> str:
    buf = io.BytesIO()
    Image.new("RGB", size, (200, 120, 40)).save(buf, fmt)
    return base64.b64encode(buf.getvalue()).decode()


async def completed_case(
    settings: Settings, resident_id: int, *, item: str = "HJ-004", deliver: bool = True
) -> int:
    """A case the clerk completed (arranged in the database: the queue has its own tests)."""
    db = Database(settings.effective_database_url)
    try:
        async with db.session() as s:
            it = (await s.exec(select(ServiceItem).where(ServiceItem.code == item))).one()
            who = await s.get(Resident, resident_id)
            assert who is not None
            town = (await s.exec(select(Site).where(Site.code == "T07"))).one()
            line = (
                await s.exec(
                    select(WindowLine).where(
                        WindowLine.site_id == town.id, WindowLine.department == it.department
                    )
                )
            ).first()
            case = Case(
                number=f"T{secrets.token_hex(6)}",
                item_id=it.id or 0,
                resident_id=resident_id,
                site_id=who.community_id or 0,
                line_id=line.id if line else None,
                status="completed",
                closed_at=utcnow(),
                licence_delivery=deliver,
            )
            s.add(case)
            await s.commit()
            return case.id or 0
    finally:
        await db.dispose()


async def run_orders(client: Any, settings: Settings) -> dict[str, int]:
    """The register's intake, then the delivery job's (as the periodic jobs run them)."""
    app = client.app
    async with app[keys.DB].session() as s:
        await licences.issue_from_cases(s, settings=settings, now=utcnow())
        made = await deliveries.create_for_cases(
            s, settings=settings, cipher=app[keys.CIPHER], sms=app[keys.SMS], now=utcnow()
        )
        await s.commit()
    return made


async def a_delivery(
    client: Any, settings: Settings, operator: User, seq: int, *, phone: str = PHONE
) -> tuple[int, int, str]:
    """A resident with a completed case asking for delivery: (delivery id, case id, last 4)."""
    resident = await register(operator, 70, seq, phone=phone)
    case_id = await completed_case(settings, resident)
    await run_orders(client, settings)
    rows = await sql(settings, "SELECT id FROM delivery WHERE case_id = :c", c=case_id)
    number = await sql(settings, "SELECT id_masked FROM resident WHERE id = :r", r=resident)
    return rows[0][0], case_id, number[0][0][-4:]


def code_of(spy: Any, phone: str) -> str:
    m = next(m for m in reversed(spy.sent) if m.phone == phone and m.kind == "delivery.code")
    return m.params["code"]


def proof(last4: str, code: str, **extra: Any) -> dict[str, Any]:
    return {
        "key": secrets.token_urlsafe(18),
        "recipient": "resident",
        "last4": last4,
        "code": code,
        "photo": picture(),
        "signature": picture("PNG"),
        "lat": 30.8,
        "lng": 121.4,
        "accuracy_m": 12,
        "captured_at": utcnow().isoformat(),
        **extra,
    }


async def timeline(settings: Settings, case_id: int) -> list[str]:
    rows = await sql(
        settings, "SELECT kind FROM case_event WHERE case_id = :c ORDER BY id", c=case_id
    )
    return [r[0] for r in rows if r[0].startswith("deliveries.")]


async def counts(settings: Settings) -> tuple[int, int, int]:
    rows = await sql(
        settings,
        "SELECT (SELECT count(*) FROM delivery), (SELECT count(*) FROM delivery_proof),"
        " (SELECT count(*) FROM delivery_attempt)",
    )
    return tuple(rows[0])  # type: ignore[return-value]


async def test_one_order_per_case_and_only_when_asked(
    client: Any, as_user: Any, settings: Settings, sms: Any
) -> None:
    operator = await as_user("operator")
    resident = await register(operator, 70, 901)
    wanted = await completed_case(settings, resident)
    other = await completed_case(settings, resident, deliver=False)
    first = await run_orders(client, settings)
    again = await run_orders(client, settings)
    assert first["created"] == 1 and again["created"] == 0
    rows = await sql(settings, "SELECT case_id, status, courier_id FROM delivery")
    assert [(r[0], r[1]) for r in rows] == [(wanted, "pending")]
    assert rows[0][2] is not None  # the demo courier covers the district
    assert await timeline(settings, wanted) == ["deliveries.created"]
    assert await timeline(settings, other) == []
    assert sms[0].to(PHONE, "delivery.") == ["delivery.created"]
    # The address is kept encrypted only.
    raw = await sql(settings, "SELECT address_cipher, address_masked FROM delivery")
    assert "幸福路" not in raw[0][0] and raw[0][1].endswith("****")


async def test_choosing_delivery_for_a_case(
    client: Any, as_user: Any, settings: Settings, sms: Any
) -> None:
    operator = await as_user("operator")
    resident = await register(operator, 70, 902)
    case_id = await completed_case(settings, resident, deliver=False)
    clerk = await as_user("clerk.t07.h")
    url = f"{API}/cases/{case_id}/licence-delivery"
    before = await (await clerk.get(url)).json()
    assert before == {
        "case_id": case_id,
        "deliver": False,
        "available": True,
        "fixed": False,
        "delivery_id": None,
    }
    resp = await clerk.post(url, json={"deliver": True})
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["deliver"] is True
    assert (await (await clerk.get(url)).json())["deliver"] is True
    assert await timeline(settings, case_id) == ["deliveries.chosen"]
    assert (await run_orders(client, settings))["created"] == 1
    # Once the order exists the choice is final: the courier may be on the way.
    ordered = await (await clerk.get(url)).json()
    assert ordered["deliver"] is True and ordered["delivery_id"] is not None
    resp = await clerk.post(url, json={"deliver": False})
    await expect_error(resp, 409, "delivery.already_ordered")
    assert (await (await clerk.get(url)).json())["deliver"] is True
    # An item that issues no licence has nothing to deliver.
    plain = await completed_case(settings, resident, item="MZ-004", deliver=False)
    resp = await clerk.post(f"{API}/cases/{plain}/licence-delivery", json={"deliver": True})
    assert resp.status in (404, 422)
    courier = await as_user("courier")
    resp = await courier.post(f"{API}/cases/{case_id}/licence-delivery", json={"deliver": True})
    await expect_error(resp, 403, "forbidden_role")


async def test_the_courier_delivers_to_the_resident(
    client: Any, as_user: Any, settings: Settings, sms: Any
) -> None:
    operator = await as_user("operator")
    delivery, case_id, last4 = await a_delivery(client, settings, operator, 903)
    courier = await as_user("courier")
    day = await (await courier.get(f"{API}/courier/day")).json()
    stop = next(s for s in day["stops"] if s["delivery"]["id"] == delivery)
    assert "幸福路903号" in stop["address"] and stop["phone"] == PHONE
    assert stop["nav_url"].startswith("geo:")
    # No code yet: the proof waits for the courier to set out.
    resp = await courier.post(f"{API}/deliveries/{delivery}/proof", json=proof(last4, "123456"))
    await expect_error(resp, 409, "delivery.state")
    resp = await courier.post(f"{API}/deliveries/{delivery}/dispatch")
    assert resp.status == 200, await resp.text()
    code = code_of(sms[0], PHONE)
    body = proof(last4, code)
    resp = await courier.post(f"{API}/deliveries/{delivery}/proof", json=body)
    assert resp.status == 200, await resp.text()
    first = await resp.json()
    assert first["status"] == "delivered"
    # Posted again (the answer was lost on a weak network): the first's result, no duplicate.
    resp = await courier.post(f"{API}/deliveries/{delivery}/proof", json=body)
    assert resp.status == 200 and await resp.json() == first
    assert (await counts(settings))[1] == 1
    # Another proof with the used code is a replay.
    resp = await courier.post(f"{API}/deliveries/{delivery}/proof", json=proof(last4, code))
    await expect_error(resp, 409, "delivery.code_used")
    assert await timeline(settings, case_id) == [
        "deliveries.created",
        "deliveries.dispatched",
        "deliveries.delivered",
    ]
    assert sms[0].to(PHONE, "delivery.")[-1] == "delivery.delivered"
    # The full ID number is never stored with the proof.
    row = await sql(settings, "SELECT proxy_id_last4 FROM delivery_proof")
    assert row[0][0] == ""


async def test_proxy_signs_with_the_residents_code(
    client: Any, as_user: Any, settings: Settings, sms: Any
) -> None:
    operator = await as_user("operator")
    delivery, _, _ = await a_delivery(client, settings, operator, 904)
    courier = await as_user("courier")
    await courier.post(f"{API}/deliveries/{delivery}/dispatch")
    code = code_of(sms[0], PHONE)
    no_name = proof("1234", code, recipient="proxy")
    resp = await courier.post(f"{API}/deliveries/{delivery}/proof", json=no_name)
    await expect_error(resp, 422, "delivery.proxy")
    body = proof("123X", code, recipient="proxy", proxy_name="王芳", proxy_relation="女儿")
    resp = await courier.post(f"{API}/deliveries/{delivery}/proof", json=body)
    assert resp.status == 200, await resp.text()
    rows = await sql(
        settings, "SELECT recipient, proxy_name, proxy_id_last4, proxy_relation FROM delivery_proof"
    )
    assert tuple(rows[0]) == ("proxy", "王芳", "123X", "女儿")


async def test_three_wrong_last4_lock_and_tell_the_supervisor(
    client: Any, as_user: Any, sock: Any, settings: Settings, sms: Any
) -> None:
    operator = await as_user("operator")
    delivery, case_id, last4 = await a_delivery(client, settings, operator, 905)
    head = await sock("supervisor.t07")
    courier = await as_user("courier")
    await courier.post(f"{API}/deliveries/{delivery}/dispatch")
    code = code_of(sms[0], PHONE)
    wrong = "0000" if last4 != "0000" else "1111"
    for left in (2, 1):
        resp = await courier.post(f"{API}/deliveries/{delivery}/proof", json=proof(wrong, code))
        err = await expect_error(resp, 422, "delivery.last4")
        assert str(left) in err["message"]
    resp = await courier.post(f"{API}/deliveries/{delivery}/proof", json=proof(wrong, code))
    await expect_error(resp, 409, "delivery.locked")
    heard = await head.wait("delivery:locked")
    assert heard["delivery"]["id"] == delivery and heard["delivery"]["status"] == "locked"
    # Locked: even the right digits and code change nothing now.
    resp = await courier.post(f"{API}/deliveries/{delivery}/proof", json=proof(last4, code))
    await expect_error(resp, 409, "delivery.locked")
    assert (await counts(settings))[1] == 0
    supervisor = await as_user("supervisor.t07")
    locked = await (await supervisor.get(f"{API}/deliveries", params={"status": "locked"})).json()
    assert [d["id"] for d in locked] == [delivery]
    resp = await courier.post(f"{API}/deliveries/{delivery}/release")
    await expect_error(resp, 403, "forbidden_role")
    resp = await supervisor.post(f"{API}/deliveries/{delivery}/release")
    assert resp.status == 200 and (await resp.json())["status"] == "pending"
    # Out again: a new code; the old one no longer counts.
    await courier.post(f"{API}/deliveries/{delivery}/dispatch")
    fresh = code_of(sms[0], PHONE)
    if fresh != code:
        resp = await courier.post(f"{API}/deliveries/{delivery}/proof", json=proof(last4, code))
        await expect_error(resp, 422, "delivery.code")
    resp = await courier.post(f"{API}/deliveries/{delivery}/proof", json=proof(last4, fresh))
    assert resp.status == 200, await resp.text()
    assert "deliveries.locked" in await timeline(settings, case_id)


async def test_a_foreign_code_is_refused(
    client: Any, as_user: Any, settings: Settings, sms: Any
) -> None:
    operator = await as_user("operator")
    one, _, last4 = await a_delivery(client, settings, operator, 921, phone="13900139001")
    two, _, _ = await a_delivery(client, settings, operator, 923, phone="13900139002")
    courier = await as_user("courier")
    await courier.post(f"{API}/deliveries/{one}/dispatch")
    await courier.post(f"{API}/deliveries/{two}/dispatch")
    other = code_of(sms[0], "13900139002")
    own = code_of(sms[0], "13900139001")
    if other != own:
        resp = await courier.post(f"{API}/deliveries/{one}/proof", json=proof(last4, other))
        await expect_error(resp, 422, "delivery.code")
    assert (await counts(settings))[1] == 0
    rows = await sql(settings, "SELECT status FROM delivery WHERE id = :d", d=one)
    assert rows[0][0] == "dispatched"


async def test_bad_files_change_nothing(
    client: Any, as_user: Any, settings: Settings, sms: Any
) -> None:
    operator = await as_user("operator")
    delivery, _, last4 = await a_delivery(client, settings, operator, 908)
    courier = await as_user("courier")
    await courier.post(f"{API}/deliveries/{delivery}/dispatch")
    code = code_of(sms[0], PHONE)
    fake = base64.b64encode(b"\xff\xd8\xff" + b"not a picture" * 10).decode()
    resp = await courier.post(
        f"{API}/deliveries/{delivery}/proof", json=proof(last4, code, photo=fake)
    )
    await expect_error(resp, 422, "delivery.photo")
    resp = await courier.post(
        f"{API}/deliveries/{delivery}/proof", json=proof(last4, code, signature=picture())
    )
    await expect_error(resp, 422, "delivery.signature")
    resp = await courier.post(
        f"{API}/deliveries/{delivery}/proof", json=proof(last4, code[::-1] + "x")
    )
    await expect_error(resp, 422, "validation")
    rows = await sql(
        settings, "SELECT status, wrong_last4, wrong_codes FROM delivery WHERE id = :d", d=delivery
    )
    assert tuple(rows[0]) == ("dispatched", 0, 0)


async def test_failed_attempt_and_reattempt(
    client: Any, as_user: Any, settings: Settings, sms: Any
) -> None:
    operator = await as_user("operator")
    delivery, case_id, last4 = await a_delivery(client, settings, operator, 909)
    courier = await as_user("courier")
    resp = await courier.post(f"{API}/deliveries/{delivery}/fail", json={"reason": "not_home"})
    await expect_error(resp, 409, "delivery.state")  # not out yet
    await courier.post(f"{API}/deliveries/{delivery}/dispatch")
    code = code_of(sms[0], PHONE)
    resp = await courier.post(f"{API}/deliveries/{delivery}/fail", json={"reason": "sometime"})
    await expect_error(resp, 422, "validation")
    resp = await courier.post(
        f"{API}/deliveries/{delivery}/fail",
        json={"reason": "not_home", "note": "敲门无人应答", "lat": 30.8, "lng": 121.4},
    )
    assert resp.status == 200, await resp.text()
    d = await resp.json()
    tomorrow = (dt.date.fromisoformat(d["attempts"][0]["at"][:10]), d["day"])
    assert d["status"] == "pending" and d["attempt"] == 2
    assert d["attempts"][0]["reason"] == "not_home" and tomorrow[1] > tomorrow[0].isoformat()
    assert sms[0].to(PHONE, "delivery.")[-1] == "delivery.failed"
    # The re-attempt is for a later day: not out today, and the old code is void.
    resp = await courier.post(f"{API}/deliveries/{delivery}/dispatch")
    await expect_error(resp, 409, "delivery.not_today")
    resp = await courier.post(f"{API}/deliveries/{delivery}/proof", json=proof(last4, code))
    await expect_error(resp, 409, "delivery.state")
    day = await (await courier.get(f"{API}/courier/day")).json()
    assert delivery not in [s["delivery"]["id"] for s in day["stops"]]
    # The next day it is on the courier's list again, and goes out with a new code.
    await sql(settings, "UPDATE delivery SET day = :d WHERE id = :i", d=dt.date.today(), i=delivery)
    day = await (await courier.get(f"{API}/courier/day")).json()
    assert delivery in [s["delivery"]["id"] for s in day["stops"]]
    resp = await courier.post(f"{API}/deliveries/{delivery}/dispatch")
    assert resp.status == 200, await resp.text()
    resp = await courier.post(
        f"{API}/deliveries/{delivery}/proof", json=proof(last4, code_of(sms[0], PHONE))
    )
    assert resp.status == 200, await resp.text()
    assert await timeline(settings, case_id) == [
        "deliveries.created",
        "deliveries.dispatched",
        "deliveries.failed",
        "deliveries.dispatched",
        "deliveries.delivered",
    ]


async def test_scoping_and_the_audit_of_proof_views(
    client: Any, as_user: Any, settings: Settings, sms: Any
) -> None:
    operator = await as_user("operator")
    delivery, case_id, last4 = await a_delivery(client, settings, operator, 910)
    admin = await as_user("admin")
    resp = await admin.post(
        f"{API}/staff",
        json={
            "username": "courier.two",
            "display_name": "另一位速递员",
            "role": "courier",
            "password": "another-courier-pass",
            "site_codes": ["T07"],
        },
    )
    assert resp.status == 201, await resp.text()
    other = await as_user("courier.two", "another-courier-pass")
    day = await (await other.get(f"{API}/courier/day")).json()
    assert day["stops"] == []
    for path in ("dispatch", "proof", "fail"):
        body = {"proof": proof(last4, "123456"), "fail": {"reason": "refused"}}.get(path)
        resp = await other.post(f"{API}/deliveries/{delivery}/{path}", json=body)
        await expect_error(resp, 404, "not_found")
    courier = await as_user("courier")
    await courier.post(f"{API}/deliveries/{delivery}/dispatch")
    resp = await courier.post(
        f"{API}/deliveries/{delivery}/proof", json=proof(last4, code_of(sms[0], PHONE))
    )
    assert resp.status == 200, await resp.text()
    # A town's supervisor elsewhere does not see it; the resident's town's does, audited.
    far = await as_user("supervisor.t01")
    resp = await far.get(f"{API}/deliveries/{delivery}/proof")
    await expect_error(resp, 404, "not_found")
    near = await as_user("supervisor.t07")
    for _ in range(2):
        resp = await near.get(f"{API}/deliveries/{delivery}/proof")
        assert resp.status == 200, await resp.text()
    got = await resp.json()
    assert got["recipient"] == "resident" and got["case_id"] == case_id
    url = got["photo_url"]
    photo = await (near.http.get(url) if url.startswith("http") else near.get(url))
    assert photo.status == 200 and (await photo.read()).startswith(b"\xff\xd8\xff")
    views = await sql(
        settings,
        "SELECT actor_id FROM audit_log WHERE action = 'delivery.proof.view' AND target_id = :t",
        t=str(delivery),
    )
    assert len(views) == 2
    # The resident follows it on their own pages.
    assert re.fullmatch(r"[0-9X]{4}", last4)
