"""The core flow: take a number, the clerk calls it, both join the call, the case is finished."""

from __future__ import annotations

from typing import Any

from core.settings import Settings
from tests.signaling.helpers import gaoqiao_setup, measured_handling, new_resident, take_payload
from tests.uploads.helpers import complete_materials


async def test_take_call_answer_signal_finish(sock: Any, settings: Settings) -> None:
    await measured_handling(settings.effective_database_url)
    worker = await sock("worker")
    clerk = await sock("clerk")
    setup = await gaoqiao_setup(worker.user)
    resident = await new_resident(worker.user)

    ticket = await worker.ok("ticket:take", take_payload(setup, resident))
    assert ticket["number"].startswith("M")
    assert ticket["status"] == "waiting"
    assert ticket["position"] == 1
    assert ticket["priority_reason"] == "age80"
    assert ticket["eta_seconds"] is not None  # the clerk is online, a handling time measured

    called = await clerk.ok("queue:call_next")
    assert called["ticket"]["id"] == ticket["id"]
    call = called["call"]
    assert [p["role"] for p in call["participants"]] == ["clerk"]

    ring = await worker.wait("ticket:called")
    assert ring["call_id"] == call["call_id"]
    answered = await worker.ok("ticket:answer", {"ticket_id": ticket["id"]})
    pcall = answered["call"]
    assert {p["role"] for p in pcall["participants"]} == {"clerk", "point"}
    joined = await clerk.wait(
        "call:participant_joined", lambda d: d["participant"]["role"] == "point"
    )
    point_pid = joined["participant"]["id"]

    # The point (joiner) offers; the clerk answers; candidates trickle both ways.
    await worker.ok(
        "call:signal",
        {
            "call_id": call["call_id"],
            "to": call["participant_id"],
            "kind": "offer",
            "sdp": "v=0 fake offer",
        },
    )
    got = await clerk.wait("call:signal")
    assert got == {
        "call_id": call["call_id"],
        "from": point_pid,
        "kind": "offer",
        "ice_restart": False,
        "sdp": "v=0 fake offer",
    }
    await clerk.ok(
        "call:signal",
        {"call_id": call["call_id"], "to": point_pid, "kind": "answer", "sdp": "v=0 fake answer"},
    )
    assert (await worker.wait("call:signal"))["sdp"] == "v=0 fake answer"
    cand = {
        "candidate": "candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host",
        "sdpMid": "0",
        "sdpMLineIndex": 0,
    }
    await clerk.ok(
        "call:signal",
        {"call_id": call["call_id"], "to": point_pid, "kind": "candidate", "candidate": cand},
    )
    assert (await worker.wait("call:signal", lambda d: d["kind"] == "candidate"))[
        "candidate"
    ] == cand

    await worker.ok("call:state", {"call_id": call["call_id"], "state": "connected"})
    await worker.ok("call:state", {"call_id": call["call_id"], "state": "first_media"})
    await clerk.ok(
        "call:stats",
        {"call_id": call["call_id"], "rtt_ms": 12.5, "fps": 15, "packet_loss_pct": 0.5},
    )

    # The point uploads the required documents during the call; the clerk sees each arrive.
    accepted = await complete_materials(worker.user, clerk.user, ticket["case_id"])
    arrived = {d["material"]["id"] for d in clerk.heard["material:uploaded"]}
    assert arrived == {m["id"] for m in accepted} and len(arrived) == 3
    reviewed = await worker.wait("material:reviewed", lambda d: d["material"]["id"] in arrived)
    assert reviewed["call_id"] == call["call_id"]
    done = await clerk.ok(
        "ticket:finish",
        {"ticket_id": ticket["id"], "outcome": "completed", "note": "材料齐全，当场办结"},
    )
    assert done["status"] == "done"
    fin = await worker.wait("case:finished")
    assert fin["outcome"] == "completed"
    await worker.ok("call:leave", {"call_id": call["call_id"]})
    await clerk.ok("call:leave", {"call_id": call["call_id"]})
    ended = await clerk.wait("call:ended", within=5)
    assert ended["reason"] == "everyone_left"

    case = await (await clerk.user.get(f"/api/v1/cases/{ticket['case_id']}")).json()
    assert case["status"] == "completed"
    kinds = [e["kind"] for e in case["timeline"]]
    for expected in (
        "created",
        "consent",
        "ticket.taken",
        "status.in_service",
        "call.answered",
        "material.upload",
        "material.accepted",
        "status.completed",
        "call.ended",
    ):
        assert expected in kinds, kinds
    log = next(e for e in case["timeline"] if e["kind"] == "call.ended")["data"]
    assert log["connected_after_s"] is not None
    assert log["first_media_after_s"] is not None
    assert log["quality"]["rtt_ms"] == 12.5
