"""The call's recorder peer on this node: offers, snapshots, stopping."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from core.errors import AppError, Forbidden
from signaling import payloads as pl
from signaling.handlers.spec import CALL_ERRORS, EventSpec
from signaling.models import Call, CallParticipant

if TYPE_CHECKING:
    from signaling.server import Conn, Signaling

# How a snapshot's subject is named on the material, by participant role.
SUBJECTS = {"point": "服务点", "resident": "居民", "clerk": "窗口", "expert": "专家"}


async def h_recorder_offer(sg: Signaling, sid: str, conn: Conn, p: pl.RecorderOffer) -> Any:
    pid = await sg.my_pid(conn, p.call_id)
    if sg.recordings is None:
        raise AppError("recording.disabled")
    answer = await sg.recordings.offer(conn.principal, p.call_id, pid, p.sdp)
    return {"sdp": answer}


async def h_snapshot(sg: Signaling, sid: str, conn: Conn, p: pl.SnapshotIn) -> Any:
    await sg.my_pid(conn, p.call_id)
    if sg.recordings is None or sg.materials is None:
        raise AppError("recording.no_video")
    async with sg.db.session() as session:
        call = await session.get(Call, p.call_id)
        target = await session.get(CallParticipant, p.participant_id)
        if call is None or call.case_id is None or target is None:
            raise AppError("recording.no_video")
        if target.call_id != p.call_id:
            raise Forbidden("call.target")
        case_id, subject = call.case_id, target.role
    jpeg, _w, _h = await sg.recordings.snapshot(p.call_id, p.participant_id)
    material = await sg.materials.add_snapshot(
        conn.principal, case_id, jpeg, subject=SUBJECTS.get(subject, subject)
    )
    return material.model_dump(mode="json")


async def h_recording_stop(sg: Signaling, sid: str, conn: Conn, p: pl.CallRef) -> Any:
    await sg.my_pid(conn, p.call_id)
    if sg.recordings is None:
        return None
    await sg.recordings.stop_by_clerk(conn.principal, p.call_id)
    return None


EVENTS = (
    EventSpec(
        "recorder:offer",
        pl.RecorderOffer,
        "call.participate",
        "Send my tracks to this node's recorder: a send-only offer with its ICE candidates "
        "gathered (no trickle). The answer comes in the ack. Required of every participant "
        "when the call's `recording.enabled` is true.",
        h_recorder_offer,
        "{sdp}",
        (
            *CALL_ERRORS,
            "call.ended",
            "recording.busy",
            "recording.disabled",
            "recording.bad_offer",
            "recording.no_media",
            "recording.stopped",
        ),
    ),
    EventSpec(
        "recorder:snapshot",
        pl.SnapshotIn,
        "material.review",
        "Capture a still of a participant's video (a keyframe, decoded alone) as a material "
        "of the case.",
        h_snapshot,
        "Material",
        (*CALL_ERRORS, "call.target", "recording.no_video", "recording.snapshot_failed"),
    ),
    EventSpec(
        "recording:stop",
        pl.CallRef,
        "queue.serve",
        "Stop recording this call where the item and site do not require it; every "
        "participant is told and the timeline names the clerk.",
        h_recording_stop,
        "null",
        (*CALL_ERRORS, "recording.required"),
    ),
)
