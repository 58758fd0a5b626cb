"""Tables of the cloud-window queue and calls, and the read shapes clients get of them."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Any

from pydantic import BaseModel
from sqlalchemy import Column, Date, Index, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from core.db import UTCDateTime, utcnow

# The record of a case's calls is shared: who took part in them decides who may see the case.
from core.models import Call, CallParticipant, CallStatus, SiteRead

__all__ = ["Call", "CallParticipant", "CallStatus"]


class TicketStatus(StrEnum):
    waiting = "waiting"
    called = "called"  # a clerk called it; the point has not answered yet
    serving = "serving"  # the point answered: the call is on
    done = "done"
    cancelled = "cancelled"
    no_show = "no_show"


class Outcome(StrEnum):
    completed = "completed"
    accepted = "accepted"  # accepted for back-office approval
    returned = "returned"
    transferred = "transferred"


class PresenceStatus(StrEnum):
    available = "available"
    busy = "busy"
    away = "away"


class InviteStatus(StrEnum):
    open = "open"
    accepted = "accepted"
    cancelled = "cancelled"
    expired = "expired"


def id_of(row: Any) -> int:
    """The id of a row that has been flushed."""
    assert row.id is not None
    return int(row.id)


def _ts(**kw: Any) -> Any:
    return Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False, **kw)


def _opt_ts() -> Any:
    return Field(default=None, sa_type=UTCDateTime, nullable=True)


_ACTIVE = "status IN ('called', 'serving')"  # called or serving: the clerk's active ticket


class Ticket(SQLModel, table=True):
    """A number taken on a window line (取号) for one case."""

    __tablename__ = "ticket"
    __table_args__ = (
        UniqueConstraint("line_id", "day", "seq"),
        # The order "call next" reads: priority first, then who has waited longest.
        Index("ix_ticket_queue", "line_id", "status", "priority", "waiting_since"),
        # A clerk serves one ticket at a time. The index, not a read before the write, keeps it
        # so: two call nexts sent at once cannot both succeed.
        Index(
            "ux_ticket_active_clerk",
            "called_by",
            unique=True,
            postgresql_where=text(_ACTIVE),
            sqlite_where=text(_ACTIVE),
        ),
    )
    id: int | None = Field(default=None, primary_key=True)
    line_id: int = Field(foreign_key="window_line.id")
    case_id: int = Field(foreign_key="service_case.id", index=True)
    day: dt.date = Field(sa_column=Column(Date, nullable=False))
    seq: int
    number: str = Field(max_length=8)
    status: str = Field(max_length=16, index=True)
    priority: int = Field(default=0)
    priority_reason: str = Field(default="", max_length=32)
    channel: str = Field(default="assisted", max_length=16)
    # What the holder sees, as it was when the ticket was taken (or transferred): kept on the
    # row so pushing a ticket to its holder reads one table.
    item_code: str = Field(default="", max_length=32)
    item_name: str = Field(default="", max_length=100)
    line_name: str = Field(default="", max_length=100)
    case_number: str = Field(default="", max_length=32)
    item_id: int = Field(foreign_key="service_item.id")
    resident_id: int | None = Field(default=None, foreign_key="resident.id")
    point_site_id: int = Field(foreign_key="site.id")
    taken_by: int | None = Field(default=None, foreign_key="staff.id", index=True)
    consent_at: dt.datetime = _ts()
    # Kept across transfers: the resident's wait started when the first ticket was taken.
    waiting_since: dt.datetime = _ts()
    # Indexed for the supervision sweep, which counts each line's tickets taken in the last hour.
    created_at: dt.datetime = _ts(index=True)
    called_at: dt.datetime | None = _opt_ts()
    called_by: int | None = Field(default=None, foreign_key="staff.id", index=True)
    recalls: int = Field(default=0)
    answered_at: dt.datetime | None = _opt_ts()
    finished_at: dt.datetime | None = _opt_ts()
    outcome: str = Field(default="", max_length=16)
    call_id: int | None = Field(default=None, index=True)


class LineCounter(SQLModel, table=True):
    """The last ticket sequence issued on a line on a day (numbers restart every day)."""

    __tablename__ = "line_counter"
    line_id: int = Field(foreign_key="window_line.id", primary_key=True)
    day: dt.date = Field(sa_column=Column(Date, primary_key=True))
    last_seq: int = Field(default=0)


class Presence(SQLModel, table=True):
    """A clerk's or expert's availability on one node, refreshed while their socket is there.

    One row per (staff, node): a node that dies stops refreshing its rows, and they stop
    counting after presence_ttl_seconds without anyone having to clean up after it.
    """

    __tablename__ = "presence"
    staff_id: int = Field(foreign_key="staff.id", primary_key=True)
    node_id: str = Field(primary_key=True, max_length=64)
    status: str = Field(max_length=16)
    updated_at: dt.datetime = _ts(index=True)


class ExpertInvite(SQLModel, table=True):
    __tablename__ = "expert_invite"
    id: int | None = Field(default=None, primary_key=True)
    call_id: int = Field(foreign_key="call.id", index=True)
    skill: str = Field(max_length=50)
    invited_by: int = Field(foreign_key="staff.id")
    status: str = Field(max_length=16, index=True)
    accepted_by: int | None = Field(default=None, foreign_key="staff.id")
    created_at: dt.datetime = _ts()
    expires_at: dt.datetime = Field(sa_type=UTCDateTime, nullable=False)


# -- read shapes (acks, events and HTTP responses)


class TicketRead(BaseModel):
    id: int
    number: str
    line_id: int
    line_name: str
    status: TicketStatus
    priority: int
    priority_reason: str
    channel: str
    item_code: str
    item_name: str
    case_id: int
    case_number: str
    resident_name: str | None
    resident_id_masked: str | None
    point_site_id: int
    waiting_since: dt.datetime
    called_at: dt.datetime | None
    called_by: int | None
    recalls: int
    outcome: str
    call_id: int | None
    position: int | None = None
    eta_seconds: int | None = None


class ParticipantRead(BaseModel):
    id: int
    staff_id: int | None
    resident_id: int | None = None
    role: str
    display_name: str
    connected: bool


class CallJoin(BaseModel):
    """What a participant gets on joining: who is there, how to reach them, how to come back."""

    call_id: int
    participant_id: int
    resume_token: str
    generation: int = 0
    participants: list[ParticipantRead]
    ice_servers: list[dict[str, Any]]
    ticket_id: int | None
    case_id: int | None
    # Filled in by the transport: {enabled, required} — every participant sees the notice.
    recording: dict[str, bool] | None = None


class LineStatus(BaseModel):
    line_id: int
    line_name: str
    waiting: int
    clerks_online: int
    clerks_available: int
    avg_handling_seconds: int | None  # None until the line has finished a ticket
    longest_wait_seconds: int


class HallOption(BaseModel):
    """A hall that handles an item, with the trip there and the live wait of its line."""

    site: SiteRead
    line_id: int
    line_name: str
    distance_km: float
    travel_minutes: int  # distance × signaling.halls.TRAVEL_MINUTES_PER_KM, for the ranking
    waiting: int
    clerks_online: int
    wait_seconds: int | None  # for a number taken now; None while no clerk is online
    total_minutes: int | None  # travel + wait, the ranking key; None when the wait is unknown
