"""Socket connects checked in batches: the session rules of HTTP, presence on every node."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from typing import Any

import aiohttp
from sqlalchemy import update
from sqlmodel import select

from core.db import Database, utcnow
from core.models import Staff, StaffSession
from core.settings import Settings
from signaling.models import Presence


async def try_connect(base: str, cookie: str) -> tuple[bool, Any]:
    """(connected, refusal data) over a raw websocket."""
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(
            f"{base}/socket.io/?EIO=4&transport=websocket", headers={"Cookie": cookie}
        )
        first = await ws.receive()
        assert first.data.startswith("0")
        await ws.send_str("40")
        while True:
            msg = await ws.receive(timeout=10)
            if msg.data == "2":
                await ws.send_str("3")
                continue
            break
        await ws.close()
    if msg.data.startswith("40"):
        return True, None
    assert msg.data.startswith("44"), msg.data
    return False, json.loads(msg.data[2:])


def cookie_for(user: Any) -> str:
    jar = user.http.cookie_jar.filter_cookies(user.base)
    return "; ".join(f"{k}={v.value}" for k, v in jar.items())


async def session_row(db: Database, staff_username: str) -> StaffSession:
    async with db.session() as s:
        staff = (await s.exec(select(Staff).where(Staff.username == staff_username))).one()
        return (await s.exec(select(StaffSession).where(StaffSession.staff_id == staff.id))).one()


async def test_socket_connects_keep_the_session_rules_one_by_one_and_in_batches(
    as_user: Any, client: Any, settings: Settings
) -> None:
    base = str(client.make_url("")).rstrip("/")
    db = Database(settings.effective_database_url)
    try:
        # a valid one connects, and a stale last_seen_at is touched
        worker = await as_user("worker")
        row = await session_row(db, "worker")
        old = utcnow() - dt.timedelta(minutes=5)
        async with db.session() as s:
            await s.exec(
                update(StaffSession)
                .where(StaffSession.token_hash == row.token_hash)
                .values(last_seen_at=old)
            )
            await s.commit()
        ok, _ = await try_connect(base, cookie_for(worker))
        assert ok
        row2 = await session_row(db, "worker")
        assert row2.last_seen_at > old + dt.timedelta(minutes=4), row2.last_seen_at
        # recent: not touched again
        ok, _ = await try_connect(base, cookie_for(worker))
        assert ok
        assert (await session_row(db, "worker")).last_seen_at == row2.last_seen_at

        # expired: refused session_expired and deleted
        clerk = await as_user("clerk")
        crow = await session_row(db, "clerk")
        async with db.session() as s:
            await s.exec(
                update(StaffSession)
                .where(StaffSession.token_hash == crow.token_hash)
                .values(expires_at=utcnow() - dt.timedelta(seconds=1))
            )
            await s.commit()
        ok, data = await try_connect(base, cookie_for(clerk))
        assert not ok and data["data"]["code"] == "session_expired", data
        async with db.session() as s:
            assert await s.get(StaffSession, crow.token_hash) is None

        # idle too long: session_expired
        sup = await as_user("supervisor")
        srow = await session_row(db, "supervisor")
        async with db.session() as s:
            await s.exec(
                update(StaffSession)
                .where(StaffSession.token_hash == srow.token_hash)
                .values(
                    last_seen_at=utcnow()
                    - dt.timedelta(seconds=settings.session_idle_seconds + 120)
                )
            )
            await s.commit()
        ok, data = await try_connect(base, cookie_for(sup))
        assert not ok and data["data"]["code"] == "session_expired", data

        # deactivated staff: unauthenticated
        admin = await as_user("admin")
        arow = await session_row(db, "admin")
        async with db.session() as s:
            await s.exec(update(Staff).where(Staff.id == arow.staff_id).values(active=False))
            await s.commit()
        ok, data = await try_connect(base, cookie_for(admin))
        assert not ok and data["data"]["code"] == "unauthenticated", data
        async with db.session() as s:
            await s.exec(update(Staff).where(Staff.id == arow.staff_id).values(active=True))
            await s.commit()

        # junk, too long, empty
        for c in ("cw_session=nope", "cw_session=" + "x" * 300, "cw_session=", "other=1"):
            ok, data = await try_connect(base, c)
            assert not ok and data["data"]["code"] == "unauthenticated", (c, data)

        # many at once, mixed, duplicates: each gets its own answer
        clerk2 = await as_user("clerk")
        good = cookie_for(worker)
        cookies = [good, "cw_session=bad1", cookie_for(clerk2), good, "cw_session=bad2"] * 12
        results = await asyncio.gather(*(try_connect(base, c) for c in cookies))
        for c, (ok, data) in zip(cookies, results, strict=True):
            assert ok == ("bad" not in c), (c, data)

        # presence: the clerk is available on this node, and on another node too
        crow2 = await session_row(db, "clerk")
        async with db.session() as s:
            s.add(
                Presence(
                    staff_id=crow2.staff_id,
                    node_id="other-node",
                    status="away",
                    updated_at=utcnow(),
                )
            )
            await s.commit()
        ok, _ = await try_connect(base, cookie_for(clerk2))
        assert ok
        async with db.session() as s:
            rows = (await s.exec(select(Presence).where(Presence.staff_id == crow2.staff_id))).all()
            # (This node's own row may already be gone: the test's socket closed at once.)
            assert {r.node_id: r.status for r in rows}["other-node"] == "available", rows
        # presence:set: this node and the other one
        async with aiohttp.ClientSession() as http:
            ws = await http.ws_connect(
                f"{base}/socket.io/?EIO=4&transport=websocket",
                headers={"Cookie": cookie_for(clerk2)},
            )
            await ws.receive()
            await ws.send_str("40")
            assert (await ws.receive()).data.startswith("40")
            await ws.send_str('421["presence:set",{"status":"away"}]')
            while True:
                m = (await ws.receive(timeout=10)).data
                if m.startswith("431"):
                    assert json.loads(m[3:])[0]["ok"], m
                    break
            await ws.close()
        async with db.session() as s:
            rows = (await s.exec(select(Presence).where(Presence.staff_id == crow2.staff_id))).all()
            assert {r.status for r in rows} == {"away"}, rows
    finally:
        await db.dispose()
