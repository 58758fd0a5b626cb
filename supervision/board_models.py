"""Shapes of the live board: figures per line and per hall, a line's waiting tickets, and the
hall's wall display. No table of its own: the board reads tickets, presence and alerts.

Every figure is defined in docs/supervision.md ("Board"). None of them names a resident: the
board and the wall show numbers and items only.
"""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field

from core.inputs import MAX_ID


class BoardFigures(BaseModel):
    """The figures of a line, or of a hall or a whole area totalled."""

    waiting: int = 0
    longest_wait_seconds: int = 0
    # The number taken longest ago that is still waiting, so a page can keep the longest wait
    # ticking between refreshes.
    oldest_waiting_since: dt.datetime | None = None
    clerks_serving: int = 0
    clerks_free: int = 0
    clerks_online: int = 0
    arrivals_last_hour: int = 0
    served_last_hour: int = 0
    # Today's service level: within / counted, None until a wait has been decided today.
    sl_within: int = 0
    sl_counted: int = 0
    service_level: float | None = None
    # Mean handling time of tickets finished today; None ("no data yet") until one has been.
    handling_seconds: int | None = None
    handled_today: int = 0
    alerts_red: int = 0
    alerts_yellow: int = 0
    alerts_wait: int = 0


class BoardLine(BoardFigures):
    line_id: int
    line_name: str
    department: str
    site_id: int
    target_seconds: int  # the line's wait threshold: its service-level target


class BoardHall(BoardFigures):
    site_id: int
    site_name: str
    site_kind: str
    lines: list[BoardLine]


class BoardRead(BaseModel):
    """The board of the caller's area (or of one hall of it) at `at`."""

    at: dt.datetime
    total: BoardFigures
    halls: list[BoardHall]


class BoardQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    hall_id: int | None = Field(default=None, ge=1, le=MAX_ID)


# Waiting tickets of one line per page of the drill-down.
MAX_PAGE = 100


class QueueQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    limit: int = Field(default=20, ge=1, le=MAX_PAGE)
    offset: int = Field(default=0, ge=0, le=100_000)


class WaitingTicket(BaseModel):
    """One waiting ticket as the board shows it: its number and item, never its resident."""

    ticket_id: int
    number: str
    item_code: str
    item_name: str
    priority: int
    priority_reason: str
    waiting_since: dt.datetime
    wait_seconds: int
    over_target: bool
    alerted: bool  # an open wait alert is on it


class LineQueue(BaseModel):
    """A page of a line's waiting tickets, longest waiting first."""

    line_id: int
    line_name: str
    target_seconds: int
    total: int
    limit: int
    offset: int
    tickets: list[WaitingTicket]


class WallNumber(BaseModel):
    number: str
    item_name: str


class WallLine(BoardLine):
    serving: list[str]  # numbers being called or served now
    next: list[WallNumber]  # the next numbers to be called, in call order


class WallRead(BaseModel):
    """The hall's wall display: the hall's figures, and per line the numbers, nothing more."""

    at: dt.datetime
    hall: BoardFigures
    site_id: int
    site_name: str
    lines: list[WallLine]
