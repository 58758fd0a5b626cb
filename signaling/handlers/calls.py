"""Being in a call: rejoining, leaving, the SDP/ICE relay, connection reports, stream labels."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from core.errors import AppError, Forbidden
from core.events import Audience
from signaling import calls
from signaling import payloads as pl
from signaling.events import PeerState, TrackLabelled
from signaling.handlers.spec import CALL_ERRORS, EventSpec

if TYPE_CHECKING:
    from signaling.server import Conn, Signaling


async def h_rejoin(sg: Signaling, sid: str, conn: Conn, p: pl.CallRejoin) -> Any:
    join = await sg.run(
        lambda s, o: calls.rejoin(
            session=s,
            settings=sg.settings,
            principal=conn.principal,
            outbox=o,
            call_id=p.call_id,
            resume_token=p.resume_token,
        )
    )
    await sg.join_rooms(sid, conn, join)
    return join


async def h_leave(sg: Signaling, sid: str, conn: Conn, p: pl.CallRef) -> Any:
    pid = await sg.my_pid(conn, p.call_id)
    await sg.run(lambda s, o: calls.leave(session=s, outbox=o, call_id=p.call_id, pid=pid))
    await sg.forget_call(conn, p.call_id)
    await sg.leave(sid, Audience.call(p.call_id), Audience.participant(pid))
    return {"call_id": p.call_id}


async def h_signal(sg: Signaling, sid: str, conn: Conn, p: pl.CallSignal) -> Any:
    """The relay's hot path: two membership checks and one emit, no database.

    The message is built as a dict (the shape of events.SignalRelayed): no model per message.
    """
    pid = await sg.my_pid(conn, p.call_id)
    if p.to == pid or not await sg.registry.has(p.call_id, p.to):
        raise Forbidden("call.target")
    if p.kind in ("offer", "answer") and not p.sdp:
        raise AppError("validation", details=[{"loc": ["sdp"], "msg": "required for " + p.kind}])
    if p.kind == "candidate" and p.candidate is None:
        raise AppError("validation", details=[{"loc": ["candidate"], "msg": "required"}])
    message = {"call_id": p.call_id, "from": pid, "kind": p.kind, "ice_restart": p.ice_restart}
    if p.sdp is not None:
        message["sdp"] = p.sdp
    if p.candidate is not None:
        message["candidate"] = p.candidate.model_dump(exclude_none=True)
    await sg.sio.emit("call:signal", message, room=Audience.participant(p.to).room)
    return None


async def h_state(sg: Signaling, sid: str, conn: Conn, p: pl.CallState) -> Any:
    pid = await sg.my_pid(conn, p.call_id)
    if p.state == "reconnecting":
        await sg.relay(
            PeerState(call_id=p.call_id, participant_id=pid, state=p.state),
            Audience.call(p.call_id),
            skip_sid=sid,
        )
        return None
    await sg.run(
        lambda s, o: calls.record_state(session=s, call_id=p.call_id, pid=pid, state=p.state)
    )
    return None


async def h_stats(sg: Signaling, sid: str, conn: Conn, p: pl.CallStats) -> Any:
    pid = await sg.my_pid(conn, p.call_id)
    summary = p.model_dump(exclude={"call_id"}, exclude_none=True)
    await sg.run(
        lambda s, o: calls.record_stats(session=s, call_id=p.call_id, pid=pid, summary=summary)
    )
    return None


async def h_track(sg: Signaling, sid: str, conn: Conn, p: pl.CallTrack) -> Any:
    pid = await sg.my_pid(conn, p.call_id)
    await sg.relay(
        TrackLabelled(
            call_id=p.call_id,
            participant_id=pid,
            stream_id=p.stream_id,
            kind=p.kind,
            active=p.active,
        ),
        Audience.call(p.call_id),
        skip_sid=sid,
    )
    return None


EVENTS = (
    EventSpec(
        "call:rejoin",
        pl.CallRejoin,
        "call.participate",
        "Come back to a call after a drop, within the grace period.",
        h_rejoin,
        "CallJoin",
        ("call.ended", "call.resume"),
    ),
    EventSpec(
        "call:leave",
        pl.CallRef,
        "call.participate",
        "Leave a call; it ends when nobody is left.",
        h_leave,
        "{call_id}",
        CALL_ERRORS,
    ),
    EventSpec(
        "call:signal",
        pl.CallSignal,
        "call.participate",
        "Relay an SDP offer/answer or an ICE candidate to one participant.",
        h_signal,
        "null",
        (*CALL_ERRORS, "call.target", "validation"),
    ),
    EventSpec(
        "call:state",
        pl.CallState,
        "call.participate",
        "Report connection progress (kept in the call log).",
        h_state,
        "null",
        CALL_ERRORS,
    ),
    EventSpec(
        "call:stats",
        pl.CallStats,
        "call.participate",
        "Report a getStats() summary (kept in the call log).",
        h_stats,
        "null",
        CALL_ERRORS,
    ),
    EventSpec(
        "call:track",
        pl.CallTrack,
        "call.participate",
        "Label one of my streams as camera or screen share.",
        h_track,
        "null",
        CALL_ERRORS,
    ),
)
