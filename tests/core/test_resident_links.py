"""SMS sign-in links: they open one page once, after the code; anything else changes nothing."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
from typing import Any

import pytest
from sqlalchemy import text
from sqlmodel import select

from core.db import Database, utcnow
from core.models import ResidentLink
from core.resident_links import issue_link
from core.settings import Settings
from tests.conftest import User
from tests.factories import aged
from tests.signaling.helpers import gaoqiao_setup
from tests.signaling.test_self_service import PHONE, sms_codes

PAGE = "/resident/cases/7"


async def register(as_user: Any, years: int = 72) -> int:
    worker = await as_user("worker")
    setup = await gaoqiao_setup(worker)
    resp = await worker.post(
        "/api/v1/residents",
        json={
            "name": "陈阿婆",
            "id_number": aged(years, 411),
            "phone": PHONE,
            "community_id": setup["point"]["id"],
        },
    )
    assert resp.status == 201, await resp.text()
    return (await resp.json())["id"]


async def link_for(settings: Settings, resident_id: int, path: str = PAGE) -> str:
    db = Database(settings.effective_database_url)
    try:
        async with db.session() as session:
            url = await issue_link(session, resident_id=resident_id, path=path, settings=settings)
            await session.commit()
    finally:
        await db.dispose()
    assert url.startswith("/resident/l/")
    return url.removeprefix("/resident/l/")


async def rows(settings: Settings, sql: str) -> list[tuple[Any, ...]]:
    db = Database(settings.effective_database_url)
    try:
        async with db.engine.begin() as conn:
            return [tuple(r) for r in await conn.execute(text(sql))]
    finally:
        await db.dispose()


async def state(settings: Settings) -> list[list[tuple[Any, ...]]]:
    """Everything a refused link must leave as it was."""
    return [
        await rows(settings, "SELECT id, used_at, expires_at FROM resident_link ORDER BY id"),
        await rows(settings, "SELECT id, attempts, used_at FROM resident_login_code ORDER BY id"),
        await rows(settings, "SELECT count(*) FROM resident_session"),
        await rows(settings, "SELECT count(*) FROM sms_message"),
    ]


async def code_for(settings: Settings) -> str:
    return (await sms_codes(settings, PHONE))[-1]


async def error(resp: Any, status: int) -> str:
    assert resp.status == status, await resp.text()
    return (await resp.json())["error"]["code"]


async def test_a_link_signs_in_with_its_code_and_leads_to_its_page(
    as_user: Any, settings: Settings
) -> None:
    rid = await register(as_user)
    token = await link_for(settings, rid)
    phone: User = await as_user()

    # Opening the page only says where it leads and where the code goes.
    resp = await phone.post("/api/v1/resident-auth/link", json={"token": token})
    assert resp.status == 200, await resp.text()
    seen = await resp.json()
    assert (seen["path"], seen["phone_masked"]) == (PAGE, "139****9000")
    assert await sms_codes(settings, PHONE) == []

    resp = await phone.post("/api/v1/resident-auth/link/code", json={"token": token})
    assert resp.status == 202, await resp.text()
    code = await code_for(settings)
    resp = await phone.post("/api/v1/resident-auth/link/login", json={"token": token, "code": code})
    assert resp.status == 200, await resp.text()
    me = await resp.json()
    assert (me["resident_id"], me["path"], me["elderly"], me["age"]) == (rid, PAGE, True, 72)
    phone.csrf = me["csrf_token"]
    assert (await phone.get("/api/v1/resident-auth/me")).status == 200
    via = await rows(settings, "SELECT detail FROM audit_log WHERE action = 'resident.login'")
    assert len(via) == 1 and "sms_link" in str(via[0][0])


async def test_a_used_link_cannot_be_replayed(as_user: Any, settings: Settings) -> None:
    rid = await register(as_user)
    token = await link_for(settings, rid)
    first: User = await as_user()
    resp = await first.post("/api/v1/resident-auth/link/code", json={"token": token})
    assert resp.status == 202
    code = await code_for(settings)
    body = {"token": token, "code": code}
    assert (await first.post("/api/v1/resident-auth/link/login", json=body)).status == 200

    # Someone who saw the SMS later, with the same link and even the same code: refused.
    later: User = await as_user()
    before = await state(settings)
    for path, payload in (
        ("/api/v1/resident-auth/link", {"token": token}),
        ("/api/v1/resident-auth/link/code", {"token": token}),
        ("/api/v1/resident-auth/link/login", body),
    ):
        resp = await later.post(path, json=payload)
        assert await error(resp, 410) == "resident_link.used"
        assert "只能用一次" in (await resp.json())["error"]["message"]
    assert await state(settings) == before
    assert (await later.get("/api/v1/resident-auth/me")).status == 401


async def test_an_expired_link_is_refused_and_changes_nothing(
    as_user: Any, settings: Settings
) -> None:
    rid = await register(as_user)
    token = await link_for(settings, rid)
    # The clock we can set: the link's own expiry, moved to a minute ago.
    db = Database(settings.effective_database_url)
    try:
        async with db.session() as session:
            link = (await session.exec(select(ResidentLink))).one()
            link.expires_at = utcnow() - dt.timedelta(minutes=1)
            session.add(link)
            await session.commit()
    finally:
        await db.dispose()
    phone: User = await as_user()
    before = await state(settings)
    for path in ("/api/v1/resident-auth/link", "/api/v1/resident-auth/link/code"):
        resp = await phone.post(path, json={"token": token})
        assert await error(resp, 410) == "resident_link.expired"
    resp = await phone.post(
        "/api/v1/resident-auth/link/login", json={"token": token, "code": "123456"}
    )
    assert await error(resp, 410) == "resident_link.expired"
    assert await state(settings) == before


async def test_forged_links_are_refused_and_change_nothing(
    as_user: Any, settings: Settings
) -> None:
    rid = await register(as_user)
    token = await link_for(settings, rid)
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    flipped_sig = base64.urlsafe_b64encode(raw[:-1] + bytes([raw[-1] ^ 1])).decode().rstrip("=")
    flipped_nonce = base64.urlsafe_b64encode(bytes([raw[0] ^ 1]) + raw[1:]).decode().rstrip("=")
    # Signed correctly, but under another deployment's key.
    other = settings.model_copy(update={"secret_key": "another-deployment-secret"})
    foreign = await link_for(other, rid)
    forged = [flipped_sig, flipped_nonce, foreign, token[:-3], token + "AAAA", "abc", "长长的"]
    phone: User = await as_user()
    before = await state(settings)
    for bad in forged:
        for path in ("/api/v1/resident-auth/link", "/api/v1/resident-auth/link/code"):
            resp = await phone.post(path, json={"token": bad})
            assert await error(resp, 400) == "resident_link.invalid", bad
        resp = await phone.post(
            "/api/v1/resident-auth/link/login", json={"token": bad, "code": "123456"}
        )
        assert await error(resp, 400) == "resident_link.invalid", bad
    assert await state(settings) == before
    # The real link still works after all that.
    assert (await phone.post("/api/v1/resident-auth/link", json={"token": token})).status == 200


async def test_the_code_limits_hold_through_a_link(as_user: Any, settings: Settings) -> None:
    rid = await register(as_user)
    token = await link_for(settings, rid)
    phone: User = await as_user()
    resp = await phone.post("/api/v1/resident-auth/link/code", json={"token": token})
    assert resp.status == 202
    code = await code_for(settings)
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    for _ in range(5):
        resp = await phone.post(
            "/api/v1/resident-auth/link/login", json={"token": token, "code": wrong}
        )
        assert await error(resp, 401) == "bad_credentials"
    # Five wrong guesses void the code, and the link is still unused: a new code works.
    resp = await phone.post("/api/v1/resident-auth/link/login", json={"token": token, "code": code})
    assert await error(resp, 401) == "bad_credentials"
    assert await rows(settings, "SELECT used_at FROM resident_link") == [(None,)]
    for _ in range(4):
        resp = await phone.post("/api/v1/resident-auth/link/code", json={"token": token})
        assert resp.status == 202
    # Five codes an hour, whichever way they are asked for.
    resp = await phone.post("/api/v1/resident-auth/link/code", json={"token": token})
    assert await error(resp, 429) == "rate_limited"
    code = await code_for(settings)
    resp = await phone.post("/api/v1/resident-auth/link/login", json={"token": token, "code": code})
    assert resp.status == 200, await resp.text()


async def test_two_logins_racing_on_one_link_let_one_in(as_user: Any, settings: Settings) -> None:
    rid = await register(as_user)
    token = await link_for(settings, rid)
    a: User = await as_user()
    b: User = await as_user()
    assert (await a.post("/api/v1/resident-auth/link/code", json={"token": token})).status == 202
    body = {"token": token, "code": await code_for(settings)}
    results = await asyncio.gather(
        a.post("/api/v1/resident-auth/link/login", json=body),
        b.post("/api/v1/resident-auth/link/login", json=body),
    )
    assert sorted(r.status for r in results) in ([200, 401], [200, 410])
    assert await rows(settings, "SELECT count(*) FROM resident_session") == [(1,)]


async def test_a_link_only_ever_leads_to_a_resident_page(as_user: Any, settings: Settings) -> None:
    rid = await register(as_user)
    for path in (
        "https://example.invalid/resident",
        "//example.invalid/resident",
        "/staff",
        "/resident/l/abc",
        "/resident/../login",
        "/resident/./cases",
        "/resident/cases/<script>",
        "/resident/" + "a" * 200,
    ):
        with pytest.raises(ValueError):
            await link_for(settings, rid, path)
    assert await rows(settings, "SELECT count(*) FROM resident_link") == [(0,)]


async def test_links_start_with_the_public_address_when_set(
    as_user: Any, settings: Settings
) -> None:
    resident = await register(as_user)
    public = settings.model_copy(update={"public_url": "https://cw.example.test/hc/"})
    db = Database(settings.effective_database_url)
    try:
        async with db.session() as session:
            url = await issue_link(session, resident_id=resident, path=PAGE, settings=public)
            await session.commit()
    finally:
        await db.dispose()
    assert url.startswith("https://cw.example.test/hc/resident/l/")
    token = url.rsplit("/", 1)[1]
    resp = await (await as_user()).post("/api/v1/resident-auth/link", json={"token": token})
    assert resp.status == 200, await resp.text()
