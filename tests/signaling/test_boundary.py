"""The socket's boundary: what a raw client can send before and after logging in.

Control characters, ids past 32 bits, reserved event names, deep nesting, floods and refused
connections each get a documented answer; nothing is stored and no traceback is written.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
import socketio

from core.settings import Settings
from signaling import calls
from signaling.views import SIGNALING
from tests.conftest import User
from tests.signaling.helpers import RawSocket, Sock, cookie_of, gaoqiao_setup, take_payload
from tests.signaling.test_bad_input import db_state, quiet


def tracebacks(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Log records that carry a traceback or report an error."""
    return [
        f"{r.name}: {r.getMessage()}"
        for r in caplog.records
        if r.exc_info or r.levelno >= logging.ERROR
    ]


async def in_call(sock: Any) -> dict[str, Any]:
    """A worker and a clerk in a call on 高桥镇·民政."""
    worker = await sock("worker")
    clerk = await sock("clerk")
    setup = await gaoqiao_setup(worker.user)
    ticket = await worker.ok("ticket:take", take_payload(setup, None))
    call = (await clerk.ok("queue:call_next"))["call"]
    await worker.ok("ticket:answer", {"ticket_id": ticket["id"]})
    return {"worker": worker, "clerk": clerk, "setup": setup, "ticket": ticket, "call": call}


# -- 1. control characters and ids


async def test_control_characters_are_refused_and_nothing_is_stored(
    sock: Any, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    env = await in_call(sock)
    worker, clerk = env["worker"], env["clerk"]
    call_id = env["call"]["call_id"]
    before = await db_state(settings)
    sent = [
        (worker, "ticket:take", take_payload(env["setup"], None, note="老人\x00腿脚不便")),
        (worker, "ticket:take", take_payload(env["setup"], None, note="bell\x07")),
        (worker, "ticket:take", take_payload(env["setup"], None, item_code="MZ\x1b001")),
        (clerk, "expert:invite", {"call_id": call_id, "skill": "社会救助\x00政策"}),
        (
            clerk,
            "ticket:finish",
            {"ticket_id": env["ticket"]["id"], "outcome": "returned", "reason": "缺\x00材料"},
        ),
        # A key is text too.
        (worker, "ticket:watch", {"ticket_id\x00": 1}),
    ]
    for s, event, data in sent:
        error = await s.err(event, data)
        assert error["code"] == "control_characters", (event, error)
        assert error["message"] and error["message_en"]
        assert error["details"][0]["type"] == "control_characters"
    assert await db_state(settings) == before
    assert "expert:invited" not in clerk.heard
    # Tabs and line breaks are what people type in notes: still taken.
    ticket = await worker.ok(
        "ticket:take", take_payload(env["setup"], None, note="第一行\n第二行\t右")
    )
    assert ticket["number"]
    assert tracebacks(caplog) == []


@pytest.mark.parametrize("big", [2**31, 2**63 + 1], ids=["int32", "int64"])
async def test_ids_past_32_bits_are_validation_errors(
    sock: Any, settings: Settings, big: int, caplog: pytest.LogCaptureFixture
) -> None:
    env = await in_call(sock)
    worker, clerk = env["worker"], env["clerk"]
    call_id = env["call"]["call_id"]
    take = take_payload(env["setup"], None)
    before = await db_state(settings)
    sent = [
        (worker, "line:watch", {"line_ids": [big]}),
        (worker, "line:watch", {"line_ids": [env["setup"]["line"]["id"], big]}),
        (worker, "ticket:take", {**take, "resident_id": big}),
        (worker, "ticket:take", {**take, "site_id": big}),
        (worker, "ticket:take", {**take, "appointment_id": big}),
        (worker, "ticket:watch", {"ticket_id": big}),
        (worker, "ticket:cancel", {"ticket_id": big}),
        (clerk, "ticket:transfer", {"ticket_id": env["ticket"]["id"], "line_id": big}),
        (clerk, "call:stats", {"call_id": call_id, "frames_decoded": big}),
        (clerk, "call:signal", {"call_id": call_id, "to": big, "kind": "offer", "sdp": "v=0"}),
        (clerk, "recorder:snapshot", {"call_id": call_id, "participant_id": big}),
        (clerk, "expert:invite", {"call_id": big, "skill": "社会救助政策"}),
    ]
    for s, event, data in sent:
        error = await s.err(event, data)
        assert error["code"] == "validation", (event, error)
    assert await db_state(settings) == before
    assert (await worker.ok("state:sync"))["tickets"][0]["id"] == env["ticket"]["id"]
    assert tracebacks(caplog) == []


# -- 2. reserved event names


async def test_reserved_event_names_are_unknown_events_and_change_nothing(
    sock: Any, as_user: Any, caplog: pytest.LogCaptureFixture
) -> None:
    worker = await sock("worker")
    setup = await gaoqiao_setup(worker.user)
    line_id = setup["line"]["id"]
    await worker.ok("ticket:take", take_payload(setup, None))
    clerk_user: User = await as_user("clerk")
    raw = await RawSocket(clerk_user.base, cookie_of(clerk_user)).connect()
    try:
        called = await raw.call("queue:call_next", {})
        assert called["ok"], called
        await worker.ok("ticket:answer", {"ticket_id": called["data"]["ticket"]["id"]})
        environ = {"HTTP_COOKIE": cookie_of(clerk_user)}
        sent: list[tuple[str, ...] | tuple[Any, ...]] = [
            ("connect", "junk"),
            ("connect", environ),
            ("connect", environ),
            ("connect", environ),
            ("connect",),
            ("disconnect",),
            ("disconnect", "client disconnect"),
            ("*",),
            ("*", "ticket:take", {}),
            ("message", {}),
        ]
        for args in sent:
            ack = await raw.call(*args)
            assert not ack["ok"] and ack["error"]["code"] == "socket.unknown_event", (args, ack)
        # The session is still there, and the call never heard the clerk leave.
        synced = await raw.call("state:sync", {})
        assert (
            synced["ok"]
            and synced["data"]["calls"][0]["call_id"] == called["data"]["call"]["call_id"]
        )
        assert await quiet(worker, "call:participant_left") == []
        online = await worker.ok("line:watch", {"line_ids": [line_id]})
        assert online[0]["clerks_online"] == 1
    finally:
        await raw.close()
    # A real disconnect: the clerk is no longer counted online (one socket, counted once).
    await worker.wait("line:status", lambda d: d["line_id"] == line_id and d["clerks_online"] == 0)
    assert tracebacks(caplog) == []


async def test_event_frames_that_are_not_events_get_no_traceback(
    as_user: Any, caplog: pytest.LogCaptureFixture
) -> None:
    user = await as_user("worker")
    raw = await RawSocket(user.base, cookie_of(user)).connect()
    try:
        for frame in ("421[]", "422[1,{}]", '423[{"a":1}]', '424{"a":1}', '425"text"'):
            await raw.send(frame)
            reply = await raw.frame()
            ack_id = frame[2]
            assert reply.startswith(f"43{ack_id}["), (frame, reply)
            assert '"socket.unknown_event"' in reply, (frame, reply)
        assert (await raw.call("state:sync", {}))["ok"]
    finally:
        await raw.close()
    assert tracebacks(caplog) == []


# -- 3. deep nesting


async def test_deep_nesting_before_login_is_refused_without_a_traceback(
    client: Any, as_user: Any, caplog: pytest.LogCaptureFixture
) -> None:
    base = str(client.make_url("")).rstrip("/")
    deep = "[" * 970 + "]" * 970
    frames = [
        "42" + deep,  # an event before joining the namespace
        "40" + '{"auth":' + deep + "}",  # the connect packet's auth
        "4" + deep,  # engine.io's own message decode
        '42["state:sync",' + deep + "]",
        '42["state:sync",{"a":' + "{" * 970 + "}" * 971 + "]",
    ]
    for frame in frames:
        assert len(frame.encode()) < 2_100
        raw = await RawSocket(base).open()
        try:
            await raw.send(frame)
            # Whatever the answer (none, a refusal, a close), the server stays up.
            await raw.send("40")
            reply = await raw.frame()
            assert reply.startswith("44") or reply == "", (frame[:10], reply)
        finally:
            await raw.close()
    assert tracebacks(caplog) == []
    # Logged in: nesting a little past the payload limit is a too_deep error ack.
    user = await as_user("worker")
    raw = await RawSocket(user.base, cookie_of(user)).connect()
    try:
        nested: Any = 1
        for _ in range(40):
            nested = [nested]
        ack = await raw.call("ticket:watch", {"ticket_id": nested})
        assert not ack["ok"] and ack["error"]["code"] == "too_deep", ack
        assert (await raw.call("state:sync", {}))["ok"]
    finally:
        await raw.close()
    assert tracebacks(caplog) == []


# -- 4. floods


async def test_a_flood_at_the_default_limits_is_disconnected(
    node: Any,
    settings: Settings,
) -> None:
    _base, login = await node(settings)
    flooder = await Sock(await login("worker")).connect()
    bystander = await Sock(await login("clerk")).connect()
    gone = asyncio.Event()

    async def on_disconnect(*_args: Any) -> None:
        gone.set()

    flooder.client.on("disconnect", on_disconnect)
    try:
        # 3,000 events over about 1.6 s: the bucket refills between them all along.
        for _ in range(30):
            if gone.is_set():
                break
            for _ in range(100):
                await flooder.client.emit("state:sync", {})
            await asyncio.sleep(0.05)
        await asyncio.wait_for(gone.wait(), 10)
        assert (await bystander.ok("state:sync"))["tickets"] == []
    finally:
        await flooder.close()
        await bystander.close()


async def test_a_normal_burst_is_never_disconnected(node: Any, settings: Settings) -> None:
    _base, login = await node(settings)
    s = await Sock(await login("worker")).connect()
    try:
        burst = settings.socket_event_burst
        acks = await asyncio.gather(*(s.call("state:sync") for _ in range(burst)))
        assert all(a["ok"] for a in acks)
        # Twice the burst at once: the rest is refused, and the socket stays.
        acks = await asyncio.gather(*(s.call("state:sync") for _ in range(2 * burst)))
        assert {a["ok"] or a["error"]["code"] for a in acks} <= {True, "rate_limited"}
        assert s.client.connected
    finally:
        await s.close()


# -- 5. refused connections


async def test_a_refused_connection_carries_code_and_message(as_user: Any, client: Any) -> None:
    base = str(client.make_url("")).rstrip("/")
    for headers, code in (
        ({}, "unauthenticated"),
        ({"Cookie": "cw_session=forged-session-token"}, "unauthenticated"),
    ):
        c = socketio.AsyncClient(reconnection=False)
        refusals: list[Any] = []
        c.on("connect_error", refusals.append)
        with pytest.raises(socketio.exceptions.ConnectionError):
            await c.connect(base, headers=headers, transports=["websocket"], wait_timeout=5)
        await c.disconnect()
        assert len(refusals) == 1
        err = refusals[0]
        # What a socket.io client shows as err.message and err.data.
        assert isinstance(err["message"], str) and "{" not in err["message"], err
        assert err["data"]["code"] == code, err
        assert err["data"]["message"] == err["message"]
        assert err["data"]["message_en"]


# -- 7. a disconnect while a handler of the same socket still runs


async def test_a_leave_still_running_when_the_socket_drops(
    sock: Any, client: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The clerk leaves and drops at once: the leave finishes during the drop's handling."""
    env = await in_call(sock)
    worker, clerk = env["worker"], env["clerk"]
    call_id = env["call"]["call_id"]
    sg = client.app[SIGNALING]
    leaving, go, popped = asyncio.Event(), asyncio.Event(), asyncio.Event()
    real_leave, real_disconnected, real_room_leave = calls.leave, calls.disconnected, sg.leave

    async def slow_leave(**kw: Any) -> None:
        leaving.set()
        await go.wait()
        await real_leave(**kw)

    async def room_leave(*args: Any) -> None:
        await real_room_leave(*args)
        popped.set()

    async def drop_meanwhile(**kw: Any) -> None:
        go.set()
        await popped.wait()  # the leave has finished and forgotten the call
        await real_disconnected(**kw)

    monkeypatch.setattr(calls, "leave", slow_leave)
    monkeypatch.setattr(calls, "disconnected", drop_meanwhile)
    monkeypatch.setattr(sg, "leave", room_leave)
    await clerk.client.emit("call:leave", {"call_id": call_id})
    await asyncio.wait_for(leaving.wait(), 10)
    await clerk.close()
    left = await worker.wait("call:participant_left")
    assert left["participant_id"] == env["call"]["participant_id"]
    assert left["reconnecting"] is False
    online = await worker.ok("line:watch", {"line_ids": [env["setup"]["line"]["id"]]})
    # The drop may already be counted when the watch starts (the ack's snapshot says so), or
    # it arrives afterwards as a line:status push; either way the clerk ends up offline.
    if online[0]["clerks_online"] != 0:
        await worker.wait(
            "line:status",
            lambda d: d["line_id"] == online[0]["line_id"] and d["clerks_online"] == 0,
        )
    assert tracebacks(caplog) == []


async def test_the_leaver_hears_its_own_leave(sock: Any) -> None:
    """As docs/protocol.md says: call:participant_left goes to the whole call, leaver included."""
    env = await in_call(sock)
    worker, clerk = env["worker"], env["clerk"]
    call_id, mine = env["call"]["call_id"], env["call"]["participant_id"]
    assert (await clerk.ok("call:leave", {"call_id": call_id}))["call_id"] == call_id
    for s in (worker, clerk):
        left = await s.wait("call:participant_left", lambda d: d["participant_id"] == mine)
        assert left["reconnecting"] is False
