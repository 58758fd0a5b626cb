"""Tables of supervision: alerts on residents waiting too long and on busy lines, and their
shapes."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

import pydantic
from pydantic import BaseModel, ConfigDict
from sqlalchemy import Index, text
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
    # Yellow and red levels of the line alerts; empty: the CLOUDWINDOW_LINE_ALERT_* defaults.
    waiting_yellow: int | None = Field(default=None)
    waiting_red: int | None = Field(default=None)
    taken_yellow: int | None = Field(default=None)
    taken_red: int | None = Field(default=None)


class LineMeasure(StrEnum):
    waiting = "waiting"  # people waiting on the line now
    taken = "taken"  # tickets taken on the line in the rolling period


class AlertLevel(StrEnum):
    yellow = "yellow"
    red = "red"


# Rows of an episode still running: the measure has not yet dropped below yellow's release.
_EPISODE = "cleared_at IS NULL"


class LineAlert(SQLModel, table=True):
    """One episode of a busy line on one measure, from reaching yellow (or red) until the
    measure falls back under yellow's release level. Escalation to red and back to yellow
    update the same row.

    The partial unique index on (line_id, measure) over running episodes is what makes
    "once" hold across nodes and restarts: every node's sweep tries the insert, one wins. An
    alert closed by hand keeps its episode running (cleared_at empty) so it is not raised
    again until the line is really back under the threshold.
    """

    __tablename__ = "line_alert"
    __table_args__ = (
        Index(
            "ux_line_alert_episode",
            "line_id",
            "measure",
            unique=True,
            postgresql_where=text(_EPISODE),
            sqlite_where=text(_EPISODE),
        ),
    )
    id: int | None = Field(default=None, primary_key=True)
    line_id: int = Field(foreign_key="window_line.id", index=True)
    measure: str = Field(max_length=16)
    level: str = Field(max_length=8)
    value: int  # the measure when the level last changed
    threshold: int  # the threshold of the current level
    window_minutes: int = Field(default=0)  # the rolling period, for the taken measure
    status: str = Field(default=AlertStatus.raised, max_length=16, index=True)
    raised_at: dt.datetime = Field(
        default_factory=utcnow, sa_type=UTCDateTime, nullable=False, index=True
    )
    red_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    raised_by_node: str = Field(default="", max_length=100)
    acknowledged_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    acknowledged_by: int | None = Field(default=None, foreign_key="staff.id")
    note: str = Field(default="", max_length=500)
    resolved_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    resolved_by: int | None = Field(default=None, foreign_key="staff.id")
    resolution: str = Field(default="", max_length=16)  # auto or manual
    cleared_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)


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


class LineAlertRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    line_id: int
    line_name: str = ""
    measure: LineMeasure
    level: AlertLevel
    value: int
    threshold: int
    window_minutes: int
    status: AlertStatus
    raised_at: dt.datetime
    red_at: dt.datetime | None
    acknowledged_at: dt.datetime | None
    acknowledged_by: int | None
    note: str
    resolved_at: dt.datetime | None
    resolution: str


class AlertCounts(BaseModel):
    """Alerts raised in a period in the caller's area, as the district reports them."""

    start: dt.datetime
    end: dt.datetime
    yellow: int  # line alerts that stayed yellow
    red: int  # line alerts that reached red
    wait: int  # per-ticket wait alerts
    tidal: int | None = None  # tidal-window openings: not built yet
    note: str = ""
