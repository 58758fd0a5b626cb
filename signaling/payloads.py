"""Payloads of the socket events clients send; every one rejects unknown fields."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator

from core.inputs import MAX_ID, Id
from signaling.models import PresenceStatus

# An SDP for audio + video + screen share is 5-15 KB; anything over 64 KB is not a real offer.
MAX_SDP_BYTES = 65_536


class Payload(BaseModel):
    # No whitespace stripping: an SDP must reach the peer byte for byte (it ends in CRLF).
    model_config = ConfigDict(extra="forbid", frozen=True)


class Empty(Payload):
    pass


class PresenceSet(Payload):
    status: PresenceStatus


class LineWatch(Payload):
    line_ids: list[Id] = Field(max_length=100)


class TicketTake(Payload):
    line_id: Id
    item_code: str = Field(min_length=1, max_length=32)
    site_id: Id
    resident_id: Id | None = None
    # Consent is recorded as given: only a JSON true counts, never "yes" or 1.
    consent: StrictBool
    bundle_code: str | None = Field(default=None, max_length=32)
    appointment_id: Id | None = None
    note: str = Field(default="", max_length=500)
    # Field staff at a resident's home: the number is for the visit's case (served first);
    # the visit gives the case, resident and point (scheduler/field.py checks it is theirs).
    home_visit_id: Id | None = None


class TicketRef(Payload):
    ticket_id: Id


class TicketTransfer(Payload):
    ticket_id: Id
    line_id: Id
    reason: str = Field(default="", max_length=200)


# How ticket:finish may close a case; a transfer is ticket:transfer (Outcome keeps
# `transferred` for the rows it writes).
FinishOutcome = Literal["completed", "accepted", "returned"]


class TicketFinish(Payload):
    ticket_id: Id
    outcome: FinishOutcome
    reason: str = Field(default="", max_length=500)
    note: str = Field(default="", max_length=1000)


class CallRef(Payload):
    call_id: Id


class CallRejoin(Payload):
    call_id: Id
    resume_token: str = Field(min_length=8, max_length=100)


class IceCandidate(Payload):
    candidate: str = Field(max_length=1024)
    sdpMid: str | None = Field(default=None, max_length=64)
    sdpMLineIndex: int | None = Field(default=None, ge=0, le=64)
    usernameFragment: str | None = Field(default=None, max_length=256)


class CallSignal(Payload):
    """SDP or a trickled ICE candidate for one other participant of the call."""

    call_id: Id
    to: Id
    kind: Literal["offer", "answer", "candidate", "end_of_candidates"]
    sdp: str | None = Field(default=None, max_length=MAX_SDP_BYTES)
    candidate: IceCandidate | None = None
    ice_restart: StrictBool = False

    @field_validator("sdp")
    @classmethod
    def _sdp_bytes(cls, v: str | None) -> str | None:
        if v is not None and len(v.encode()) > MAX_SDP_BYTES:
            raise ValueError(f"SDP is over {MAX_SDP_BYTES} bytes")
        return v


class CallState(Payload):
    call_id: Id
    state: Literal["connected", "first_media", "reconnecting"]


class CallStats(Payload):
    """A client's periodic summary of its getStats() figures for the call."""

    call_id: Id
    rtt_ms: float | None = Field(default=None, ge=0, le=60_000)
    jitter_ms: float | None = Field(default=None, ge=0, le=60_000)
    packet_loss_pct: float | None = Field(default=None, ge=0, le=100)
    bitrate_kbps: float | None = Field(default=None, ge=0, le=1_000_000)
    fps: float | None = Field(default=None, ge=0, le=240)
    frames_decoded: int | None = Field(default=None, ge=0, le=MAX_ID)
    candidate_type: Literal["host", "srflx", "prflx", "relay"] | None = None


class CallTrack(Payload):
    """Labels a media stream for the others: the camera, or a shared screen."""

    call_id: Id
    stream_id: str = Field(min_length=1, max_length=100)
    kind: Literal["camera", "screen"]
    active: StrictBool


class RecorderOffer(Payload):
    """My send-only offer to the node's recorder peer (complete: ICE gathered, no trickle)."""

    call_id: Id
    sdp: str = Field(min_length=10, max_length=MAX_SDP_BYTES)

    @field_validator("sdp")
    @classmethod
    def _sdp_size(cls, v: str) -> str:
        if len(v.encode()) > MAX_SDP_BYTES:
            raise ValueError(f"at most {MAX_SDP_BYTES} bytes")
        if not v.startswith("v=0"):
            raise ValueError("an SDP starts with v=0")
        return v


class SnapshotIn(Payload):
    call_id: Id
    participant_id: Id


class ExpertInviteIn(Payload):
    call_id: Id
    skill: str = Field(min_length=1, max_length=50)
    # What the clerk asks the expert, shown on the invite and kept on the case's timeline.
    question: str = Field(default="", max_length=500)


class InviteRef(Payload):
    invite_id: Id
