"""Tickets and the queue: numbering, priority, positions, cancel, call next, recall, no-show,
transfer, finish, durability across a restart, and line status."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from sqlalchemy import func
from sqlmodel import col, select

from core.db import Database, utcnow
from core.models import Case
from core.settings import Settings
from signaling import sweeps
from signaling.models import Call, Ticket
from signaling.views import SIGNALING
from tests.conftest import DEMO_PASSWORD, User
from tests.signaling.helpers import (
    Sock,
    gaoqiao_setup,
    measured_handling,
    new_resident,
    take_payload,
)
from tests.uploads.helpers import complete_materials
from web.app import create_app

# -- helpers


async def hr_setup(worker: User) -> dict[str, Any]:
    """The worker's point, the 高桥镇·人力社保 line and a human-resources item."""
    setup = await gaoqiao_setup(worker)
    lines = await (
        await worker.get("/api/v1/lines", params={"site_id": str(setup["point"]["parent_id"])})
    ).json()
    line = next(ln for ln in lines if ln["department"] == "human_resources")
    item = (await (await worker.get("/api/v1/items/RS-001")).json()) | {"code": "RS-001"}
    assert item["department"] == "human_resources"
    return {"point": setup["point"], "line": line, "item": item}


async def get_case(user: User, case_id: int) -> dict[str, Any]:
    resp = await user.get(f"/api/v1/cases/{case_id}")
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def count_rows(settings: Settings) -> tuple[int, int]:
    """(tickets, cases) in the test's database."""
    db = Database(settings.effective_database_url)
    try:
        async with db.session() as s:
            tickets = (await s.exec(select(func.count()).select_from(Ticket))).one()
            cases = (await s.exec(select(func.count()).select_from(Case))).one()
            return int(tickets), int(cases)
    finally:
        await db.dispose()


async def sweep_later(client: Any, sweep: Callable[..., Awaitable[int]], seconds: float) -> int:
    """Run a service sweep through the app (commit, then emit) as if `seconds` had passed."""
    sg = client.app[SIGNALING]
    now = utcnow() + dt.timedelta(seconds=seconds)
    return await sg.run(lambda s, o: sweep(session=s, settings=sg.settings, outbox=o, now=now))


async def answered_call(sock: Any) -> dict[str, Any]:
    """worker takes a number for an 84-year-old, clerk calls it, the point answers."""
    worker = await sock("worker")
    clerk = await sock("clerk")
    setup = await gaoqiao_setup(worker.user)
    ticket = await worker.ok("ticket:take", take_payload(setup, await new_resident(worker.user)))
    called = await clerk.ok("queue:call_next")
    answer = await worker.ok("ticket:answer", {"ticket_id": ticket["id"]})
    return {
        "worker": worker,
        "clerk": clerk,
        "setup": setup,
        "ticket": ticket,
        "call_id": called["call"]["call_id"],
        "answer": answer,
    }


class Node:
    """One running app (a node) and the users' sockets connected to it."""

    def __init__(self, tc: Any, opened: list[Sock], sessions: list[aiohttp.ClientSession]):
        self.tc = tc
        self.base = str(tc.make_url("")).rstrip("/")
        self.opened = opened
        self.sessions = sessions
        self.mine: list[Sock] = []

    async def sock(self, username: str) -> Sock:
        http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        self.sessions.append(http)
        user = User(http, self.base)
        resp = await user.login(username, DEMO_PASSWORD)
        assert resp.status == 200, await resp.text()
        s = await Sock(user).connect()
        self.opened.append(s)
        self.mine.append(s)
        return s

    async def stop(self) -> None:
        for s in self.mine:
            await s.close()
        await self.tc.close()


@pytest.fixture
async def node(
    settings: Settings, aiohttp_client: Any
) -> AsyncIterator[Callable[[Settings], Awaitable[Node]]]:
    """node(settings) -> a started app; takes `settings` so the database outlives the apps."""
    opened: list[Sock] = []
    sessions: list[aiohttp.ClientSession] = []

    async def start(settings: Settings) -> Node:
        return Node(await aiohttp_client(create_app(settings)), opened, sessions)

    yield start
    for s in opened:
        await s.close()
    for h in sessions:
        await h.close()


# -- numbering


async def test_numbers_per_line_increase_with_the_line_prefix(sock: Any) -> None:
    worker = await sock("worker")
    civil = await gaoqiao_setup(worker.user)
    hr = await hr_setup(worker.user)
    assert civil["line"]["ticket_prefix"] == "M"
    assert hr["line"]["ticket_prefix"] == "R"

    numbers = [(await worker.ok("ticket:take", take_payload(civil, None)))["number"]]
    numbers.append((await worker.ok("ticket:take", take_payload(civil, None)))["number"])
    numbers.append((await worker.ok("ticket:take", take_payload(hr, None)))["number"])
    numbers.append((await worker.ok("ticket:take", take_payload(civil, None)))["number"])
    numbers.append((await worker.ok("ticket:take", take_payload(hr, None)))["number"])
    assert numbers == ["M001", "M002", "R001", "M003", "R002"]


# -- priority, positions, estimates


async def test_priority_residents_first_then_first_come_first_served(
    sock: Any, settings: Settings
) -> None:
    await measured_handling(settings.effective_database_url, seconds=300)
    worker = await sock("worker")
    clerk = await sock("clerk")
    setup = await gaoqiao_setup(worker.user)

    async def take(years: int, seq: int, **extra: Any) -> dict[str, Any]:
        rid = await new_resident(worker.user, years, seq, **extra)
        return await worker.ok("ticket:take", take_payload(setup, rid))

    a = await take(40, 101)
    b = await take(45, 103)
    c = await take(84, 105)
    d = await take(50, 107, disabled=True)
    e = await take(30, 109)
    assert [t["priority_reason"] for t in (a, b, c, d, e)] == ["", "", "age80", "disabled", ""]
    # Positions as taken: the 84-year-old goes before both earlier normal tickets.
    assert [a["position"], b["position"], c["position"], d["position"], e["position"]] == [
        1,
        2,
        1,
        2,
        5,
    ]
    # The pushes for the takes have all arrived once e's is heard (one push, queue order).
    await worker.wait("ticket:update", lambda x: x["ticket"]["id"] == e["id"])
    worker.heard["ticket:update"].clear()

    first = await clerk.ok("queue:call_next")
    assert first["ticket"]["id"] == c["id"]
    ring = await worker.wait("ticket:called")
    assert ring["ticket"]["id"] == c["id"]

    # Every holder hears its new place; one clerk is online, so the wait grows per place.
    status = (await clerk.ok("line:watch", {"line_ids": [setup["line"]["id"]]}))[0]
    avg = status["avg_handling_seconds"]
    assert avg == 300
    for ticket, place in ((d, 1), (a, 2), (b, 3), (e, 4)):
        upd = await worker.wait(
            "ticket:update", lambda x, t=ticket: x["ticket"]["id"] == t["id"], within=5
        )
        assert upd["ticket"]["position"] == place, upd
        assert upd["ticket"]["eta_seconds"] == place * avg, upd

    # The rest come out priority first, then in the order they were taken.
    order = [c["id"]]
    for _ in range(4):
        await clerk.ok(
            "ticket:finish", {"ticket_id": order[-1], "outcome": "returned", "reason": "测试"}
        )
        order.append((await clerk.ok("queue:call_next"))["ticket"]["id"])
    assert order == [c["id"], d["id"], a["id"], b["id"], e["id"]]


async def test_eta_is_unknown_while_no_clerk_of_the_line_is_online(
    sock: Any, settings: Settings
) -> None:
    await measured_handling(settings.effective_database_url)
    worker = await sock("worker")
    setup = await gaoqiao_setup(worker.user)
    first = await worker.ok("ticket:take", take_payload(setup, None))
    second = await worker.ok("ticket:take", take_payload(setup, None))
    assert (first["position"], first["eta_seconds"]) == (1, None)
    assert (second["position"], second["eta_seconds"]) == (2, None)

    # A clerk of another line coming online changes nothing for this line.
    await sock("clerk.t07.r")
    synced = await worker.ok("state:sync")
    assert [(t["position"], t["eta_seconds"]) for t in synced["tickets"]] == [(1, None), (2, None)]

    clerk = await sock("clerk")
    upd = await worker.wait(
        "ticket:update",
        lambda x: x["ticket"]["id"] == second["id"] and x["ticket"]["eta_seconds"] is not None,
        within=5,
    )
    assert upd["ticket"]["position"] == 2
    assert upd["ticket"]["eta_seconds"] > 0

    await clerk.close()
    gone = await worker.wait(
        "ticket:update",
        lambda x: x["ticket"]["id"] == second["id"] and x["ticket"]["eta_seconds"] is None,
        within=5,
    )
    assert gone["ticket"]["position"] == 2


# -- refusals when taking


async def test_take_refusals_save_nothing(sock: Any, settings: Settings) -> None:
    worker = await sock("worker")
    setup = await gaoqiao_setup(worker.user)
    before = await count_rows(settings)

    err = await worker.err("ticket:take", take_payload(setup, None, consent=False))
    assert err["code"] == "queue.consent"

    in_person = await (await worker.user.get("/api/v1/items/MZ-005")).json()
    assert in_person["remote_capable"] is False
    err = await worker.err("ticket:take", take_payload(setup, None, item_code="MZ-005"))
    assert err["code"] == "queue.remote_only"

    # A human-resources item on the civil-affairs line.
    err = await worker.err("ticket:take", take_payload(setup, None, item_code="RS-001"))
    assert err["code"] == "queue.line_mismatch"

    assert await count_rows(settings) == before
    assert (await worker.ok("state:sync"))["tickets"] == []
    # No number was used up by the refusals.
    assert (await worker.ok("ticket:take", take_payload(setup, None)))["number"] == "M001"


# -- cancel


async def test_cancel_by_the_taker_cancels_the_case_once(sock: Any) -> None:
    worker = await sock("worker")
    setup = await gaoqiao_setup(worker.user)
    keep = await worker.ok("ticket:take", take_payload(setup, None))
    ticket = await worker.ok("ticket:take", take_payload(setup, None))
    assert ticket["position"] == 2

    cancelled = await worker.ok("ticket:cancel", {"ticket_id": ticket["id"]})
    assert cancelled["status"] == "cancelled"
    case = await get_case(worker.user, ticket["case_id"])
    assert case["status"] == "cancelled"
    assert "status.cancelled" in [e["kind"] for e in case["timeline"]]

    err = await worker.err("ticket:cancel", {"ticket_id": ticket["id"]})
    assert err["code"] == "ticket.state"

    synced = await worker.ok("state:sync")
    assert [(t["id"], t["position"]) for t in synced["tickets"]] == [(keep["id"], 1)]


# -- call next


async def test_call_next_empty_busy_and_other_lines(sock: Any) -> None:
    worker = await sock("worker")
    clerk = await sock("clerk")
    setup = await gaoqiao_setup(worker.user)

    assert await clerk.ok("queue:call_next") == {"ticket": None, "call": None}

    first = await worker.ok("ticket:take", take_payload(setup, None))
    second = await worker.ok("ticket:take", take_payload(setup, None))

    # Clerks of other lines (same town, other department; same department, other town)
    # never get this line's tickets.
    for other in ("clerk.t07.r", "clerk.t01.m"):
        other_clerk = await sock(other)
        assert await other_clerk.ok("queue:call_next") == {"ticket": None, "call": None}

    got = await clerk.ok("queue:call_next")
    assert got["ticket"]["id"] == first["id"]
    err = await clerk.err("queue:call_next")
    assert err["code"] == "queue.busy"
    assert "M001" in err["message"]

    # Still busy once the point answers; free again after finishing.
    await worker.ok("ticket:answer", {"ticket_id": first["id"]})
    assert (await clerk.err("queue:call_next"))["code"] == "queue.busy"
    await clerk.ok(
        "ticket:finish", {"ticket_id": first["id"], "outcome": "returned", "reason": "测试"}
    )
    assert (await clerk.ok("queue:call_next"))["ticket"]["id"] == second["id"]


async def test_two_call_nexts_sent_at_once_give_the_clerk_one_ticket(
    sock: Any, settings: Settings
) -> None:
    """A double click: one ticket is called, the other stays waiting for the next clerk."""
    worker = await sock("worker")
    setup = await gaoqiao_setup(worker.user)
    # One more ticket than rounds: the losing call next always finds another ticket waiting,
    # and must be told the clerk is busy rather than be given it.
    taken = [await worker.ok("ticket:take", take_payload(setup, None)) for _ in range(4)]
    # Two sockets of the same clerk (two tabs), each sending call next at the same moment.
    tabs = [await sock("clerk") for _ in range(2)]
    for _ in range(3):
        answers = await asyncio.gather(*(t.call("queue:call_next") for t in tabs))
        called = [a["data"]["ticket"]["id"] for a in answers if a["ok"] and a["data"]["ticket"]]
        refused = [a["error"]["code"] for a in answers if not a["ok"]]
        assert len(called) == 1, answers
        assert refused == ["queue.busy"], answers
        await tabs[0].ok(
            "ticket:finish", {"ticket_id": called[0], "outcome": "returned", "reason": "测试"}
        )
    db = Database(settings.database_url)
    try:
        async with db.session() as s:
            ids = [t["id"] for t in taken]
            rows = (await s.exec(select(Ticket).where(col(Ticket.id).in_(ids)))).all()
            assert sorted(t.status for t in rows) == ["done"] * 3 + ["waiting"]
            made = (await s.exec(select(Call).where(col(Call.ticket_id).in_(ids)))).all()
            assert len(made) == 3, "one call per ticket, none for a refused call next"
    finally:
        await db.dispose()


# -- recall and no-show


async def test_recall_rings_the_point_again(sock: Any) -> None:
    worker = await sock("worker")
    clerk = await sock("clerk")
    setup = await gaoqiao_setup(worker.user)
    ticket = await worker.ok("ticket:take", take_payload(setup, None))
    called = await clerk.ok("queue:call_next")
    await worker.wait("ticket:called")

    ack = await clerk.ok("ticket:recall", {"ticket_id": ticket["id"]})
    assert ack == {"ticket_id": ticket["id"], "recalls": 1}
    again = await worker.wait("ticket:called", lambda d: d.get("recall") == 1)
    assert again["call_id"] == called["call"]["call_id"]
    assert again["ticket"]["recalls"] == 1

    assert (await clerk.ok("ticket:recall", {"ticket_id": ticket["id"]}))["recalls"] == 2
    await worker.wait("ticket:called", lambda d: d.get("recall") == 2)

    # Once answered there is nothing to ring.
    await worker.ok("ticket:answer", {"ticket_id": ticket["id"]})
    assert (await clerk.err("ticket:recall", {"ticket_id": ticket["id"]}))["code"] == "ticket.state"
    case = await get_case(clerk.user, ticket["case_id"])
    assert [e["kind"] for e in case["timeline"]].count("ticket.recalled") == 2


async def test_unanswered_ticket_is_recalled_then_no_show(
    sock: Any, client: Any, settings: Settings
) -> None:
    worker = await sock("worker")
    clerk = await sock("clerk")
    setup = await gaoqiao_setup(worker.user)
    ticket = await worker.ok("ticket:take", take_payload(setup, None))
    called = await clerk.ok("queue:call_next")
    call_id = called["call"]["call_id"]
    await worker.wait("ticket:called")
    late = settings.ticket_answer_seconds + 5

    # Not yet late: nothing happens.
    assert await sweep_later(client, sweeps.sweep_unanswered, 0) == 0

    assert await sweep_later(client, sweeps.sweep_unanswered, late) == 1
    again = await worker.wait("ticket:called", lambda d: d.get("recall") == 1)
    assert again["ticket"]["status"] == "called"
    assert again["call_id"] == call_id

    assert await sweep_later(client, sweeps.sweep_unanswered, late) == 1
    upd = await worker.wait("ticket:update", lambda d: d["ticket"]["status"] == "no_show")
    assert upd["ticket"]["id"] == ticket["id"]
    ended = await clerk.wait("call:ended")
    assert ended == {"call_id": call_id, "reason": "no_show"}

    case = await get_case(clerk.user, ticket["case_id"])
    assert case["status"] == "cancelled"
    cancel = next(e for e in case["timeline"] if e["kind"] == "status.cancelled")
    assert cancel["data"]["reason"] == "no_show"
    # The point can no longer answer; the clerk is free for the next one.
    assert (await worker.err("ticket:answer", {"ticket_id": ticket["id"]}))["code"] == (
        "ticket.state"
    )
    assert await clerk.ok("queue:call_next") == {"ticket": None, "call": None}
    assert (await worker.ok("state:sync"))["tickets"] == []


# -- transfer and finish


async def test_transfer_to_another_line_keeps_the_wait(sock: Any) -> None:
    env = await answered_call(sock)
    worker, clerk, ticket = env["worker"], env["clerk"], env["ticket"]
    hr = await hr_setup(worker.user)

    moved = await clerk.ok(
        "ticket:transfer",
        {"ticket_id": ticket["id"], "line_id": hr["line"]["id"], "reason": "属社保事项"},
    )
    assert moved["id"] == ticket["id"]
    assert moved["status"] == "waiting"
    assert moved["line_id"] == hr["line"]["id"]
    assert moved["number"] == "R001"
    assert moved["priority_reason"] == "age80"
    assert dt.datetime.fromisoformat(moved["waiting_since"]) == dt.datetime.fromisoformat(
        ticket["waiting_since"]
    )
    assert moved["position"] == 1

    for s in (worker, clerk):
        ended = await s.wait("call:ended")
        assert ended == {"call_id": env["call_id"], "reason": "transferred"}
    upd = await worker.wait("ticket:update", lambda d: d.get("transferred") is True)
    assert upd["ticket"]["number"] == "R001"

    case = await get_case(clerk.user, ticket["case_id"])
    kinds = [e["kind"] for e in case["timeline"]]
    assert "status.transferred" in kinds
    assert case["status"] == "open"
    assert case["line_id"] == hr["line"]["id"]

    # The old clerk is free (and gets nothing); the new line's clerk gets the ticket.
    assert await clerk.ok("queue:call_next") == {"ticket": None, "call": None}
    hr_clerk = await sock("clerk.t07.r")
    got = await hr_clerk.ok("queue:call_next")
    assert got["ticket"]["id"] == ticket["id"]
    assert got["ticket"]["number"] == "R001"


async def test_finish_returned_needs_a_reason_accepted_closes_the_case(sock: Any) -> None:
    env = await answered_call(sock)
    worker, clerk, ticket = env["worker"], env["clerk"], env["ticket"]

    for reason in ("", "   "):
        err = await clerk.err(
            "ticket:finish", {"ticket_id": ticket["id"], "outcome": "returned", "reason": reason}
        )
        assert err["code"] == "ticket.reason_required"
    case = await get_case(clerk.user, ticket["case_id"])
    assert case["status"] == "in_service"

    # Accepting for approval needs every required material accepted; the error names them.
    err = await clerk.err("ticket:finish", {"ticket_id": ticket["id"], "outcome": "accepted"})
    assert err["code"] == "case.materials_incomplete"
    assert "申请人身份证" in err["message"] and "户口簿" in err["message"]
    assert {d["state"] for d in err["details"]} == {"missing"}
    assert (await get_case(clerk.user, ticket["case_id"]))["status"] == "in_service"
    await complete_materials(worker.user, clerk.user, ticket["case_id"])

    done = await clerk.ok("ticket:finish", {"ticket_id": ticket["id"], "outcome": "accepted"})
    assert done == {"ticket_id": ticket["id"], "status": "done", "outcome": "accepted"}
    fin = await worker.wait("case:finished")
    assert fin["outcome"] == "accepted"
    case = await get_case(clerk.user, ticket["case_id"])
    assert case["status"] == "accepted"
    assert (await clerk.err("ticket:finish", {"ticket_id": ticket["id"], "outcome": "completed"}))[
        "code"
    ] == "ticket.state"


async def test_finish_returned_with_a_reason(sock: Any) -> None:
    env = await answered_call(sock)
    clerk, ticket = env["clerk"], env["ticket"]
    done = await clerk.ok(
        "ticket:finish",
        {"ticket_id": ticket["id"], "outcome": "returned", "reason": "缺少户口簿"},
    )
    assert done["outcome"] == "returned"
    case = await get_case(clerk.user, ticket["case_id"])
    assert case["status"] == "returned"
    ev = next(e for e in case["timeline"] if e["kind"] == "status.returned")
    assert ev["data"]["reason"] == "缺少户口簿"
    assert ev["data"]["from"] == "in_service"

    # Sent again (a resend after a drop, another tab): refused, and nothing changes.
    again = {"ticket_id": ticket["id"], "outcome": "returned", "reason": "再次"}
    assert (await clerk.err("ticket:finish", again))["code"] == "ticket.state"
    after = await get_case(clerk.user, ticket["case_id"])
    assert after["status"] == "returned"
    assert [e["kind"] for e in after["timeline"]] == [e["kind"] for e in case["timeline"]]


# -- durability


async def test_queue_survives_a_restart(node: Any, settings: Settings) -> None:
    first = await node(settings)
    worker = await first.sock("worker")
    setup = await gaoqiao_setup(worker.user)

    async def take(years: int, seq: int, **extra: Any) -> dict[str, Any]:
        rid = await new_resident(worker.user, years, seq, **extra)
        return await worker.ok("ticket:take", take_payload(setup, rid))

    a = await take(40, 201)
    b = await take(84, 203)
    c = await take(55, 205, disabled=True)
    d = await take(35, 207)
    e = await take(90, 209)
    before = await worker.ok("state:sync")
    shape = [(t["id"], t["number"], t["position"]) for t in before["tickets"]]
    assert [x[0] for x in shape] == [a["id"], b["id"], c["id"], d["id"], e["id"]]
    assert [x[2] for x in shape] == [4, 1, 2, 5, 3]
    await first.stop()

    second = await node(settings)
    worker2 = await second.sock("worker")
    after = await worker2.ok("state:sync")
    assert [(t["id"], t["number"], t["position"]) for t in after["tickets"]] == shape
    assert all(t["status"] == "waiting" for t in after["tickets"])

    clerk = await second.sock("clerk")
    got = await clerk.ok("queue:call_next")
    assert got["ticket"]["id"] == b["id"]
    ring = await worker2.wait("ticket:called")  # state:sync re-subscribed the holder
    assert ring["ticket"]["id"] == b["id"]
    # Numbering continues on the same day's sequence.
    assert (await worker2.ok("ticket:take", take_payload(setup, None)))["number"] == "M006"


# -- line status


async def test_line_watch_and_status_pushes(sock: Any) -> None:
    worker = await sock("worker")
    setup = await gaoqiao_setup(worker.user)
    line_id = setup["line"]["id"]

    def shape(s: dict[str, Any]) -> tuple[int, int, int]:
        return s["waiting"], s["clerks_online"], s["clerks_available"]

    watched = await worker.ok("line:watch", {"line_ids": [line_id]})
    assert len(watched) == 1
    assert watched[0]["line_id"] == line_id
    assert shape(watched[0]) == (0, 0, 0)

    async def heard(expected: tuple[int, int, int]) -> dict[str, Any]:
        return await worker.wait(
            "line:status",
            lambda s: s["line_id"] == line_id and shape(s) == expected,
            within=5,
        )

    clerk = await sock("clerk")
    await heard((0, 1, 1))
    await worker.ok("ticket:take", take_payload(setup, None))
    await worker.ok("ticket:take", take_payload(setup, None))
    await heard((2, 1, 1))

    assert await clerk.ok("presence:set", {"status": "away"}) == {"status": "away"}
    await heard((2, 1, 0))
    assert shape((await worker.ok("line:watch", {"line_ids": [line_id]}))[0]) == (2, 1, 0)

    worker.heard["line:status"].clear()
    await clerk.ok("presence:set", {"status": "available"})
    await heard((2, 1, 1))

    # Serving someone makes the clerk unavailable; leaving takes them offline.
    await clerk.ok("queue:call_next")
    await heard((1, 1, 0))
    await clerk.close()
    await heard((1, 0, 0))
