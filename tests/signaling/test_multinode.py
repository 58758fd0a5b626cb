"""Two server processes on PostgreSQL and Redis behave as one cloud window."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlmodel import col, select

from core.db import Database
from core.models import Call, CallStatus
from signaling.models import Presence, Ticket, TicketStatus
from tests.conftest import User
from tests.signaling.helpers import Sock, fill_queue, gaoqiao_setup, new_resident, take_payload
from tests.signaling.nodes import Node, cluster_env
from tests.signaling.test_media import DESK_COLOUR, POINT_COLOUR, Peer, assert_sees
from tests.uploads.helpers import complete_materials

CLERKS = 50
TICKETS = 1000


@pytest.fixture
async def cluster(
    pg_demo_url: str, redis_url: str, tmp_path: Path
) -> AsyncIterator[tuple[Node, Node]]:
    env = cluster_env(pg_demo_url, redis_url, tmp_path)
    nodes = (Node("node-a", env, tmp_path), Node("node-b", env, tmp_path))
    for n in nodes:
        n.start()
    try:
        await asyncio.gather(*(n.ready() for n in nodes))
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


async def test_call_between_peers_on_different_nodes(cluster: tuple[Node, Node]) -> None:
    node_a, node_b = cluster
    opened: list[aiohttp.ClientSession] = []
    socks: list[Sock] = []
    point = desk = None
    try:
        worker = await Sock(await _user(node_a.base, "worker", opened)).connect()
        clerk = await Sock(await _user(node_b.base, "clerk", opened)).connect()
        socks += [worker, clerk]
        setup = await gaoqiao_setup(worker.user)
        ticket = await worker.ok(
            "ticket:take", take_payload(setup, await new_resident(worker.user))
        )
        # The clerk on node B sees the waiting ticket taken on node A.
        status = await clerk.wait("line:status", lambda d: d["waiting"] >= 1)
        assert status["line_id"] == setup["line"]["id"]
        called = await clerk.ok("queue:call_next")
        assert called["ticket"]["id"] == ticket["id"]
        call = called["call"]
        await worker.wait("ticket:called")  # crossed from node B to node A through Redis
        await worker.ok("ticket:answer", {"ticket_id": ticket["id"]})
        point = Peer(worker, call["call_id"], POINT_COLOUR)
        desk = Peer(clerk, call["call_id"], DESK_COLOUR)
        await asyncio.gather(point.offer_to(call["participant_id"]), desk.answer_offer())
        await point.take_answer()
        point_sees, desk_sees = await asyncio.gather(point.frames(), desk.frames())
        assert_sees(point_sees, DESK_COLOUR, "the point on node A")
        assert_sees(desk_sees, POINT_COLOUR, "the clerk on node B")
        # Each document uploaded on node A reaches the clerk's checklist on node B.
        done = await complete_materials(worker.user, clerk.user, ticket["case_id"])
        assert len(done) == 3
        for m in done:
            heard = await clerk.wait(
                "material:uploaded", lambda d, mid=m["id"]: d["material"]["id"] == mid
            )
            assert heard["case_id"] == ticket["case_id"]
        await clerk.ok("ticket:finish", {"ticket_id": ticket["id"], "outcome": "completed"})
        assert (await worker.wait("case:finished"))["outcome"] == "completed"
    finally:
        for p in (point, desk):
            if p is not None:
                await p.pc.close()
        for s in socks:
            await s.close()
        for h in opened:
            await h.close()


async def test_fifty_clerks_on_two_nodes_never_share_or_lose_a_ticket(
    cluster: tuple[Node, Node], pg_demo_url: str
) -> None:
    names, waiting = await fill_queue(pg_demo_url, clerks=CLERKS, tickets=TICKETS, prefix="race")
    assert len(waiting) == TICKETS
    opened: list[aiohttp.ClientSession] = []
    socks: list[Sock] = []
    got: dict[str, list[int]] = {}
    try:
        users = await asyncio.gather(
            *(_user(cluster[i % 2].base, n, opened) for i, n in enumerate(names))
        )
        socks = list(await asyncio.gather(*(Sock(u).connect() for u in users)))

        # 50 clerks keep both nodes' CPUs saturated; on a loaded machine one ack can take
        # longer than a person would wait. This test is about who gets which ticket, so
        # an ack may take up to a minute; speed is bench/signaling.py's business.
        ack_within = 60

        async def serve(sock: Sock) -> None:
            mine = got.setdefault(sock.user.me["username"], [])
            while True:
                data = await sock.ok("queue:call_next", within=ack_within)
                if data["ticket"] is None:
                    return
                mine.append(data["ticket"]["id"])
                await sock.ok(
                    "ticket:finish",
                    {"ticket_id": data["ticket"]["id"], "outcome": "returned", "reason": "压测"},
                    within=ack_within,
                )

        await asyncio.wait_for(asyncio.gather(*(serve(s) for s in socks)), 240)
    finally:
        for s in socks:
            await s.close()
        for h in opened:
            await h.close()
    assigned = [t for ids in got.values() for t in ids]
    assert len(assigned) == len(set(assigned)), "a ticket went to two clerks"
    assert set(assigned) == waiting, "a ticket was lost"
    assert sum(1 for ids in got.values() if ids) > CLERKS // 2  # the work really was shared
    db = Database(pg_demo_url)
    try:
        async with db.session() as s:
            left = (
                await s.exec(
                    select(Ticket.id).where(
                        col(Ticket.id).in_(waiting), Ticket.status != TicketStatus.done
                    )
                )
            ).all()
    finally:
        await db.dispose()
    assert list(left) == []


@pytest.fixture
async def short_leases(
    pg_demo_url: str, redis_url: str, tmp_path: Path
) -> AsyncIterator[tuple[Node, Node]]:
    """Two nodes whose leases expire 5 s after their last renewal, with a 2 s rejoin grace."""
    env = cluster_env(
        pg_demo_url,
        redis_url,
        tmp_path,
        presence_ttl_seconds="5",
        call_rejoin_grace_seconds="2",
        sweep_interval_seconds="0.5",
    )
    nodes = (Node("node-a", env, tmp_path), Node("node-b", env, tmp_path))
    for n in nodes:
        n.start()
    try:
        await asyncio.gather(*(n.ready() for n in nodes))
        yield nodes
    finally:
        for n in nodes:
            n.stop(check=False)
    for n in nodes:
        n.assert_no_tracebacks()


async def test_a_killed_node_s_participants_leave_through_the_grace_once(
    short_leases: tuple[Node, Node], pg_demo_url: str
) -> None:
    """The point's node dies and the point never comes back: the clerk is told as on a drop,
    then as on a leave, once each; the clerk's line no longer counts a dead node's clerk."""
    node_a, node_b = short_leases
    opened: list[aiohttp.ClientSession] = []
    socks: list[Sock] = []
    try:
        worker = await Sock(await _user(node_a.base, "worker", opened)).connect()
        expert_like = await Sock(await _user(node_a.base, "clerk.t07.r", opened)).connect()
        clerk = await Sock(await _user(node_b.base, "clerk", opened)).connect()
        socks += [worker, expert_like, clerk]
        setup = await gaoqiao_setup(worker.user)
        ticket = await worker.ok("ticket:take", take_payload(setup, None))
        call = (await clerk.ok("queue:call_next"))["call"]
        point = (await worker.ok("ticket:answer", {"ticket_id": ticket["id"]}))["call"]
        await clerk.wait("call:participant_joined")
        node_a.kill()

        def about_point(d: dict[str, Any]) -> bool:
            return bool(d["participant_id"] == point["participant_id"])

        dropped = await clerk.wait(
            "call:participant_left", lambda d: about_point(d) and d["reconnecting"], within=30
        )
        assert dropped["call_id"] == call["call_id"]
        await clerk.wait(
            "call:participant_left", lambda d: about_point(d) and not d["reconnecting"], within=30
        )
        # Once each: nothing more about the point arrives.
        await clerk.ok("state:sync")
        heard = [d for d in clerk.heard["call:participant_left"] if about_point(d)]
        assert [d["reconnecting"] for d in heard] == [True, False]
        # The clerk leaves too: the call ends, as any call whose participants all left.
        await clerk.ok("call:leave", {"call_id": call["call_id"]})
    finally:
        for s in socks:
            await s.close()
        for h in opened:
            await h.close()
    db = Database(pg_demo_url)
    try:
        async with db.session() as s:
            row = await s.get(Call, call["call_id"])
            assert row is not None and row.status == CallStatus.ended
            presence = (await s.exec(select(Presence).where(Presence.node_id == "node-a"))).all()
            assert list(presence) == []  # the dead node's clerk is not counted online
    finally:
        await db.dispose()
