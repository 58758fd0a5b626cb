"""Shapes of the statistics API (its tables, the rollups, are in supervision/models.py)."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

import pydantic
from pydantic import BaseModel, ConfigDict, Field, model_validator

from core.inputs import Id
from supervision import periods


class Breakdown(StrEnum):
    """What the figures table has one row for."""

    line = "line"
    hall = "hall"  # the hall (district center or town) of the lines
    department = "department"
    item = "item"
    clerk = "clerk"
    day = "day"


class ExportFormat(StrEnum):
    csv = "csv"
    xlsx = "xlsx"


class StatsQuery(BaseModel):
    """Any period × area / town / line / department / item / clerk; empty filters: everything
    in the caller's area."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    period: periods.Period = periods.Period.month
    date: dt.date | None = None  # a day inside the day, week or month; empty: today
    start: dt.date | None = None  # custom: the first and last day, inclusive
    end: dt.date | None = None
    site_id: Id | None = None  # the district, a town, or a hall: the lines at or under it
    line_id: Id | None = None
    department: str | None = pydantic.Field(default=None, max_length=32)
    item_id: Id | None = None
    clerk_id: Id | None = None
    by: Breakdown = Breakdown.line

    @model_validator(mode="after")
    def _custom_days(self) -> StatsQuery:
        if self.period == periods.Period.custom:
            if self.start is None or self.end is None or self.end < self.start:
                raise ValueError("a custom period needs start and end, start <= end")
            if (self.end - self.start).days >= periods.MAX_CUSTOM_DAYS:
                raise ValueError(f"a custom period is at most {periods.MAX_CUSTOM_DAYS} days")
        for d in (self.date, self.start, self.end):
            if d is not None and not (dt.date(2000, 1, 1) <= d <= dt.date(2100, 12, 31)):
                raise ValueError("a day between 2000 and 2100")
        return self


class ExportQuery(StatsQuery):
    """The file's language is the request's (`?lang=en` or Accept-Language), as for errors."""

    format: ExportFormat = ExportFormat.csv


class WaitFigures(BaseModel):
    called: int  # tickets called on the line they ended on: their wait is measured
    mean_s: float | None
    p50_s: float | None
    p90_s: float | None
    max_s: float | None


class CallFigures(BaseModel):
    """From the record of calls: set-up and the worst quality each call reported."""

    calls: int
    connected: int
    connected_rate: float | None
    setup_mean_s: float | None  # the clerk's call to both sides connected
    first_media_mean_s: float | None  # the clerk's call to the first video frame
    duration_mean_s: float | None  # connected to ended
    reported: int  # calls whose browsers sent quality reports
    rtt_mean_ms: float | None  # mean over calls of their worst round trip
    loss_mean_pct: float | None  # mean over calls of their worst packet loss
    poor: int  # calls whose worst moment was past the limits in docs/statistics.md
    poor_rate: float | None


class RatingLevel(BaseModel):
    score: int  # 5 非常满意 … 1 非常不满意
    label: str
    label_en: str
    count: int
    share: float | None


class RatingFigures(BaseModel):
    rated: int
    rated_rate: float | None  # of the cases served
    mean_score: float | None
    satisfied_rate: float | None  # 满意 or 非常满意
    bad: int  # 不满意 or 非常不满意
    levels: list[RatingLevel]


class Figures(BaseModel):
    taken: int
    served: int
    completed: int
    accepted: int
    returned: int
    no_shows: int
    cancelled: int
    abandoned_after_target: int  # cancelled before being called, after waiting past target
    transferred: int
    open: int  # still waiting or being served when last rolled up
    wait: WaitFigures
    handled: int
    handling_mean_s: float | None
    service_level: float | None  # called within target / (called + abandoned after target)
    within_target: int
    calls: CallFigures
    ratings: RatingFigures


class FollowupFigures(BaseModel):
    """Bad-rating follow-ups (差评回访) of the period, read live from their records."""

    opened: int
    closed_on_time: int
    overdue: int


class CommunityHomeFigures(BaseModel):
    """One community's home service in the period."""

    site_id: int
    name: str
    name_en: str = ""
    requests: int  # requests made in the period (any way in: hotline, phone, tablet)
    done: int  # visits done, of those starting in the period
    scheduled: int  # visits still scheduled, of those starting in the period


class HomeVisitFigures(BaseModel):
    """Home visits (上门服务) in the period, read live from their records; per community."""

    done: int
    scheduled: int
    requests: int = 0
    by_community: list[CommunityHomeFigures] = []


class ReminderFigures(BaseModel):
    """Licence-expiry reminders (证照到期提醒) of the area's registers in the period, read live."""

    planned: int  # came due
    queued: int  # handed to the SMS outbox
    delivered: int  # reported delivered by the carrier
    failed: int
    cancelled: int  # renewed, stopped by the resident or no phone
    opt_outs: int


class DeliveryFigures(BaseModel):
    """Courier deliveries (证照速递) of licences issued by the halls of the area, read live."""

    delivered: int  # handed over in the period
    failed_attempts: int  # attempts at the door that failed in the period
    open: int  # created in the period and not delivered yet


class NotYet(BaseModel):
    """A figure whose records the system does not keep yet."""

    available: bool = False
    note: str
    note_en: str


class DailySeries(BaseModel):
    """The period's figures day by day, one list per figure (a year is 366 points each)."""

    day: list[dt.date]
    taken: list[int]
    served: list[int]
    no_shows: list[int]
    cancelled: list[int]
    wait_mean_s: list[float | None]
    wait_p90_s: list[float | None]  # only for periods shorter than 92 days
    service_level: list[float | None]
    handling_mean_s: list[float | None]
    rated: list[int]
    satisfied_rate: list[float | None]


class Heatmap(BaseModel):
    """Tickets taken by weekday (0 = Monday) × hour of the local day, over the period."""

    counts: list[list[int]]  # [weekday][hour]
    days: list[int]  # how many days of each weekday the period has
    peak: int


class WaitBin(BaseModel):
    upper_s: int | None  # inclusive; None: the last, open bin
    count: int


class RowFigures(BaseModel):
    """A table row's figures: the same definitions as Figures, flat (a year by clerk is
    hundreds of rows)."""

    taken: int
    served: int
    no_shows: int
    cancelled: int
    transferred: int
    open: int
    wait_mean_s: float | None
    wait_p50_s: float | None
    wait_p90_s: float | None
    handling_mean_s: float | None
    service_level: float | None
    calls: int
    connected_rate: float | None
    poor_rate: float | None
    rated: int
    mean_score: float | None
    satisfied_rate: float | None
    bad: int
    levels: list[int]  # ratings on each level, 5 非常满意 first


class BreakdownRow(BaseModel):
    key: str
    name: str
    name_en: str = ""
    parent: str = ""  # a line's hall, an item's department, a clerk's line
    figures: RowFigures


class Period(BaseModel):
    first_day: dt.date
    last_day: dt.date
    start: dt.datetime
    end: dt.datetime
    days: int


class StatsRead(BaseModel):
    period: Period
    as_of: dt.datetime | None  # every ticket taken before this is in the figures
    lines: int  # lines the figures cover
    target_seconds: int  # the default wait target (a line may have its own)
    totals: Figures
    daily: DailySeries
    heatmap: Heatmap
    wait_bins: list[WaitBin]
    by: Breakdown
    breakdown: list[BreakdownRow]
    total_row: RowFigures  # the totals as a table row
    followups: FollowupFigures | NotYet
    home_visits: HomeVisitFigures | NotYet
    deliveries: DeliveryFigures | NotYet
    reminders: ReminderFigures | NotYet


class Option(BaseModel):
    id: int | str
    name: str
    name_en: str = ""
    parent: int | str | None = None  # a line's hall, an item's department, a clerk's line
    department: str | None = None  # a line's or an item's department


class StatsOptions(BaseModel):
    """What the filters offer the caller: only what lies in their area."""

    sites: list[Option]  # the district and towns of the area, then halls
    departments: list[Option]
    lines: list[Option]
    items: list[Option]
    clerks: list[Option]
    today: dt.date
    default_target_seconds: int = Field(ge=0)
