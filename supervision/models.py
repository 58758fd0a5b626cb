"""Tables of supervision: alerts on residents waiting too long and on busy lines, and their
shapes."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Any

import pydantic
import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict
from sqlalchemy import Column, Date, Index, text
from sqlmodel import Field, SQLModel

from core.db import UTCDateTime, utcnow
from core.inputs import Id
from core.models import CaseRating


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
    # bad-rating follow-ups: opened in the period, closed in it by their deadline, and whose
    # deadline passed in it without being closed in time (docs/supervision.md)
    followups_opened: int = 0
    followups_closed_on_time: int = 0
    followups_overdue: int = 0


# -- follow-ups: thresholds per department, bad-rating follow-ups and their overdue alerts

# The ratings that need a follow-up (1 非常不满意, 2 不满意, or a written complaint), by time:
# the follow-up sweep reads the newest of them each round without walking every rating.
BAD_RATING = "score <= 2 OR complaint"
Index(
    "ix_case_rating_bad",
    CaseRating.__table__.c.rated_at,  # type: ignore[attr-defined]
    postgresql_where=text(BAD_RATING),
    sqlite_where=text(BAD_RATING),
)


class DepartmentThreshold(SQLModel, table=True):
    """A department's thresholds on the lines at or under one site of the area (a town, a
    hall, the district). A line's own values win; the nearest site's row wins over higher ones;
    an empty column keeps what the level above says (in the end the settings' defaults)."""

    __tablename__ = "department_threshold"
    site_id: int = Field(foreign_key="site.id", primary_key=True)
    department: str = Field(foreign_key="department.code", primary_key=True, max_length=32)
    wait_alert_seconds: int | None = Field(default=None)
    waiting_yellow: int | None = Field(default=None)
    waiting_red: int | None = Field(default=None)
    taken_yellow: int | None = Field(default=None)
    taken_red: int | None = Field(default=None)


class FollowupStatus(StrEnum):
    open = "open"
    closed = "closed"


class CallbackOutcome(StrEnum):
    reached = "reached"  # the resident was reached and said what callback_note holds
    not_reached = "not_reached"  # no answer, wrong number; callback_note says what was tried


class RatingFollowup(SQLModel, table=True):
    """差评回访整改: a bad rating (1 or 2) or a written complaint, called back and rectified by
    the department heads of the case's line within a number of working days.

    The unique case_id is what makes "one follow-up per bad rating" hold across nodes and
    restarts: every node's sweep tries the insert, one wins.
    """

    __tablename__ = "rating_followup"
    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="service_case.id", unique=True)
    line_id: int | None = Field(default=None, foreign_key="window_line.id", index=True)
    site_id: int = Field(foreign_key="site.id")  # the case's site (scope when it has no line)
    score: int
    complaint: bool = Field(default=False)
    rated_at: dt.datetime = Field(sa_type=UTCDateTime, nullable=False, index=True)
    opened_at: dt.datetime = Field(
        default_factory=utcnow, sa_type=UTCDateTime, nullable=False, index=True
    )
    opened_by_node: str = Field(default="", max_length=100)
    # The last working day of the deadline, and the end of that day (UTC): overdue from then.
    due_date: dt.date = Field(sa_column=Column(Date, nullable=False))
    due_at: dt.datetime = Field(sa_type=UTCDateTime, nullable=False, index=True)
    # holidays: counted with the public-holiday calendar; weekdays: past its last year
    calendar: str = Field(default="holidays", max_length=16)
    status: str = Field(default=FollowupStatus.open, max_length=16, index=True)
    callback_outcome: str = Field(default="", max_length=16)
    callback_note: str = Field(default="", max_length=500)
    called_back_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    called_back_by: int | None = Field(default=None, foreign_key="staff.id")
    rectification: str = Field(default="", max_length=1000)
    rectified_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    rectified_by: int | None = Field(default=None, foreign_key="staff.id")
    closed_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    closed_by: int | None = Field(default=None, foreign_key="staff.id")


class FollowupAlert(SQLModel, table=True):
    """A follow-up past its deadline and still open: raised once per follow-up, ever (the
    unique followup_id), resolved by itself when the follow-up is closed, or by hand."""

    __tablename__ = "followup_alert"
    id: int | None = Field(default=None, primary_key=True)
    followup_id: int = Field(foreign_key="rating_followup.id", unique=True)
    line_id: int | None = Field(default=None, foreign_key="window_line.id", index=True)
    site_id: int = Field(foreign_key="site.id")
    due_at: dt.datetime = Field(sa_type=UTCDateTime, nullable=False)
    status: str = Field(default=AlertStatus.raised, max_length=16, index=True)
    raised_at: dt.datetime = Field(
        default_factory=utcnow, sa_type=UTCDateTime, nullable=False, index=True
    )
    raised_by_node: str = Field(default="", max_length=100)
    acknowledged_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    acknowledged_by: int | None = Field(default=None, foreign_key="staff.id")
    note: str = Field(default="", max_length=500)
    resolved_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    resolved_by: int | None = Field(default=None, foreign_key="staff.id")
    resolution: str = Field(default="", max_length=16)  # closed (the follow-up) or manual


# Thresholds: the same five values at every level; empty inherits from the level above.
WAIT_SECONDS = (60, 24 * 3600)  # 1 minute to a day, as the setting allows
WAITING_PEOPLE = (1, 1000)
TAKEN_TICKETS = (1, 10_000)


def _bounded(bounds: tuple[int, int]) -> Any:
    return pydantic.Field(default=None, ge=bounds[0], le=bounds[1])


class ThresholdValues(BaseModel):
    """A level's own thresholds (empty: inherited), or what a line works to in the end."""

    model_config = ConfigDict(from_attributes=True)
    wait_alert_seconds: int | None = None
    waiting_yellow: int | None = None
    waiting_red: int | None = None
    taken_yellow: int | None = None
    taken_red: int | None = None


class ThresholdsIn(BaseModel):
    """A line's or a department's own thresholds; an empty field inherits, all empty: reset."""

    model_config = ConfigDict(extra="forbid")
    wait_alert_seconds: int | None = _bounded(WAIT_SECONDS)
    waiting_yellow: int | None = _bounded(WAITING_PEOPLE)
    waiting_red: int | None = _bounded(WAITING_PEOPLE)
    taken_yellow: int | None = _bounded(TAKEN_TICKETS)
    taken_red: int | None = _bounded(TAKEN_TICKETS)


class LineThresholdRead(BaseModel):
    line_id: int
    line_name: str
    site_id: int
    department: str
    own: ThresholdValues  # set on the line itself
    inherited: ThresholdValues  # what an empty field falls back to (department, default)
    effective: ThresholdValues  # what the sweeps use
    # where each effective value comes from: line, department (with the site), or default
    source: dict[str, str]


class DepartmentThresholdRead(BaseModel):
    site_id: int
    site_name: str
    department: str
    department_name: str
    own: ThresholdValues
    inherited: ThresholdValues  # what an empty field falls back to at this level


class NamedRef(BaseModel):
    id: str
    name: str


class ThresholdsView(BaseModel):
    """Everything the thresholds screen of my area needs in one read."""

    defaults: ThresholdValues
    window_minutes: int  # the rolling period of "tickets taken"
    lines: list[LineThresholdRead]
    departments: list[DepartmentThresholdRead]
    sites: list[NamedRef]  # sites of my area a department row may be set at
    department_names: list[NamedRef]


class FollowupRead(BaseModel):
    id: int
    case_id: int
    case_number: str
    item_name: str
    line_id: int | None
    line_name: str
    site_id: int
    score: int
    complaint: bool
    comment: str  # what the resident wrote with the rating
    resident_name: str
    resident_phone_masked: str
    rated_at: dt.datetime
    opened_at: dt.datetime
    due_date: dt.date
    due_at: dt.datetime
    calendar: str
    status: FollowupStatus
    overdue: bool  # past its deadline and not closed by it
    callback_outcome: str
    callback_note: str
    called_back_at: dt.datetime | None
    called_back_by: int | None
    rectification: str
    rectified_at: dt.datetime | None
    rectified_by: int | None
    closed_at: dt.datetime | None
    closed_by: int | None


class FollowupRecordIn(BaseModel):
    """What a department head records: the call-back, the rectification, and whether to close.
    An empty field leaves what was recorded; closing needs both on record."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    callback_outcome: CallbackOutcome | None = None
    callback_note: str | None = pydantic.Field(default=None, max_length=500)
    rectification: str | None = pydantic.Field(default=None, max_length=1000)
    close: bool = False

    @pydantic.model_validator(mode="after")
    def _note_with_outcome(self) -> FollowupRecordIn:
        if self.callback_note and self.callback_outcome is None:
            raise ValueError("say whether the resident was reached (callback_outcome)")
        return self


class FollowupContact(BaseModel):
    """The resident's name and full phone number, for the call-back (each view audited)."""

    resident_name: str
    phone: str


class FollowupAlertRead(BaseModel):
    id: int
    followup_id: int
    case_id: int
    case_number: str
    item_name: str
    line_id: int | None
    line_name: str
    due_date: dt.date | None
    due_at: dt.datetime
    status: AlertStatus
    raised_at: dt.datetime
    acknowledged_at: dt.datetime | None
    acknowledged_by: int | None
    note: str
    resolved_at: dt.datetime | None
    resolution: str


# -- tidal: windows (潮汐窗口), clerks put on a busy line for a while (supervision/tidal*.py)


class TidalStatus(StrEnum):
    active = "active"
    ended = "ended"


class TidalEnd(StrEnum):
    expired = "expired"  # its end time came (the sweep)
    closed = "closed"  # a supervisor closed it by hand


class TidalFit(StrEnum):
    """Why a clerk may serve the target line."""

    department = "department"  # serves the same department at another hall
    skill = "skill"  # cross-trained: a skill names the target's department
    qualification = "qualification"  # a comprehensive-window clerk (综合窗口), any department


_ACTIVE_MOVE = "status = 'active'"


class TidalMove(SQLModel, table=True):
    """A clerk put on another line (the target) until an end time or a manual close.

    The clerk keeps their own lines: call next takes the longest-waiting ticket of all of
    them, so the busier line is served first and the donor is never left without its clerk.
    One active move per clerk (partial unique index); ending one is an update conditional on
    it being active, so an expiry is done once across nodes.
    """

    __tablename__ = "tidal_move"
    __table_args__ = (
        Index(
            "ux_tidal_move_active_staff",
            "staff_id",
            unique=True,
            postgresql_where=text(_ACTIVE_MOVE),
            sqlite_where=text(_ACTIVE_MOVE),
        ),
    )
    id: int | None = Field(default=None, primary_key=True)
    staff_id: int = Field(foreign_key="staff.id", index=True)
    from_line_id: int = Field(foreign_key="window_line.id", index=True)
    to_line_id: int = Field(foreign_key="window_line.id", index=True)
    fit: str = Field(max_length=16)
    status: str = Field(default=TidalStatus.active, max_length=16, index=True)
    started_at: dt.datetime = Field(
        default_factory=utcnow, sa_type=UTCDateTime, nullable=False, index=True
    )
    until: dt.datetime = Field(sa_type=UTCDateTime, nullable=False, index=True)
    applied_by: int | None = Field(default=None, foreign_key="staff.id")
    # The service levels the move was judged on (0..1), as the suggestion showed them.
    target_sl_before: float
    target_sl_after: float
    donor_sl_before: float
    donor_sl_after: float
    note: str = Field(default="", max_length=500)
    ended_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    ended_by: int | None = Field(default=None, foreign_key="staff.id")
    end_reason: str = Field(default="", max_length=16)
    ended_by_node: str = Field(default="", max_length=100)


class TidalShortfall(SQLModel, table=True):
    """A line's staffing as assessed in one window (the last assessment in it wins).

    Kept so that "short in the previous window too" reads the same on every node and after a
    restart: a move is suggested only when a line is short now and was short in the window
    before.
    """

    __tablename__ = "tidal_shortfall"
    line_id: int = Field(foreign_key="window_line.id", primary_key=True)
    window_start: dt.datetime = Field(sa_type=UTCDateTime, primary_key=True)
    arrivals_per_hour: float
    handling_seconds: int
    clerks: int
    needed: int
    service_level: float
    short: bool
    updated_at: dt.datetime = Field(
        default_factory=utcnow, sa_type=UTCDateTime, nullable=False, index=True
    )


class TidalLineRead(BaseModel):
    """One line's staffing now: arrivals, handling time, clerks, and what Erlang C says."""

    line_id: int
    line_name: str
    department: str
    department_name: str
    current_per_hour: float  # tickets taken in the last window, per hour
    history_per_hour: float | None  # the same weekday and time in past weeks; None: no history
    history_weeks: int
    arrivals_per_hour: float  # the blend the sizing uses
    handling_seconds: int
    handling_measured: bool  # False: the default handling time, until served tickets show it
    waiting: int
    clerks: int
    needed: int
    service_level: float
    target_seconds: int
    target_level: float
    short_now: bool
    short_before: bool  # the previous window's assessment (kept in tidal_shortfall)
    rough: bool  # fewer than 5 clerks: Erlang C sizes roughly


class TidalSuggestion(BaseModel):
    """Move a clerk from a line that can spare them to a short line until a time."""

    staff_id: int
    staff_name: str
    from_line_id: int
    from_line_name: str
    to_line_id: int
    to_line_name: str
    fit: TidalFit
    until: dt.datetime
    target_sl_before: float
    target_sl_after: float
    donor_sl_before: float
    donor_sl_after: float
    target_level: float


class TidalMoveRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    staff_id: int
    staff_name: str = ""
    from_line_id: int
    from_line_name: str = ""
    to_line_id: int
    to_line_name: str = ""
    fit: TidalFit
    status: TidalStatus
    started_at: dt.datetime
    until: dt.datetime
    applied_by: int | None
    target_sl_before: float
    target_sl_after: float
    donor_sl_before: float
    donor_sl_after: float
    note: str
    ended_at: dt.datetime | None
    ended_by: int | None
    end_reason: str


class TidalOverview(BaseModel):
    """The tidal tab: the lines of my area, the moves suggested now, and the moves running."""

    now: dt.datetime
    window_start: dt.datetime
    window_minutes: int
    min_stay_minutes: int
    max_stay_minutes: int
    default_until: dt.datetime
    lines: list[TidalLineRead]
    suggestions: list[TidalSuggestion]
    moves: list[TidalMoveRead]


class TidalApply(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    staff_id: Id
    from_line_id: Id
    to_line_id: Id
    until: dt.datetime
    note: str = pydantic.Field(default="", max_length=500)

    @pydantic.field_validator("until")
    @classmethod
    def _aware(cls, v: dt.datetime) -> dt.datetime:
        if v.tzinfo is None:
            raise ValueError("give the end time with its time zone")
        return v


class TidalClose(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    note: str = pydantic.Field(default="", max_length=500)


# -- statistics: rollups of the tickets, kept by supervision/rollup.py, read by
# supervision/stats.py (definitions: docs/statistics.md). Core tables, not SQLModel classes:
# they are written by bulk statements and read by sums, never as objects, and their histogram
# and hour columns are generated.

# Upper bounds (seconds, inclusive) of the wait histogram's bins: one bin for no wait, then
# every minute to 30 minutes, then coarser to 2 hours; the last bin holds longer waits.
# A share within a target in whole minutes up to 30 is exact; percentiles interpolate inside
# a bin, so below 30 minutes they are at most half a minute off.
WAIT_BIN_EDGES: tuple[int, ...] = (0, *range(60, 1801, 60), 2400, 3000, 3600, 5400, 7200)
WAIT_BINS = tuple(f"w{i:02d}" for i in range(len(WAIT_BIN_EDGES) + 1))
HOURS = tuple(f"h{i:02d}" for i in range(24))  # tickets taken in each hour of the local day
STAT_COUNTS = (
    "taken",
    "served",  # done: completed, accepted or returned
    "completed",
    "accepted",
    "returned",
    "no_show",
    "cancelled",
    "abandoned_late",  # cancelled before being called, after waiting past the line's target
    "transferred",  # transfers away from the line (counted where they left)
    "open_tickets",  # still waiting, called or being served when rolled up
    "called",  # called on the line they are on: their wait is measured
    "within_target",  # called within the line's target
    "handled",  # served with a measured handling time
    "rated",
    "r1",  # 非常不满意
    "r2",  # 不满意
    "r3",  # 基本满意
    "r4",  # 满意
    "r5",  # 非常满意
    "calls",
    "calls_connected",
    "calls_media",
    "calls_timed",  # connected and ended: their length is known
    "calls_rtt",
    "calls_loss",
    "calls_poor",
    "calls_open",
)
STAT_SUMS = (
    "wait_sum",
    "handle_sum",
    "setup_sum",
    "media_sum",
    "duration_sum",
    "rtt_sum",
    "loss_sum",
)
STAT_MAXES = ("wait_max",)


def _stat_columns(*, hours: bool) -> list[sa.Column[Any]]:
    cols: list[sa.Column[Any]] = [sa.Column(n, sa.Integer, nullable=False) for n in STAT_COUNTS]
    cols += [sa.Column(n, sa.Float, nullable=False) for n in (*STAT_SUMS, *STAT_MAXES)]
    cols += [sa.Column(n, sa.Integer, nullable=False) for n in WAIT_BINS]
    if hours:
        cols += [sa.Column(n, sa.Integer, nullable=False) for n in HOURS]
    return cols


_PENDING = "pending > 0"

# Per line per 15-minute slot of taking the number. `pending` (tickets still open, calls not
# ended) marks the slots the next round must look at again.
stats_slot = sa.Table(
    "stats_slot",
    SQLModel.metadata,
    sa.Column("slot", sa.BigInteger, primary_key=True, autoincrement=False),  # UTC unix s
    sa.Column("line_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("pending", sa.Integer, nullable=False),
    *_stat_columns(hours=False),
    sa.Index(
        "ix_stats_slot_pending",
        "slot",
        postgresql_where=text(_PENDING),
        sqlite_where=text(_PENDING),
    ),
)

# Per local day × line × item × clerk, with the coarser sets beside the finest:
# item_id 0 = every item, clerk_id 0 = every clerk, clerk_id -1 = not called by anyone.
stats_day = sa.Table(
    "stats_day",
    SQLModel.metadata,
    sa.Column("item_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("clerk_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("line_id", sa.Integer, primary_key=True, autoincrement=False),
    *_stat_columns(hours=True),
    sa.Index("ix_stats_day_day_line", "day", "line_id"),
)

# The same sets per calendar month (`month` is its first day), kept by adding each day row's
# change: a year's breakdown by clerk or item reads twelve months, not 365 days of rows. No
# longest wait here (a maximum cannot be taken back); the period's comes from the day rows.
stats_month = sa.Table(
    "stats_month",
    SQLModel.metadata,
    sa.Column("item_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("clerk_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("month", sa.Date, primary_key=True),
    sa.Column("line_id", sa.Integer, primary_key=True, autoincrement=False),
    *_stat_columns(hours=False),
)

# One row: when the rollups were last brought up to date, and by which node.
stats_rollup = sa.Table(
    "stats_rollup",
    SQLModel.metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("rolled_at", UTCDateTime(timezone=True), nullable=True),
    sa.Column("rolled_by_node", sa.String(100), nullable=False),
)
