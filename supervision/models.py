"""Tables of supervision: alerts on residents waiting too long, and their shapes."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

import pydantic
from pydantic import BaseModel, ConfigDict
from sqlmodel import Field, SQLModel

from core.db import UTCDateTime, utcnow


class AlertStatus(StrEnum):
    raised = "raised"
    acknowledged = "acknowledged"
    resolved = "resolved"


OPEN_ALERT = (AlertStatus.raised, AlertStatus.acknowledged)


class WaitAlert(SQLModel, table=True):
    """A resident waited longer than their line's threshold: raised once per ticket, ever.

    The unique ticket_id is what makes "once" hold across nodes and restarts: every node's
    sweep tries the insert, and only one insert can win.
    """

    __tablename__ = "wait_alert"
    id: int | None = Field(default=None, primary_key=True)
    ticket_id: int = Field(foreign_key="ticket.id", unique=True)
    line_id: int = Field(foreign_key="window_line.id", index=True)
    threshold_seconds: int
    waited_seconds: int
    status: str = Field(default=AlertStatus.raised, max_length=16, index=True)
    raised_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    raised_by_node: str = Field(default="", max_length=100)
    acknowledged_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    acknowledged_by: int | None = Field(default=None, foreign_key="staff.id")
    note: str = Field(default="", max_length=500)
    resolved_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    resolved_by: int | None = Field(default=None, foreign_key="staff.id")
    # called, cancelled, no_show, transferred (the ticket moved on), or manual
    resolution: str = Field(default="", max_length=16)


class LineThreshold(SQLModel, table=True):
    """A line's own thresholds where it does not use the defaults in settings."""

    __tablename__ = "line_threshold"
    line_id: int = Field(foreign_key="window_line.id", primary_key=True)
    wait_alert_seconds: int | None = Field(default=None)


# -- request and response shapes (beside the tables they read and write)


class AlertRead(BaseModel):
    id: int
    ticket_id: int
    ticket_number: str
    item_name: str
    line_id: int
    line_name: str
    threshold_seconds: int
    waited_seconds: int
    status: AlertStatus
    raised_at: dt.datetime
    acknowledged_at: dt.datetime | None
    acknowledged_by: int | None
    note: str
    resolved_at: dt.datetime | None
    resolution: str


class AlertNote(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    note: str = pydantic.Field(default="", max_length=500)
