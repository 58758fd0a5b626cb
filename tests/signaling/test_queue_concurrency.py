"""Many clerks pressing "call next" at the same moment, on both databases.

Each clerk is a real socket on the in-process server, so every press runs as its own handler
in its own transaction, interleaved on one event loop as on a busy node.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import text
from sqlmodel import col, select

from core.db import Database
from core.settings import Settings
from signaling.models import Ticket, TicketStatus
from tests.signaling.helpers import Sock, fill_queue

CLERKS = 8
TICKETS = 40
# How long the test holds a ticket's row lock while another clerk calls next. A clerk who
# skips the locked row is answered in milliseconds; one made to wait for the row is answered
# only once the lock goes, with the locked ticket. Generous, so a loaded machine cannot fail
# the test by being slow: the test fails on which ticket the clerk gets, not on time.
HOLD_SECONDS = 15


async def _clerks(as_user: Any, names: list[str]) -> list[Sock]:
    """Each clerk signed in and connected, one after the other (the race is the presses)."""
    return [await Sock(await as_user(n)).connect() for n in names]


async def _still_open(db_url: str, ids: set[int]) -> list[int]:
    db = Database(db_url)
    try:
        async with db.session() as s:
            rows = await s.exec(
                select(Ticket.id).where(col(Ticket.id).in_(ids), Ticket.status != TicketStatus.done)
            )
            return sorted(i for i in rows.all() if i is not None)
    finally:
        await db.dispose()


async def test_clerks_calling_next_at_once_never_share_lose_or_miss_a_ticket(
    settings: Settings, as_user: Any
) -> None:
    url = settings.effective_database_url
    names, waiting = await fill_queue(url, clerks=CLERKS, tickets=TICKETS, prefix="press")
    assert len(waiting) == TICKETS
    socks = await _clerks(as_user, names)
    refused: list[tuple[str, str, str]] = []
    got: dict[str, list[int]] = {n: [] for n in names}

    async def press(sock: Sock, event: str, data: Any = None) -> Any:
        ack = await sock.call(event, data, within=60)
        if not ack["ok"]:
            refused.append((sock.user.me["username"], event, ack["error"]["code"]))
        return ack.get("data")

    async def finish(sock: Sock, ticket_id: int) -> None:
        await press(
            sock, "ticket:finish", {"ticket_id": ticket_id, "outcome": "returned", "reason": "压测"}
        )

    try:
        # Everyone presses at the same moment, with more tickets waiting than clerks: each
        # clerk is given a ticket of their own, none is told the queue is empty.
        first = await asyncio.gather(*(press(s, "queue:call_next") for s in socks))
        assert refused == [], f"clerks were refused while calling next: {refused}"
        firsts = [d["ticket"]["id"] if d and d["ticket"] else None for d in first]
        assert None not in firsts, f"a clerk was told no ticket waits while {TICKETS} did"
        assert len(set(firsts)) == CLERKS, f"two clerks were given one ticket: {firsts}"

        async def serve(sock: Sock, ticket_id: int) -> None:
            mine = got[sock.user.me["username"]]
            while True:
                mine.append(ticket_id)
                await finish(sock, ticket_id)
                data = await press(sock, "queue:call_next")
                if not data or data["ticket"] is None:
                    return
                ticket_id = data["ticket"]["id"]

        await asyncio.wait_for(
            asyncio.gather(*(serve(s, t) for s, t in zip(socks, firsts, strict=True))), 240
        )
    finally:
        for s in socks:
            await s.close()
    assert refused == [], f"clerks were refused while calling next: {refused}"
    assigned = [t for ids in got.values() for t in ids]
    twice = sorted({t for t in assigned if assigned.count(t) > 1})
    assert twice == [], f"tickets given to two clerks: {twice}"
    assert set(assigned) == waiting, f"tickets never called: {sorted(waiting - set(assigned))}"
    assert await _still_open(url, waiting) == []


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
async def test_a_clerk_is_given_the_next_ticket_while_another_assignment_holds_the_first(
    settings: Settings, as_user: Any
) -> None:
    """Another node's "call next" has the head of the queue in an open transaction (a slow
    node, or one that dies mid-way). A clerk pressing now gets the second ticket at once;
    they are neither made to wait for that node nor given the ticket it holds."""
    url = settings.effective_database_url
    (name,), waiting = await fill_queue(url, clerks=1, tickets=2, prefix="held")
    db = Database(url)
    try:
        async with db.session() as s:
            order = await s.exec(
                select(Ticket.id)
                .where(col(Ticket.id).in_(waiting))
                .order_by(col(Ticket.priority).desc(), col(Ticket.waiting_since))
            )
            head, second = order.all()
        (clerk,) = await _clerks(as_user, [name])
        try:
            async with db.session() as holder:
                await holder.exec(
                    text("SELECT id FROM ticket WHERE id = :id FOR UPDATE").bindparams(id=head)
                )
                pressed = asyncio.ensure_future(clerk.call("queue:call_next", within=60))
                await asyncio.wait([pressed], timeout=HOLD_SECONDS)
                answered_while_held = pressed.done()
                await holder.rollback()  # the other node's transaction goes away unfinished
            ack = await pressed
            assert ack["ok"], ack
            given = ack["data"]["ticket"]
            assert given is not None, "the clerk was told no ticket waits while one did"
            assert given["id"] != head, (
                "the clerk was made to wait for the ticket another assignment held, "
                f"answered only after it let go ({answered_while_held=})"
            )
            assert given["id"] == second
            # The ticket the other node let go of is still there: the next press gets it.
            await clerk.ok(
                "ticket:finish", {"ticket_id": second, "outcome": "returned", "reason": "测试"}
            )
            again = await clerk.ok("queue:call_next")
            assert again["ticket"] is not None and again["ticket"]["id"] == head
        finally:
            await clerk.close()
    finally:
        await db.dispose()
