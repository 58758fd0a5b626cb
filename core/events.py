"""Server-to-client events: typed, addressed to an audience, delivered after commit.

A service never sees a socket id or a room name. It appends an `Event` for an `Audience` to
the `Outbox` of the unit of work it runs in; the handler that opened the transaction commits
and only then hands the outbox to the delivery the composition root installed (socket.io
rooms today). A client therefore never hears of a change that was rolled back.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict


class Event(BaseModel):
    """One server-to-client event. Subclasses set `name` and carry a one-line docstring."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: ClassVar[str]

    def payload(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    @classmethod
    def declared(cls) -> Iterator[type[Event]]:
        """Every concrete event class, depth first (for the protocol reference and tests)."""
        for sub in cls.__subclasses__():
            if "name" in sub.__dict__:
                yield sub
            yield from sub.declared()


class AudienceKind(StrEnum):
    staff = "staff"  # every connection of one staff member
    resident = "resident"  # every connection of one resident on their own device
    line = "line"  # whoever watches a window line's queue
    ticket = "ticket"  # the holder of a ticket
    call = "call"  # everyone in a call
    participant = "participant"  # one participant of a call
    skill = "skill"  # experts with a skill
    case = "case"  # everyone following a case


ROOM_PREFIX = {
    AudienceKind.staff: "staff",
    AudienceKind.resident: "resident",
    AudienceKind.line: "line",
    AudienceKind.ticket: "ticket",
    AudienceKind.call: "call",
    AudienceKind.participant: "p",
    AudienceKind.skill: "skill",
    AudienceKind.case: "case",
}


@dataclass(frozen=True)
class Audience:
    """Who an event is for; `room` is the only place a room name is spelled."""

    kind: AudienceKind
    key: int | str

    @property
    def room(self) -> str:
        return f"{ROOM_PREFIX[self.kind]}:{self.key}"

    @classmethod
    def staff(cls, staff_id: int) -> Audience:
        return cls(AudienceKind.staff, staff_id)

    @classmethod
    def resident(cls, resident_id: int) -> Audience:
        return cls(AudienceKind.resident, resident_id)

    @classmethod
    def line(cls, line_id: int) -> Audience:
        return cls(AudienceKind.line, line_id)

    @classmethod
    def ticket(cls, ticket_id: int) -> Audience:
        return cls(AudienceKind.ticket, ticket_id)

    @classmethod
    def call(cls, call_id: int) -> Audience:
        return cls(AudienceKind.call, call_id)

    @classmethod
    def participant(cls, participant_id: int) -> Audience:
        return cls(AudienceKind.participant, participant_id)

    @classmethod
    def skill(cls, skill: str) -> Audience:
        return cls(AudienceKind.skill, skill)

    @classmethod
    def case(cls, case_id: int) -> Audience:
        return cls(AudienceKind.case, case_id)


@dataclass(frozen=True)
class Delivery:
    event: Event
    to: Audience


Deliver = Callable[[list[Delivery]], Awaitable[None]]


@dataclass
class Outbox:
    """Events to send once the transaction that caused them has committed."""

    deliveries: list[Delivery] = field(default_factory=list)

    def emit(self, event: Event, to: Audience) -> None:
        self.deliveries.append(Delivery(event, to))

    def take(self) -> list[Delivery]:
        """The queued deliveries, emptying the outbox (call after the commit)."""
        out, self.deliveries = self.deliveries, []
        return out


async def deliver_nowhere(_deliveries: list[Delivery]) -> None:
    """The delivery of an app without a real-time server (CLI commands, some tests)."""
