"""Tables of scheduling: appointments on a window line."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

import pydantic
from pydantic import AwareDatetime, BaseModel, ConfigDict
from sqlalchemy import Index
from sqlmodel import Field, SQLModel

from core.db import UTCDateTime, utcnow
from core.inputs import Id


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


# -- request and response shapes (beside the tables they read and write)


class AppointmentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    resident_id: Id | None = None
    line_id: Id
    item_code: str = pydantic.Field(min_length=1, max_length=32)
    starts_at: AwareDatetime


class AppointmentRead(BaseModel):
    id: int
    resident_id: int
    line_id: int
    item_id: int
    starts_at: dt.datetime
    ends_at: dt.datetime
    status: AppointmentStatus
    ticket_id: int | None
