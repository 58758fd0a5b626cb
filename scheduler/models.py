"""Tables of scheduling: appointments on a window line."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

from sqlalchemy import Index
from sqlmodel import Field, SQLModel

from core.db import UTCDateTime, utcnow


class AppointmentStatus(StrEnum):
    booked = "booked"
    checked_in = "checked_in"  # a ticket was taken for it: served with priority
    cancelled = "cancelled"


class Appointment(SQLModel, table=True):
    """A resident's booked slot on a window line for an item (预约)."""

    __tablename__ = "appointment"
    __table_args__ = (Index("ix_appointment_slot", "line_id", "starts_at", "status"),)
    id: int | None = Field(default=None, primary_key=True)
    resident_id: int = Field(foreign_key="resident.id", index=True)
    line_id: int = Field(foreign_key="window_line.id")
    item_id: int = Field(foreign_key="service_item.id")
    starts_at: dt.datetime = Field(sa_type=UTCDateTime, nullable=False)
    ends_at: dt.datetime = Field(sa_type=UTCDateTime, nullable=False)
    status: str = Field(max_length=16)
    booked_by: int | None = Field(default=None, foreign_key="staff.id")
    ticket_id: int | None = Field(default=None)
    created_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
