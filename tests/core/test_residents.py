"""Residents: ID numbers validated, stored encrypted, found by keyed hash, shown masked."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from sqlalchemy import text

from core.db import Database
from core.settings import Settings
from tests.factories import aged, id_number


async def _register(user: Any, number: str, **extra: Any) -> Any:
    return await user.post(
        "/api/v1/residents", json={"name": "王秀英", "id_number": number, **extra}
    )


async def test_register_shows_masked_number_and_derived_facts(as_user: Any) -> None:
    worker = await as_user("worker")
    number = id_number(dt.date(1942, 3, 5), 124, male=False)
    resp = await _register(worker, number, phone="138 0013 8000", disabled=False)
    assert resp.status == 201, await resp.text()
    body = await resp.json()
    assert body["id_masked"] == number[:4] + "*" * 10 + number[-4:]
    assert number not in await resp.text()
    assert body["birth_date"] == "1942-03-05"
    assert body["sex"] == "female"
    assert body["phone"] == "13800138000"
    assert body["elderly"] is True
    assert body["priority"] is True  # over 80


async def test_bad_id_number_says_what_is_wrong_and_saves_nothing(
    as_user: Any, settings: Settings
) -> None:
    worker = await as_user("worker")
    good = aged(70)
    wrong_check = good[:17] + ("0" if good[17] != "0" else "1")
    resp = await _register(worker, wrong_check)
    assert resp.status == 422
    err = (await resp.json())["error"]
    assert err["code"] == "id_number.checksum"
    assert good[17] in err["message"]  # names the right check character
    resp = await _register(worker, good[:10])
    assert (await resp.json())["error"]["code"] == "id_number.length"
    resp = await _register(worker, good, phone="12345")
    assert resp.status == 422
    assert (await resp.json())["error"]["code"] == "phone.invalid"
    assert await _count(settings, "resident") == 0


async def test_duplicate_registration_conflicts_without_naming_the_record(as_user: Any) -> None:
    worker = await as_user("worker")
    number = aged(65)
    assert (await _register(worker, number)).status == 201
    resp = await _register(worker, number.lower())
    assert resp.status == 409
    body = await resp.json()
    # The conflict does not name the record: no id anywhere in the error.
    assert set(body["error"]) == {"code", "message", "request_id"}


async def test_lookup_by_number_and_the_database_holds_no_plaintext(
    as_user: Any, settings: Settings
) -> None:
    worker = await as_user("worker")
    number = aged(82, 311)
    created = await (await _register(worker, number)).json()
    resp = await worker.post("/api/v1/residents/lookup", json={"id_number": number})
    assert (await resp.json())["id"] == created["id"]
    resp = await worker.post("/api/v1/residents/lookup", json={"id_number": aged(30, 555)})
    assert resp.status == 404
    db = Database(settings.effective_database_url)
    try:
        async with db.engine.connect() as conn:
            row = (await conn.execute(text("SELECT * FROM resident"))).one()
    finally:
        await db.dispose()
    assert number not in " ".join(str(v) for v in row)


async def test_reveal_full_number_is_audited_and_limited_to_clerks(as_user: Any) -> None:
    clerk = await as_user("clerk")
    worker = await as_user("worker")
    number = aged(75)
    created = await (await _register(clerk, number)).json()
    resp = await clerk.post(f"/api/v1/residents/{created['id']}/reveal")
    assert (await resp.json())["id_number"] == number
    resp = await worker.post(f"/api/v1/residents/{created['id']}/reveal")
    assert resp.status == 403
    admin = await as_user("admin")
    log = await (await admin.get("/api/v1/audit", params={"action": "resident.reveal_id"})).json()
    assert [e["target_id"] for e in log] == [str(created["id"])]
    assert log[0]["actor_id"] == clerk.me["id"]


async def test_resident_of_another_town_is_not_visible(as_user: Any) -> None:
    worker = await as_user("worker")  # 高桥镇 first community
    other = await as_user("worker.t01-c01")  # another town's point
    created = await (await _register(worker, aged(70))).json()
    assert (await worker.get(f"/api/v1/residents/{created['id']}")).status == 200
    resp = await other.get(f"/api/v1/residents/{created['id']}")
    assert resp.status == 404


async def test_live_id_check(as_user: Any) -> None:
    worker = await as_user("worker")
    number = id_number(dt.date(1990, 7, 1), 246, male=True)
    body = await (await worker.post("/api/v1/identity/check", json={"id_number": number})).json()
    assert body["valid"] is True
    assert body["birth_date"] == "1990-07-01"
    assert body["sex"] == "male"
    resp = await worker.post("/api/v1/identity/check", json={"id_number": "330299199007011"})
    assert (await resp.json())["error"]["code"] == "id_number.length"


async def _count(settings: Settings, table: str) -> int:
    db = Database(settings.effective_database_url)
    try:
        async with db.engine.connect() as conn:
            return int((await conn.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one())
    finally:
        await db.dispose()


async def test_a_lookup_answers_only_what_taking_a_number_needs(as_user: Any) -> None:
    """Another point's worker holding the card finds the resident, but not their address,
    birth date, full phone or disability."""
    clerk = await as_user("clerk")
    number = aged(82, 312)
    created = await (
        await _register(clerk, number, phone="13800138000", address="海川路1号", disabled=True)
    ).json()
    worker = await as_user("worker")
    resp = await worker.post("/api/v1/residents/lookup", json={"id_number": number})
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body == {
        "id": created["id"],
        "name": "王秀英",
        "id_masked": created["id_masked"],
        "age": 82,
        "phone_masked": "138****8000",
        "elderly": True,
        "priority": True,
    }
    assert "13800138000" not in await resp.text() and "海川路" not in await resp.text()


async def test_every_lookup_is_audited_and_limited_per_worker(
    aiohttp_client: Any, settings: Settings, as_user: Any
) -> None:
    from tests.conftest import User
    from web.app import create_app

    limited = settings.model_copy(update={"resident_lookups_per_hour": 3})
    client = await aiohttp_client(create_app(limited))
    import aiohttp

    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        worker = User(http, str(client.make_url("")).rstrip("/"))
        assert (await worker.login("worker")).status == 200
        known = aged(70, 313)
        assert (await _register(worker, known)).status == 201
        statuses = []
        for number in (known, aged(30, 556), aged(31, 557), known):
            resp = await worker.post("/api/v1/residents/lookup", json={"id_number": number})
            statuses.append(resp.status)
        assert statuses == [200, 404, 404, 429]
        admin = User(http, worker.base)
        assert (await admin.login("admin")).status == 200
        hits = await (await admin.get("/api/v1/audit", params={"action": "resident.lookup"})).json()
        misses = await (
            await admin.get("/api/v1/audit", params={"action": "resident.lookup_miss"})
        ).json()
    assert len(hits) == 1 and len(misses) == 2
    assert all(aged(30, 556) not in json.dumps(m) for m in misses)  # only the masked number
    assert {m["detail"]["id_masked"][-4:] for m in misses} == {
        aged(30, 556)[-4:],
        aged(31, 557)[-4:],
    }
