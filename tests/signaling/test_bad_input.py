"""Bad input on the socket: every bad event gets an error ack (or is rate limited), the server
keeps working, and nothing in the queue or the cases changes."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import socketio
from sqlalchemy import func
from sqlmodel import select

from core.db import Database
from core.models import Case, CaseEvent
from core.settings import Settings
from signaling.models import Ticket
from signaling.payloads import MAX_SDP_BYTES
from tests.signaling.helpers import Sock, gaoqiao_setup, take_payload

# -- helpers


async def db_state(settings: Settings) -> tuple[int, int, int, list[tuple[int, str]]]:
    """(tickets, cases, case events, each ticket's status) in the test's database."""
    db = Database(settings.effective_database_url)
    try:
        async with db.session() as s:
            tickets = (await s.exec(select(func.count()).select_from(Ticket))).one()
            cases = (await s.exec(select(func.count()).select_from(Case))).one()
            events = (await s.exec(select(func.count()).select_from(CaseEvent))).one()
            statuses = (
                await s.exec(select(Ticket.id, Ticket.status).order_by(Ticket.id))  # type: ignore[arg-type]
            ).all()
            return int(tickets), int(cases), int(events), [(int(i), str(st)) for i, st in statuses]
    finally:
        await db.dispose()


async def quiet(s: Sock, event: str) -> list[Any]:
    """What the socket heard of an event once everything sent to it so far has arrived."""
    await s.ok("state:sync")
    return list(s.heard[event])


async def two_calls(sock: Callable[[str], Awaitable[Sock]]) -> dict[str, Any]:
    """Call A (clerk + point) on the 民政 line, call B (clerk.t07.r + point) on 人力社保."""
    worker = await sock("worker")
    clerk = await sock("clerk")
    clerk_r = await sock("clerk.t07.r")
    civil = await gaoqiao_setup(worker.user)
    lines = await (
        await worker.user.get("/api/v1/lines", params={"site_id": str(civil["point"]["parent_id"])})
    ).json()
    hr_line = next(ln for ln in lines if ln["department"] == "human_resources")
    hr = {**civil, "line": hr_line, "item": {"code": "RS-001"}}
    ta = await worker.ok("ticket:take", take_payload(civil, None))
    tb = await worker.ok("ticket:take", take_payload(hr, None))
    ca = (await clerk.ok("queue:call_next"))["call"]
    cb = (await clerk_r.ok("queue:call_next"))["call"]
    pa = (await worker.ok("ticket:answer", {"ticket_id": ta["id"]}))["call"]
    pb = (await worker.ok("ticket:answer", {"ticket_id": tb["id"]}))["call"]
    return {
        "worker": worker,
        "clerk": clerk,
        "clerk_r": clerk_r,
        "civil": civil,
        "ta": ta,
        "tb": tb,
        "a": ca["call_id"],
        "b": cb["call_id"],
        "a_clerk": ca["participant_id"],
        "a_point": pa["participant_id"],
        "b_clerk": cb["participant_id"],
        "b_point": pb["participant_id"],
    }


async def raw_call(s: Sock, event: str, data: Any) -> Any:
    """Send exactly `data` (a string, a list, None...), unlike Sock.call which sends {}."""
    args = (data,) if data is not None else None
    return await s.client.call(event, args, timeout=10)


# -- malformed events


async def test_malformed_events_get_error_acks_and_change_nothing(
    sock: Any, settings: Settings
) -> None:
    env = await two_calls(sock)
    worker, clerk, clerk_r = env["worker"], env["clerk"], env["clerk_r"]
    a, b = env["a"], env["b"]
    take = take_payload(env["civil"], None)
    before = await db_state(settings)

    cases: list[tuple[Sock, str, Any, str]] = [
        # wrong types
        (worker, "ticket:watch", {"ticket_id": "abc"}, "validation"),
        (worker, "ticket:watch", {"ticket_id": 1.5}, "validation"),
        (worker, "ticket:watch", {"ticket_id": [1]}, "validation"),
        (worker, "ticket:take", {**take, "line_id": -1}, "validation"),
        (worker, "ticket:take", {**take, "line_id": 0}, "validation"),
        (worker, "ticket:take", {**take, "site_id": 2**31}, "validation"),
        (worker, "ticket:take", {**take, "item_code": ""}, "validation"),
        (worker, "ticket:take", {**take, "item_code": "X" * 33}, "validation"),
        (worker, "ticket:take", {**take, "consent": "maybe"}, "validation"),
        (worker, "ticket:take", {**take, "consent": None}, "validation"),
        (worker, "line:watch", {"line_ids": "1"}, "validation"),
        (worker, "line:watch", {"line_ids": list(range(1, 102))}, "validation"),
        (clerk, "presence:set", {"status": "asleep"}, "validation"),
        (clerk, "ticket:finish", {"ticket_id": env["ta"]["id"], "outcome": "lost"}, "validation"),
        (
            clerk,
            "ticket:finish",
            {"ticket_id": env["ta"]["id"], "outcome": "transferred"},
            "validation",
        ),
        (clerk, "call:state", {"call_id": a, "state": "exploded"}, "validation"),
        (clerk, "call:stats", {"call_id": a, "rtt_ms": -1}, "validation"),
        (clerk, "call:stats", {"call_id": a, "packet_loss_pct": 101}, "validation"),
        (
            clerk,
            "call:track",
            {"call_id": a, "stream_id": "", "kind": "screen", "active": True},
            "validation",
        ),
        # unknown fields
        (worker, "ticket:watch", {"ticket_id": env["ta"]["id"], "color": "red"}, "validation"),
        (worker, "ticket:take", {**take, "priority": 9}, "validation"),
        (clerk, "queue:call_next", {"line_id": 1}, "validation"),
        (worker, "state:sync", {"everything": True}, "validation"),
        (
            clerk,
            "call:signal",
            {
                "call_id": a,
                "to": env["a_point"],
                "kind": "candidate",
                "candidate": {"candidate": "candidate:1", "evil": 1},
            },
            "validation",
        ),
        # missing fields
        (worker, "ticket:take", {}, "validation"),
        (worker, "ticket:take", {k: v for k, v in take.items() if k != "consent"}, "validation"),
        (worker, "ticket:answer", {}, "validation"),
        (clerk, "call:signal", {"call_id": a}, "validation"),
        (clerk, "call:rejoin", {"call_id": a}, "validation"),
        (clerk, "ticket:transfer", {"ticket_id": env["ta"]["id"]}, "validation"),
        # the payload is not an object
        (worker, "ticket:watch", "hello", "validation"),
        (worker, "ticket:watch", [env["ta"]["id"]], "validation"),
        (worker, "ticket:watch", None, "validation"),
        (worker, "ticket:take", 42, "validation"),
        (clerk, "queue:call_next", "next please", "validation"),
        (clerk, "queue:call_next", [], "validation"),
        (worker, "state:sync", "hello", "validation"),
        # unknown events
        (worker, "ticket:steal", {"ticket_id": env["ta"]["id"]}, "socket.unknown_event"),
        (clerk, "queue:call_all", {}, "socket.unknown_event"),
        # calls that are not mine
        (
            clerk,
            "call:signal",
            {"call_id": 999_999, "to": env["a_point"], "kind": "offer", "sdp": "v=0"},
            "call.not_participant",
        ),
        (clerk, "call:leave", {"call_id": 999_999}, "call.not_participant"),
        (clerk, "call:state", {"call_id": b, "state": "connected"}, "call.not_participant"),
        (clerk, "call:stats", {"call_id": b, "rtt_ms": 10}, "call.not_participant"),
        (
            clerk,
            "call:track",
            {"call_id": b, "stream_id": "s", "kind": "camera", "active": True},
            "call.not_participant",
        ),
        (clerk, "expert:invite", {"call_id": b, "skill": "社会救助政策"}, "call.not_participant"),
        # the recorder: someone else's call, a forged participant, a bad offer
        (clerk, "recorder:offer", {"call_id": b, "sdp": "v=0 an offer"}, "call.not_participant"),
        (worker, "recorder:offer", {"call_id": a, "sdp": 12345}, "validation"),
        (worker, "recorder:offer", {"call_id": a, "sdp": "v=0"}, "validation"),
        (worker, "recorder:offer", {"call_id": a, "sdp": "x" * 70_000}, "validation"),
        (worker, "recorder:offer", {"call_id": a, "sdp": "not an sdp at all"}, "validation"),
        (
            worker,
            "recorder:offer",
            {"call_id": a, "sdp": "v=0\r\nno media lines"},
            "recording.no_media",
        ),
        (clerk, "recorder:snapshot", {"call_id": b, "participant_id": 1}, "call.not_participant"),
        (clerk, "recorder:snapshot", {"call_id": a, "participant_id": 0}, "validation"),
        (
            clerk,
            "recorder:snapshot",
            {"call_id": a, "participant_id": env["b_point"]},
            "call.target",
        ),
        (
            clerk,
            "recorder:snapshot",
            {"call_id": a, "participant_id": env["a_point"]},
            "recording.no_video",
        ),
        (clerk, "recording:stop", {"call_id": b}, "call.not_participant"),
        # a participant of call A signalling into call B
        (
            clerk,
            "call:signal",
            {"call_id": b, "to": env["b_clerk"], "kind": "offer", "sdp": "v=0"},
            "call.not_participant",
        ),
        (
            clerk,
            "call:signal",
            {"call_id": b, "to": env["b_point"], "kind": "offer", "sdp": "v=0"},
            "call.not_participant",
        ),
        # a target outside my call, or myself
        (
            clerk,
            "call:signal",
            {"call_id": a, "to": env["b_clerk"], "kind": "offer", "sdp": "v=0"},
            "call.target",
        ),
        (
            clerk,
            "call:signal",
            {"call_id": a, "to": env["b_point"], "kind": "offer", "sdp": "v=0"},
            "call.target",
        ),
        (
            clerk,
            "call:signal",
            {"call_id": a, "to": 999_999, "kind": "offer", "sdp": "v=0"},
            "call.target",
        ),
        (
            clerk,
            "call:signal",
            {"call_id": a, "to": env["a_clerk"], "kind": "offer", "sdp": "v=0"},
            "call.target",
        ),
        # SDP and ICE shapes
        (
            clerk,
            "call:signal",
            {"call_id": a, "to": env["a_point"], "kind": "offer", "sdp": "v" * (MAX_SDP_BYTES + 1)},
            "validation",
        ),
        (clerk, "call:signal", {"call_id": a, "to": env["a_point"], "kind": "offer"}, "validation"),
        (
            clerk,
            "call:signal",
            {"call_id": a, "to": env["a_point"], "kind": "offer", "sdp": ""},
            "validation",
        ),
        (
            clerk,
            "call:signal",
            {"call_id": a, "to": env["a_point"], "kind": "answer"},
            "validation",
        ),
        (
            clerk,
            "call:signal",
            {"call_id": a, "to": env["a_point"], "kind": "candidate"},
            "validation",
        ),
        (
            clerk,
            "call:signal",
            {"call_id": a, "to": env["a_point"], "kind": "candidate", "candidate": {}},
            "validation",
        ),
        (
            clerk,
            "call:signal",
            {
                "call_id": a,
                "to": env["a_point"],
                "kind": "candidate",
                "candidate": {"candidate": "c" * 1025},
            },
            "validation",
        ),
        (
            clerk,
            "call:signal",
            {"call_id": a, "to": env["a_point"], "kind": "renegotiate", "sdp": "v=0"},
            "validation",
        ),
        (
            clerk,
            "call:signal",
            {"call_id": a, "to": env["a_point"], "kind": "offer", "sdp": 12345},
            "validation",
        ),
        # nothing there
        (worker, "ticket:watch", {"ticket_id": 999_999}, "not_found"),
        (worker, "line:watch", {"line_ids": [999_999]}, "not_found"),
        (clerk, "ticket:recall", {"ticket_id": 999_999}, "not_found"),
        (clerk, "expert:accept", {"invite_id": 1}, "forbidden_role"),
    ]
    wrong = []
    for s, event, data, code in cases:
        ack = await raw_call(s, event, data)
        if ack.get("ok") or ack.get("error", {}).get("code") != code:
            wrong.append((s.user.me["username"], event, str(data)[:80], code, ack))
        else:
            assert ack["error"]["message"], ack  # a message to show, in Chinese
            assert ack["error"]["message_en"], ack
    assert wrong == []

    # Nobody in either call heard any of it.
    assert await quiet(worker, "call:signal") == []
    assert await quiet(clerk_r, "call:signal") == []
    assert await quiet(worker, "call:track") == []
    assert await quiet(clerk_r, "call:track") == []

    # The server keeps working: real signals flow, and nothing changed.
    await clerk.ok(
        "call:signal", {"call_id": a, "to": env["a_point"], "kind": "offer", "sdp": "v=0 ok"}
    )
    assert (await worker.wait("call:signal"))["sdp"] == "v=0 ok"
    assert await db_state(settings) == before
    synced = await worker.ok("state:sync")
    assert [(t["id"], t["status"]) for t in synced["tickets"]] == [
        (env["ta"]["id"], "serving"),
        (env["tb"]["id"], "serving"),
    ]


async def test_consent_must_be_a_real_yes(sock: Any, settings: Settings) -> None:
    """Consent to take a number for a resident is recorded as given: only JSON true counts."""
    worker = await sock("worker")
    setup = await gaoqiao_setup(worker.user)
    before = await db_state(settings)
    wrong = []
    for consent in ("yes", "true", "on", "1", 1):
        ack = await worker.call("ticket:take", take_payload(setup, None, consent=consent))
        if ack["ok"] or ack["error"]["code"] != "validation":
            wrong.append((consent, ack.get("data", {}).get("number") or ack))
    assert wrong == [], "a non-boolean consent was accepted as consent"
    assert await db_state(settings) == before


async def test_sdp_limit_counts_bytes_not_characters(sock: Any) -> None:
    """MAX_SDP_BYTES is a byte limit: 22 000 CJK characters are 66 000 bytes in UTF-8.

    (Small enough that the JSON-escaped frame stays under the server's message size limit.)
    """
    worker = await sock("worker")
    clerk = await sock("clerk")
    setup = await gaoqiao_setup(worker.user)
    ticket = await worker.ok("ticket:take", take_payload(setup, None))
    call = (await clerk.ok("queue:call_next"))["call"]
    await worker.ok("ticket:answer", {"ticket_id": ticket["id"]})

    sdp = "v=0\r\n" + "中" * 22_000
    assert len(sdp.encode()) > MAX_SDP_BYTES
    ack = await worker.call(
        "call:signal",
        {"call_id": call["call_id"], "to": call["participant_id"], "kind": "offer", "sdp": sdp},
    )
    assert not ack["ok"] and ack["error"]["code"] == "validation", str(ack)[:200]
    assert await quiet(clerk, "call:signal") == []


# -- floods


async def test_flood_is_rate_limited_then_the_socket_recovers(
    node: Any, settings: Settings
) -> None:
    burst = 5
    custom = settings.model_copy(
        update={"socket_event_burst": burst, "socket_events_per_second": 1}
    )
    _base, login = await node(custom)
    s = await Sock(await login("worker")).connect()
    try:
        acks = await asyncio.gather(*(s.call("state:sync") for _ in range(burst + 5)))
        codes = [a["error"]["code"] if not a["ok"] else "ok" for a in acks]
        assert codes.count("ok") <= burst
        assert codes.count("rate_limited") >= 5
        assert set(codes) == {"ok", "rate_limited"}
        limited = next(a for a in acks if not a["ok"])
        assert limited["error"]["message"]

        # Event-driven retry: a token comes back within about a second; never flood on.
        for _ in range(8):
            await asyncio.sleep(0.4)
            ack = await s.call("state:sync")
            if ack["ok"]:
                break
        assert ack["ok"], ack
        assert s.client.connected
    finally:
        await s.close()


async def test_massive_flood_disconnects_only_the_flooder(node: Any, settings: Settings) -> None:
    burst = 5
    custom = settings.model_copy(
        update={"socket_event_burst": burst, "socket_events_per_second": 1}
    )
    _base, login = await node(custom)
    flooder = await Sock(await login("worker")).connect()
    bystander = await Sock(await login("clerk")).connect()
    gone = asyncio.Event()

    async def on_disconnect(*_args: Any) -> None:
        gone.set()

    flooder.client.on("disconnect", on_disconnect)
    try:
        for _ in range(burst + 4 * burst + 10):  # far past 4x the burst refused
            await flooder.client.emit("state:sync", {})
        await asyncio.wait_for(gone.wait(), 10)
        assert not flooder.client.connected

        # Everyone else, and the same user on a new socket, keep working.
        assert (await bystander.ok("state:sync"))["tickets"] == []
        again = await Sock(await login("worker")).connect()
        try:
            assert (await again.ok("state:sync"))["tickets"] == []
        finally:
            await again.close()
    finally:
        await flooder.close()
        await bystander.close()


# -- connecting


async def test_connecting_needs_a_valid_session(as_user: Any, client: Any) -> None:
    base = str(client.make_url("")).rstrip("/")
    for headers in ({}, {"Cookie": "cw_session=forged-session-token"}, {"Cookie": "other=1"}):
        c = socketio.AsyncClient(reconnection=False)
        with pytest.raises(socketio.exceptions.ConnectionError):
            await c.connect(base, headers=headers, transports=["websocket"], wait_timeout=5)
        assert not c.connected
        await c.disconnect()

    # Anonymous browser (no login) and a logged-out session are refused too.
    anon = Sock(await as_user())
    with pytest.raises(socketio.exceptions.ConnectionError):
        await anon.connect()
    user = await as_user("worker")
    resp = await user.post("/api/v1/auth/logout")
    assert resp.status in (200, 204), await resp.text()
    with pytest.raises(socketio.exceptions.ConnectionError):
        await Sock(user).connect()

    # A real session still connects.
    ok = await Sock(await as_user("worker")).connect()
    try:
        assert (await ok.ok("state:sync"))["tickets"] == []
    finally:
        await ok.close()
