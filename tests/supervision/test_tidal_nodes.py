"""Tidal windows on two server processes sharing PostgreSQL and Redis: a move applied on one
node reaches the clerk's console on the other, which follows the new line and serves it with
no reconnect, and the move ends at its time once, by whichever node's sweep gets there first."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from core.db import utcnow
from tests.conftest import User, base_settings
from tests.signaling.helpers import Sock
from tests.signaling.nodes import Node, cluster_env
from tests.supervision.test_tidal import MOVER, TARGET, line_id, short_town, sql


@pytest.fixture
async def cluster(
    pg_demo_url: str, redis_url: str, tmp_path: Path
) -> AsyncIterator[tuple[Node, Node]]:
    # Each node sweeps the tidal moves every second, so a move that is due ends soon.
    env = cluster_env(pg_demo_url, redis_url, tmp_path, tidal_sweep_interval_seconds="1")
    nodes = (Node("node-a", env, tmp_path), Node("node-b", env, tmp_path))
    for n in nodes:
        n.start()
    try:
        # Generous: two nodes starting on a loaded 2-CPU machine (readiness, not speed).
        await asyncio.gather(*(n.ready(within=120) for n in nodes))
        yield nodes
    finally:
        for n in nodes:
            n.stop(check=False)
    for n in nodes:
        n.assert_no_tracebacks()


async def _user(base: str, username: str, opened: list[aiohttp.ClientSession]) -> User:
    http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    opened.append(http)
    user = User(http, base)
    resp = await user.login(username)
    assert resp.status == 200, await resp.text()
    return user


async def test_a_move_applied_on_one_node_is_served_on_the_other_and_ends_once(
    cluster: tuple[Node, Node], pg_demo_url: str, tmp_path: Path
) -> None:
    node_a, node_b = cluster
    settings = base_settings(pg_demo_url, tmp_path / "data")
    waiting = await short_town(settings)
    target = await line_id(pg_demo_url, TARGET)
    opened: list[aiohttp.ClientSession] = []
    socks: list[Sock] = []
    try:
        mover = await Sock(await _user(node_b.base, MOVER, opened)).connect()
        socks.append(mover)
        await mover.ok("state:sync")
        assert (await mover.ok("queue:call_next"))["ticket"] is None
        head = await _user(node_a.base, "supervisor.t07", opened)
        [s] = (await (await head.get("/api/v1/tidal")).json())["suggestions"]
        body = {k: s[k] for k in ("staff_id", "from_line_id", "to_line_id", "until")}
        resp = await head.post("/api/v1/tidal/moves", json=body)
        assert resp.status == 201, await resp.text()
        move: dict[str, Any] = await resp.json()

        # Node B's clerk hears of it through Redis and syncs, as the console does; with no
        # reconnect their socket follows 户籍 and call next serves it.
        assert (await mover.wait("tidal:changed", within=30))["move"]["id"] == move["id"]
        synced = await mover.ok("state:sync")
        assert target in {ln["line_id"] for ln in synced["lines"]}
        called = await mover.ok("queue:call_next")
        assert called["ticket"]["id"] == waiting[0]
        await mover.ok(
            "ticket:finish",
            {"ticket_id": called["ticket"]["id"], "outcome": "returned", "reason": "测试"},
        )

        # Its time comes (the clock is the row's): both nodes' sweeps race, one ends it.
        past = utcnow() - dt.timedelta(seconds=1)
        await sql(pg_demo_url, "UPDATE tidal_move SET until = :t", t=past)
        ended = await mover.wait(
            "tidal:changed", lambda d: d["move"]["status"] == "ended", within=30
        )
        assert ended["move"]["end_reason"] == "expired"
        rows = await sql(pg_demo_url, "SELECT ended_by_node FROM tidal_move")
        assert [r[0] for r in rows] in (["node-a"], ["node-b"])
        log = "SELECT count(*) FROM audit_log WHERE action = 'tidal.expire'"
        assert (await sql(pg_demo_url, log))[0][0] == 1
        # Back on their own line only: 户籍's second ticket is not theirs to call.
        synced = await mover.ok("state:sync")
        assert target not in {ln["line_id"] for ln in synced["lines"]}
        assert (await mover.ok("queue:call_next"))["ticket"] is None
        assert len(mover.heard["tidal:changed"]) == 2
    finally:
        for sk in socks:
            await sk.close()
        for h in opened:
            await h.close()
