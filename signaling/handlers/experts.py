"""Inviting an expert into a call, and accepting an invite."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from signaling import experts
from signaling import payloads as pl
from signaling.handlers.spec import CALL_ERRORS, EventSpec

if TYPE_CHECKING:
    from signaling.server import Conn, Signaling


async def h_invite(sg: Signaling, sid: str, conn: Conn, p: pl.ExpertInviteIn) -> Any:
    pid = await sg.my_pid(conn, p.call_id)
    invite = await sg.run(
        lambda s, o: experts.invite_expert(
            session=s,
            settings=sg.settings,
            principal=conn.principal,
            outbox=o,
            call_id=p.call_id,
            pid=pid,
            skill=p.skill,
            question=p.question,
        )
    )
    return {"invite_id": invite.id, "expires_at": invite.expires_at.isoformat()}


async def h_accept(sg: Signaling, sid: str, conn: Conn, p: pl.InviteRef) -> Any:
    join = await sg.run(
        lambda s, o: experts.accept_invite(
            session=s,
            settings=sg.settings,
            principal=conn.principal,
            outbox=o,
            invite_id=p.invite_id,
        )
    )
    await sg.join_rooms(sid, conn, join)
    return join


EVENTS = (
    EventSpec(
        "expert:invite",
        pl.ExpertInviteIn,
        "queue.serve",
        "Invite the first available expert with a skill into my call.",
        h_invite,
        "{invite_id, expires_at}",
        (*CALL_ERRORS, "call.full", "call.ended"),
    ),
    EventSpec(
        "expert:accept",
        pl.InviteRef,
        "expert.accept",
        "Accept an invite; the first expert to accept joins the call.",
        h_accept,
        "CallJoin",
        ("invite.taken", "invite.skill", "call.full", "not_found"),
    ),
)
