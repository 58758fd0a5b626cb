"""Who may send which socket event: the role x event matrix, and per-ticket ownership."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from core.access import POLICY
from core.models import STAFF_ROLES, Role
from signaling.handlers import EVENTS
from tests.signaling.helpers import Sock, gaoqiao_setup, take_payload

# One demo login per role.
ROLE_USERS = {
    Role.community_worker: "worker",
    Role.clerk: "clerk",
    Role.expert: "expert",
    Role.supervisor: "supervisor",
    Role.coordinator: "coordinator",
    Role.courier: "courier",
    Role.operator: "operator",
    Role.field_staff: "field.t07",
    Role.admin: "admin",
}
GUARDED = sorted(name for name, spec in EVENTS.items() if spec.action is not None)

# A valid-shaped payload for every guarded event, from the test's setup.
PAYLOADS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "presence:set": lambda e: {"status": "available"},
    "line:watch": lambda e: {"line_ids": [e["setup"]["line"]["id"]]},
    "ticket:take": lambda e: take_payload(e["setup"], None),
    "ticket:watch": lambda e: {"ticket_id": e["ticket"]["id"]},
    "ticket:cancel": lambda e: {"ticket_id": e["ticket"]["id"]},
    "ticket:answer": lambda e: {"ticket_id": e["ticket"]["id"]},
    "queue:call_next": lambda e: {},
    "ticket:recall": lambda e: {"ticket_id": e["ticket"]["id"]},
    "ticket:transfer": lambda e: {
        "ticket_id": e["ticket"]["id"],
        "line_id": e["other_line"]["id"],
        "reason": "",
    },
    "ticket:finish": lambda e: {"ticket_id": e["ticket"]["id"], "outcome": "completed"},
    "call:rejoin": lambda e: {"call_id": 1, "resume_token": "not-a-real-token"},
    "call:leave": lambda e: {"call_id": 1},
    "call:signal": lambda e: {"call_id": 1, "to": 2, "kind": "offer", "sdp": "v=0"},
    "call:state": lambda e: {"call_id": 1, "state": "connected"},
    "call:stats": lambda e: {"call_id": 1, "rtt_ms": 20.0},
    "call:track": lambda e: {"call_id": 1, "stream_id": "cam", "kind": "camera", "active": True},
    "expert:invite": lambda e: {"call_id": 1, "skill": "社会救助政策"},
    "expert:accept": lambda e: {"invite_id": 1},
    "recorder:offer": lambda e: {"call_id": 1, "sdp": "v=0 not a real offer"},
    "recorder:snapshot": lambda e: {"call_id": 1, "participant_id": 1},
    "recording:stop": lambda e: {"call_id": 1},
}


def test_every_role_has_a_demo_user_and_every_event_a_payload() -> None:
    # Residents (SMS sign-in, no demo account) are covered by test_self_service.py.
    assert set(ROLE_USERS) == set(STAFF_ROLES)
    assert set(PAYLOADS) == set(GUARDED)


@pytest.mark.parametrize("event", GUARDED)
async def test_role_matrix(sock: Any, event: str) -> None:
    socks = {role: await sock(username) for role, username in ROLE_USERS.items()}
    for role, s in socks.items():
        assert s.user.me["role"] == role
    worker = socks[Role.community_worker]
    setup = await gaoqiao_setup(worker.user)
    lines = await (
        await worker.user.get("/api/v1/lines", params={"site_id": str(setup["point"]["parent_id"])})
    ).json()
    env = {
        "setup": setup,
        "other_line": next(ln for ln in lines if ln["department"] == "human_resources"),
        "ticket": await worker.ok("ticket:take", take_payload(setup, None)),
    }
    payload = PAYLOADS[event](env)
    allowed = POLICY[EVENTS[event].action or ""]

    wrong = []
    for role, s in socks.items():
        ack = await s.call(event, payload)
        code = None if ack["ok"] else ack["error"]["code"]
        refused = code == "forbidden_role"
        if refused == (role in allowed):
            wrong.append((role.value, "allowed" if role in allowed else "refused", ack))
    assert wrong == []


# -- per-ticket checks beyond the role


async def test_a_clerk_cannot_touch_a_ticket_another_clerk_called(sock: Any) -> None:
    worker = await sock("worker")
    clerk = await sock("clerk")
    setup = await gaoqiao_setup(worker.user)
    lines = await (
        await worker.user.get("/api/v1/lines", params={"site_id": str(setup["point"]["parent_id"])})
    ).json()
    hr_line = next(ln for ln in lines if ln["department"] == "human_resources")
    ticket = await worker.ok("ticket:take", take_payload(setup, None))
    await clerk.ok("queue:call_next")

    for username in ("clerk.t07.r", "clerk.t01.m"):
        other: Sock = await sock(username)
        tid = ticket["id"]
        for event, payload in (
            ("ticket:finish", {"ticket_id": tid, "outcome": "completed"}),
            ("ticket:finish", {"ticket_id": tid, "outcome": "returned", "reason": "不是我的"}),
            ("ticket:transfer", {"ticket_id": tid, "line_id": hr_line["id"]}),
            ("ticket:recall", {"ticket_id": tid}),
        ):
            err = await other.err(event, payload)
            assert err["code"] == "ticket.not_yours", (username, event, err)

    # Nothing changed: the ticket is still the first clerk's, still called, and theirs to finish.
    view = await worker.ok("ticket:watch", {"ticket_id": ticket["id"]})
    assert view["status"] == "called"
    assert view["number"] == "M001"
    assert view["recalls"] == 0
    assert view["called_by"] == clerk.user.me["id"]
    assert worker.heard["ticket:called"] and all(
        "recall" not in d for d in worker.heard["ticket:called"]
    )
    done = await clerk.ok(
        "ticket:finish", {"ticket_id": ticket["id"], "outcome": "returned", "reason": "演示"}
    )
    assert done["status"] == "done"


async def test_a_worker_of_another_town_cannot_see_or_answer_a_ticket(sock: Any) -> None:
    worker = await sock("worker")
    clerk = await sock("clerk")
    stranger = await sock("worker.t01-c01")
    setup = await gaoqiao_setup(worker.user)
    ticket = await worker.ok("ticket:take", take_payload(setup, None))

    missing = await stranger.err("ticket:watch", {"ticket_id": 999_999})
    assert missing["code"] == "not_found"
    for event in ("ticket:watch", "ticket:cancel"):
        err = await stranger.err(event, {"ticket_id": ticket["id"]})
        assert err["code"] == "not_found", (event, err)

    await clerk.ok("queue:call_next")
    await worker.wait("ticket:called")
    for event in ("ticket:answer", "ticket:watch", "ticket:cancel"):
        err = await stranger.err(event, {"ticket_id": ticket["id"]})
        assert err["code"] == "not_found", (event, err)
    # The stranger hears nothing of the ticket, and cannot take one at another town's point.
    assert (await stranger.ok("state:sync"))["tickets"] == []
    assert stranger.heard["ticket:called"] == []
    assert stranger.heard["ticket:update"] == []
    err = await stranger.err("ticket:take", take_payload(setup, None))
    assert err["code"] == "forbidden_site"

    # The real point can still answer.
    answered = await worker.ok("ticket:answer", {"ticket_id": ticket["id"]})
    assert answered["ticket_id"] == ticket["id"]
