"""A real `cloudwindow serve` process: what it writes to its log, and how it stops."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import User
from tests.signaling.helpers import RawSocket, Sock, cookie_of, gaoqiao_setup, take_payload
from tests.signaling.nodes import Node, server_env


@pytest.fixture
def solo_db(templates: Any) -> Iterator[str]:
    url = templates.clone("sqlite", templates.get("sqlite", "demo"))
    yield url
    templates.drop("sqlite", url)


@pytest.fixture
async def solo(solo_db: str, tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Node]:
    """One node on a demo SQLite database; its log is checked for tracebacks when it stops.

    Settings of the node come from the test's `settings` marker, if any.
    """
    marker = request.node.get_closest_marker("settings")
    extra = marker.kwargs if marker else {}
    node = Node("solo", server_env(tmp_path / "data", database_url=solo_db, **extra), tmp_path)
    node.start()
    try:
        await node.ready()
        yield node
    finally:
        node.stop(check=False)
    node.assert_no_tracebacks()


async def login(base: str, username: str, opened: list[aiohttp.ClientSession]) -> User:
    http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    opened.append(http)
    user = User(http, base)
    resp = await user.login(username)
    assert resp.status == 200, await resp.text()
    return user


def test_a_traceback_in_a_node_log_fails_the_test(tmp_path: Path) -> None:
    node = Node("n", {}, tmp_path)
    node.log.write_text("2026-12-01 INFO started\n")
    node.assert_no_tracebacks()
    for line in (
        "Traceback (most recent call last):\n  File ...\nRuntimeError: boom\n",
        '{"level": "ERROR", "msg": "failed", "exc": "Traceback ..."}\n',
    ):
        node.log.write_text("2026-12-01 INFO started\n" + line)
        with pytest.raises(AssertionError, match="traceback"):
            node.assert_no_tracebacks()
    node.killed = True  # a node killed on purpose is not held to it
    node.assert_no_tracebacks()


async def test_hostile_frames_write_no_traceback_in_the_server_log(solo: Node) -> None:
    """Deep nesting, junk frames and reserved names, before and after login."""
    deep = "[" * 970 + "]" * 970
    binary = '451-["state:sync",{"_placeholder":true,"num":0}]'
    for frame in ("42" + deep, "40" + deep, "4" + deep, "4x", "49[]", '44{"message":"x"}', binary):
        raw = await RawSocket(solo.base).open()
        try:
            await raw.send(frame)
            await raw.send("40")
            assert (await raw.frame()).startswith("44")  # refused: not logged in
        finally:
            await raw.close()
    opened: list[aiohttp.ClientSession] = []
    try:
        clerk = await login(solo.base, "clerk", opened)
        raw = await RawSocket(solo.base, cookie_of(clerk)).connect()
        try:
            for args in (("connect", "junk"), ("disconnect",), ("*",)):
                ack = await raw.call(*args)
                assert ack["error"]["code"] == "socket.unknown_event"
            await raw.send('42["state:sync",' + deep + "]")
            # A binary event whose placeholder names an attachment that never comes.
            await raw.send('451-["state:sync",{"_placeholder":true,"num":3}]')
            await raw.ws.send_bytes(b"\x00")  # type: ignore[union-attr]
            await raw.send('451-/other,["state:sync",{"_placeholder":true,"num":0}]')
            assert (await raw.call("state:sync", {}))["ok"]
        finally:
            await raw.close()
    finally:
        for h in opened:
            await h.close()


@pytest.mark.settings(shutdown_drain_seconds="2")
async def test_sigterm_after_a_run_with_clients_stops_within_the_drain_bound(solo: Node) -> None:
    opened: list[aiohttp.ClientSession] = []
    socks: list[Sock] = []
    try:
        worker = await Sock(await login(solo.base, "worker", opened)).connect()
        clerk = await Sock(await login(solo.base, "clerk", opened)).connect()
        socks += [worker, clerk]
        for _ in range(3):
            socks.append(await Sock(await login(solo.base, "clerk.t07.r", opened)).connect())
        setup = await gaoqiao_setup(worker.user)
        ticket = await worker.ok("ticket:take", take_payload(setup, None))
        call = (await clerk.ok("queue:call_next"))["call"]
        await worker.ok("ticket:answer", {"ticket_id": ticket["id"]})
        await clerk.ok("call:stats", {"call_id": call["call_id"], "rtt_ms": 12})
        assert solo.proc is not None
        loop = asyncio.get_running_loop()
        start = loop.time()
        solo.proc.terminate()
        await asyncio.to_thread(solo.proc.wait, 60)
        took = loop.time() - start
        # Within the bound (2 s here), plus well under a second to close the rest.
        assert took < 2 + 1.5, f"SIGTERM took {took:.1f} s"
        for s in socks:
            assert s.heard["server:draining"], s.user.me["username"]
            assert not s.client.connected
    finally:
        for s in socks:
            await s.close()
        for h in opened:
            await h.close()
