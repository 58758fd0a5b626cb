"""Calls: rejoining after a drop, the grace period, expert invites, the mesh relay, stream
labels and TURN credentials."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from core.db import utcnow
from core.settings import Settings
from signaling import sweeps
from signaling.events import SignalRelayed
from signaling.views import SIGNALING
from tests.conftest import DEMO_PASSWORD, User
from tests.signaling.helpers import Sock, gaoqiao_setup, new_resident, take_payload
from web.app import create_app

SKILL = "社会救助政策"  # expert and expert.cl have it; expert.yb does not

# -- helpers


async def answered_call(sock: Callable[[str], Awaitable[Sock]]) -> dict[str, Any]:
    """worker takes a number, clerk calls it, the point answers: a two-party call."""
    worker = await sock("worker")
    clerk = await sock("clerk")
    setup = await gaoqiao_setup(worker.user)
    ticket = await worker.ok("ticket:take", take_payload(setup, await new_resident(worker.user)))
    called = await clerk.ok("queue:call_next")
    answer = await worker.ok("ticket:answer", {"ticket_id": ticket["id"]})
    await clerk.wait("call:participant_joined", lambda d: d["participant"]["role"] == "point")
    return {
        "worker": worker,
        "clerk": clerk,
        "ticket": ticket,
        "call_id": called["call"]["call_id"],
        "clerk_join": called["call"],
        "point_join": answer["call"],
        "clerk_pid": called["call"]["participant_id"],
        "point_pid": answer["call"]["participant_id"],
    }


def offer(call_id: int, to: int, sdp: str = "v=0 offer") -> dict[str, Any]:
    return {"call_id": call_id, "to": to, "kind": "offer", "sdp": sdp}


async def quiet(s: Sock, event: str) -> list[Any]:
    """What the socket heard of an event, once everything sent to it so far has arrived.

    The server emits to a socket in order: an ack of a later request arrives after any event
    emitted to that socket before the request was handled.
    """
    await s.ok("state:sync")
    return list(s.heard[event])


async def sweep_later(client: Any, sweep: Callable[..., Awaitable[int]], seconds: float) -> int:
    sg = client.app[SIGNALING]
    now = utcnow() + dt.timedelta(seconds=seconds)
    return await sg.run(lambda s, o: sweep(session=s, settings=sg.settings, outbox=o, now=now))


@pytest.fixture
async def node(
    settings: Settings, aiohttp_client: Any
) -> AsyncIterator[Callable[[Settings], Awaitable[Callable[[str], Awaitable[Sock]]]]]:
    """node(custom settings) -> sock(username) on a fresh app with those settings.

    Takes the `settings` fixture so the test database outlives the apps started here.
    """
    opened: list[Sock] = []
    sessions: list[aiohttp.ClientSession] = []

    async def start(settings: Settings) -> Callable[[str], Awaitable[Sock]]:
        tc = await aiohttp_client(create_app(settings))
        base = str(tc.make_url("")).rstrip("/")

        async def sock(username: str) -> Sock:
            http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
            sessions.append(http)
            user = User(http, base)
            resp = await user.login(username, DEMO_PASSWORD)
            assert resp.status == 200, await resp.text()
            s = await Sock(user).connect()
            opened.append(s)
            return s

        return sock

    yield start
    for s in opened:
        await s.close()
    for h in sessions:
        await h.close()


async def add_expert(admin: User, username: str, skills: list[str]) -> None:
    resp = await admin.post(
        "/api/v1/staff",
        json={
            "username": username,
            "display_name": f"专家 {username}",
            "role": "expert",
            "password": DEMO_PASSWORD,
            "skills": skills,
            "site_codes": ["D00"],
        },
    )
    assert resp.status == 201, await resp.text()


# -- rejoin


async def test_rejoin_after_a_drop_keeps_the_participant(sock: Any) -> None:
    env = await answered_call(sock)
    worker, clerk, call_id = env["worker"], env["clerk"], env["call_id"]
    point_pid, clerk_pid = env["point_pid"], env["clerk_pid"]
    token = env["point_join"]["resume_token"]

    await worker.close()
    left = await clerk.wait("call:participant_left")
    assert left == {"call_id": call_id, "participant_id": point_pid, "reconnecting": True}

    # Somebody else holding the token, or the right user with a wrong token: refused.
    admin = await sock("admin")
    err = await admin.err("call:rejoin", {"call_id": call_id, "resume_token": token})
    assert err["code"] == "call.resume"
    back = await sock("worker")
    err = await back.err("call:rejoin", {"call_id": call_id, "resume_token": "x" * 32})
    assert err["code"] == "call.resume"
    assert clerk.heard["call:participant_joined"][-1]["participant"]["role"] == "point"
    assert all(not d.get("rejoined") for d in clerk.heard["call:participant_joined"])

    join = await back.ok("call:rejoin", {"call_id": call_id, "resume_token": token})
    assert join["participant_id"] == point_pid
    assert join["call_id"] == call_id
    assert {p["id"] for p in join["participants"]} == {point_pid, clerk_pid}
    rejoined = await clerk.wait("call:participant_joined", lambda d: d.get("rejoined") is True)
    assert rejoined["participant"]["id"] == point_pid

    # Signals flow again, both ways, with the same participant ids.
    await clerk.ok("call:signal", offer(call_id, point_pid, "v=0 ice restart offer"))
    got = await back.wait("call:signal")
    assert got["from"] == clerk_pid
    assert got["sdp"] == "v=0 ice restart offer"
    await back.ok(
        "call:signal", {"call_id": call_id, "to": clerk_pid, "kind": "answer", "sdp": "v=0 ans"}
    )
    assert (await clerk.wait("call:signal"))["from"] == point_pid

    case = await (await clerk.user.get(f"/api/v1/cases/{env['ticket']['case_id']}")).json()
    assert "call.rejoined" in [e["kind"] for e in case["timeline"]]


async def test_after_the_grace_the_dropped_participant_leaves_and_empty_calls_end(
    sock: Any, client: Any, settings: Settings
) -> None:
    env = await answered_call(sock)
    worker, clerk, call_id = env["worker"], env["clerk"], env["call_id"]
    grace = settings.call_rejoin_grace_seconds

    await worker.close()
    await clerk.wait("call:participant_left", lambda d: d["reconnecting"] is True)
    # Within the grace nothing happens.
    assert await sweep_later(client, sweeps.sweep_dropped, 0) == 0
    assert await sweep_later(client, sweeps.sweep_dropped, grace + 5) >= 1
    gone = await clerk.wait("call:participant_left", lambda d: d["reconnecting"] is False)
    assert gone == {"call_id": call_id, "participant_id": env["point_pid"], "reconnecting": False}
    assert clerk.heard["call:ended"] == []  # the clerk is still there

    back = await sock("worker")
    err = await back.err(
        "call:rejoin", {"call_id": call_id, "resume_token": env["point_join"]["resume_token"]}
    )
    assert err["code"] == "call.resume"
    err = await clerk.err("call:signal", offer(call_id, env["point_pid"]))
    assert err["code"] == "call.target"

    # The clerk drops too; once the grace has passed the call ends for good.
    await clerk.close()
    watcher = await sock("clerk")
    assert (await watcher.ok("state:sync"))["calls"] == [
        {"call_id": call_id, "participant_id": env["clerk_pid"]}
    ]
    await sweep_later(client, sweeps.sweep_dropped, grace + 5)
    assert (await watcher.ok("state:sync"))["calls"] == []
    case = await (await watcher.user.get(f"/api/v1/cases/{env['ticket']['case_id']}")).json()
    ended = [e for e in case["timeline"] if e["kind"] == "call.ended"]
    assert [e["data"]["reason"] for e in ended] == ["everyone_left"]


async def test_last_participant_leaving_ends_the_call(sock: Any) -> None:
    env = await answered_call(sock)
    worker, clerk, call_id = env["worker"], env["clerk"], env["call_id"]
    await worker.ok("call:leave", {"call_id": call_id})
    assert (await clerk.wait("call:participant_left"))["reconnecting"] is False
    assert await quiet(clerk, "call:ended") == []
    await clerk.ok("call:leave", {"call_id": call_id})
    assert await clerk.wait("call:ended") == {"call_id": call_id, "reason": "everyone_left"}
    err = await worker.err(
        "call:rejoin", {"call_id": call_id, "resume_token": env["point_join"]["resume_token"]}
    )
    assert err["code"] == "call.ended"


# -- experts


async def test_expert_invite_by_skill_first_accept_wins(sock: Any) -> None:
    env = await answered_call(sock)
    worker, clerk, call_id = env["worker"], env["clerk"], env["call_id"]
    zhou = await sock("expert")
    liu = await sock("expert.cl")
    wu = await sock("expert.yb")

    question = "户籍迁入未满一年，能否申领？"
    inv = await clerk.ok(
        "expert:invite", {"call_id": call_id, "skill": SKILL, "question": question}
    )
    for expert in (zhou, liu):
        heard = await expert.wait("expert:invited")
        assert heard["invite_id"] == inv["invite_id"]
        assert heard["call_id"] == call_id
        assert heard["skill"] == SKILL
        assert heard["item_name"] == "高龄津贴申领"
        assert heard["question"] == question
        assert heard["case_number"] == env["ticket"]["case_number"]
    assert await quiet(wu, "expert:invited") == []

    err = await wu.err("expert:accept", {"invite_id": inv["invite_id"]})
    assert err["code"] == "invite.skill"

    join = await zhou.ok("expert:accept", {"invite_id": inv["invite_id"]})
    assert len(join["participants"]) == 3
    assert {p["role"] for p in join["participants"]} == {"clerk", "point", "expert"}
    for s in (worker, clerk):
        j = await s.wait("call:participant_joined", lambda d: d["participant"]["role"] == "expert")
        assert j["participant"]["id"] == join["participant_id"]
    closed = await liu.wait("expert:invite_closed")
    assert closed["invite_id"] == inv["invite_id"]

    err = await liu.err("expert:accept", {"invite_id": inv["invite_id"]})
    assert err["code"] == "invite.taken"
    err = await liu.err("expert:accept", {"invite_id": 999_999})
    assert err["code"] == "not_found"

    # The expert is a full participant: signals reach them.
    await clerk.ok("call:signal", offer(call_id, join["participant_id"]))
    assert (await zhou.wait("call:signal"))["from"] == env["clerk_pid"]


async def test_call_full_at_the_participant_limit(sock: Any, settings: Settings) -> None:
    assert settings.call_max_participants == 4
    env = await answered_call(sock)
    clerk, call_id = env["clerk"], env["call_id"]
    admin = await sock("admin")
    await add_expert(admin.user, "expert.extra1", [SKILL])
    zhou = await sock("expert")
    liu = await sock("expert.cl")
    extra = await sock("expert.extra1")

    first = await clerk.ok("expert:invite", {"call_id": call_id, "skill": SKILL})
    joined = await zhou.ok("expert:accept", {"invite_id": first["invite_id"]})
    assert len(joined["participants"]) == 3
    # Two invites open at three participants: the first to accept makes four, the other
    # accept finds the call full.
    second = await clerk.ok("expert:invite", {"call_id": call_id, "skill": SKILL})
    third = await clerk.ok("expert:invite", {"call_id": call_id, "skill": SKILL})
    await extra.wait("expert:invited", lambda d: d["invite_id"] == third["invite_id"])
    joined = await liu.ok("expert:accept", {"invite_id": second["invite_id"]})
    assert len(joined["participants"]) == 4
    err = await extra.err("expert:accept", {"invite_id": third["invite_id"]})
    assert err["code"] == "call.full"
    assert "4" in err["message"]
    # Inviting a fifth is refused up front.
    err = await clerk.err("expert:invite", {"call_id": call_id, "skill": SKILL})
    assert err["code"] == "call.full"
    heard = await quiet(clerk, "call:participant_joined")
    assert [d["participant"]["role"] for d in heard].count("expert") == 2


# -- relay


async def test_mesh_signal_reaches_only_its_addressee(sock: Any) -> None:
    env = await answered_call(sock)
    worker, clerk, call_id = env["worker"], env["clerk"], env["call_id"]
    zhou = await sock("expert")
    inv = await clerk.ok("expert:invite", {"call_id": call_id, "skill": SKILL})
    join = await zhou.ok("expert:accept", {"invite_id": inv["invite_id"]})
    expert_pid = join["participant_id"]

    await clerk.ok("call:signal", offer(call_id, expert_pid, "v=0 to the expert"))
    got = await zhou.wait("call:signal")
    assert got["from"] == env["clerk_pid"]
    assert got["sdp"] == "v=0 to the expert"
    assert await quiet(worker, "call:signal") == []

    await zhou.ok("call:signal", offer(call_id, env["point_pid"], "v=0 expert to point"))
    got = await worker.wait("call:signal")
    assert got["from"] == expert_pid
    assert got["sdp"] == "v=0 expert to point"
    assert await quiet(clerk, "call:signal") == []


async def test_track_label_reaches_the_others_not_the_sender(sock: Any) -> None:
    env = await answered_call(sock)
    worker, clerk, call_id = env["worker"], env["clerk"], env["call_id"]
    zhou = await sock("expert")
    inv = await clerk.ok("expert:invite", {"call_id": call_id, "skill": SKILL})
    await zhou.ok("expert:accept", {"invite_id": inv["invite_id"]})

    label = {"call_id": call_id, "stream_id": "screen-1", "kind": "screen", "active": True}
    assert await worker.ok("call:track", label) is None
    expected = {
        "call_id": call_id,
        "participant_id": env["point_pid"],
        "stream_id": "screen-1",
        "kind": "screen",
        "active": True,
    }
    assert await clerk.wait("call:track") == expected
    assert await zhou.wait("call:track") == expected
    assert await quiet(worker, "call:track") == []


# -- ICE servers


async def test_join_carries_turn_credentials(node: Any, settings: Settings) -> None:
    secret, ttl = "coturn-shared-secret", 600
    custom = settings.model_copy(
        update={
            "stun_urls": "stun:stun.example.org:3478",
            "turn_urls": "turn:turn.example.org:3478?transport=udp, turns:turn.example.org:5349",
            "turn_secret": secret,
            "turn_ttl_seconds": ttl,
        }
    )
    sock = await node(custom)
    worker = await sock("worker")
    clerk = await sock("clerk")
    setup = await gaoqiao_setup(worker.user)
    ticket = await worker.ok("ticket:take", take_payload(setup, None))

    checks = []
    before = int(time.time())
    called = await clerk.ok("queue:call_next")
    answered = await worker.ok("ticket:answer", {"ticket_id": ticket["id"]})
    after = int(time.time()) + 1
    checks.append((called["call"]["ice_servers"], clerk.user.me["id"]))
    checks.append((answered["call"]["ice_servers"], worker.user.me["id"]))

    for servers, staff_id in checks:
        assert {"urls": ["stun:stun.example.org:3478"]} in servers
        turn = next(s for s in servers if "username" in s)
        assert turn["urls"] == [
            "turn:turn.example.org:3478?transport=udp",
            "turns:turn.example.org:5349",
        ]
        expiry, user = turn["username"].split(":")
        assert user == str(staff_id)
        assert before + ttl <= int(expiry) <= after + ttl
        digest = hmac.new(secret.encode(), turn["username"].encode(), hashlib.sha1).digest()
        assert turn["credential"] == base64.b64encode(digest).decode()

    synced = await worker.ok("state:sync")
    assert any(
        s.get("username", "").endswith(f":{worker.user.me['id']}") for s in synced["ice_servers"]
    )


async def test_rejoin_before_the_old_socket_drop_is_noticed(
    sock: Any, client: Any, settings: Settings
) -> None:
    """A point whose network changed comes back on a new socket before the server noticed
    the old one die; the old socket's late disconnect must not drop the rejoined point."""
    env = await answered_call(sock)
    worker, clerk, call_id = env["worker"], env["clerk"], env["call_id"]
    point_pid = env["point_pid"]

    fresh = await sock("worker")
    join = await fresh.ok(
        "call:rejoin", {"call_id": call_id, "resume_token": env["point_join"]["resume_token"]}
    )
    assert join["participant_id"] == point_pid
    await worker.close()  # the stale socket finally goes
    await quiet(clerk, "call:participant_left")
    await sweep_later(client, sweeps.sweep_dropped, settings.call_rejoin_grace_seconds + 5)

    # The point is still in the call on its new socket, and nobody was told it left.
    ack = await clerk.call("call:signal", offer(call_id, point_pid, "v=0 still here"))
    assert ack["ok"], ack
    assert (await fresh.wait("call:signal"))["sdp"] == "v=0 still here"
    assert (await fresh.call("call:state", {"call_id": call_id, "state": "connected"}))["ok"]
    assert await quiet(clerk, "call:participant_left") == []


async def test_sdp_and_candidates_are_relayed_verbatim(sock: Any) -> None:
    """The relay passes SDP on byte for byte: every SDP line, the last one included, ends in
    CRLF (RFC 4566), and WebRTC stacks parse line by line up to each newline."""
    env = await answered_call(sock)
    worker, clerk, call_id = env["worker"], env["clerk"], env["call_id"]
    sdp = (
        "v=0\r\n"
        "o=- 4611731400430051336 2 IN IP4 127.0.0.1\r\n"
        "s=-\r\n"
        "t=0 0\r\n"
        "a=group:BUNDLE 0\r\n"
        "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"
        "c=IN IP4 0.0.0.0\r\n"
        "a=mid:0\r\n"
        "a=rtpmap:111 opus/48000/2\r\n"
    )
    await worker.ok("call:signal", offer(call_id, env["clerk_pid"], sdp))
    got = await clerk.wait("call:signal")
    assert got["sdp"] == sdp

    cand = {
        "candidate": "candidate:842163049 1 udp 1677729535 203.0.113.7 46154 typ srflx "
        "raddr 0.0.0.0 rport 0 generation 0 ufrag sGfR network-cost 999",
        "sdpMid": "0",
        "sdpMLineIndex": 0,
        "usernameFragment": "sGfR",
    }
    await clerk.ok(
        "call:signal",
        {"call_id": call_id, "to": env["point_pid"], "kind": "candidate", "candidate": cand},
    )
    relayed = await worker.wait("call:signal")
    assert relayed["candidate"] == cand
    # The relay builds its message by hand; it is exactly what its declared type sends.
    for message in (got, relayed):
        sent = SignalRelayed.model_validate(message).payload()
        assert list(sent.items()) == list(message.items())
