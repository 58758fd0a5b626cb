"""Events the queue and calls send to clients, each declared once (the protocol doc reads them)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import ConfigDict, Field

from core.events import Event
from signaling.models import LineStatus, Outcome, ParticipantRead, TicketRead
from signaling.payloads import IceCandidate


class SignalingEvent(Event):
    """An event whose optional fields are left out of the payload when they are not set."""

    model_config = ConfigDict(populate_by_name=True)
    absent_when_none: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        cls.absent_when_none = tuple(
            f.alias or n
            for n, f in cls.model_fields.items()
            if not f.is_required() and f.default is None
        )

    def payload(self) -> dict[str, Any]:
        data = self.model_dump(mode="json", by_alias=True)
        for key in self.absent_when_none:
            if data[key] is None:
                del data[key]
        return data


# -- the queue


class LineStatusChanged(LineStatus, SignalingEvent):
    """To the watchers of a line (its clerks join on connect): waiting, clerks, handling times."""

    name = "line:status"


class TicketUpdated(SignalingEvent):
    """To the holders of a ticket: its state; position and eta_seconds while it waits."""

    name = "ticket:update"
    ticket: TicketRead
    transferred: bool | None = None


class TicketCalled(SignalingEvent):
    """To the holders of a ticket: a clerk called it (clerk), or rang again (recall: count)."""

    name = "ticket:called"
    ticket: TicketRead
    call_id: int | None
    clerk: str | None = None
    recall: int | None = None


class CaseFinished(SignalingEvent):
    """To the call: the clerk closed the case with an outcome."""

    name = "case:finished"
    call_id: int
    case_id: int
    outcome: Outcome
    reason: str


# -- calls


class ParticipantJoined(SignalingEvent):
    """To the call: someone joined (or rejoined); the joiner sends the offers."""

    name = "call:participant_joined"
    call_id: int
    participant: ParticipantRead
    rejoined: bool | None = None


class ParticipantLeft(SignalingEvent):
    """To the call: someone left, for good or (reconnecting) for the rejoin grace period."""

    name = "call:participant_left"
    call_id: int
    participant_id: int
    reconnecting: bool


class PeerState(SignalingEvent):
    """To the call except the sender: a participant's connection is reconnecting."""

    name = "call:peer_state"
    call_id: int
    participant_id: int
    state: Literal["connected", "first_media", "reconnecting"]


class SignalRelayed(SignalingEvent):
    """To one participant: an SDP offer/answer or an ICE candidate from another (from)."""

    name = "call:signal"
    call_id: int
    from_: int = Field(alias="from")
    kind: Literal["offer", "answer", "candidate", "end_of_candidates"]
    ice_restart: bool
    sdp: str | None = None
    candidate: IceCandidate | None = None

    def payload(self) -> dict[str, Any]:
        data = super().payload()
        if self.candidate is not None:
            data["candidate"] = self.candidate.model_dump(exclude_none=True)
        return data


class TrackLabelled(SignalingEvent):
    """To the call except the sender: one of the sender's streams is its camera or a screen."""

    name = "call:track"
    call_id: int
    participant_id: int
    stream_id: str
    kind: Literal["camera", "screen"]
    active: bool


class CallEnded(SignalingEvent):
    """To the call: it ended (everyone_left, transferred, cancelled or no_show)."""

    name = "call:ended"
    call_id: int
    reason: str


# -- experts


class ExpertInvited(SignalingEvent):
    """To the experts with a skill: a clerk asks one of them into a call."""

    name = "expert:invited"
    invite_id: int
    call_id: int
    skill: str
    item_name: str
    invited_by: str
    expires_at: str  # ISO 8601, as datetime.isoformat() writes it
    case_number: str = ""
    question: str = ""


class ExpertInviteClosed(SignalingEvent):
    """To the experts with a skill: an invite was accepted by someone."""

    name = "expert:invite_closed"
    invite_id: int
    accepted_by: str


# -- this node


class ServerDraining(SignalingEvent):
    """This node is stopping: the socket closes next; reconnect (to any node) and state:sync."""

    name = "server:draining"
