"""Tables of scheduling: appointments on a window line; visit plans and check-ins."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Annotated, Any

import pydantic
from pydantic import AwareDatetime, BaseModel, ConfigDict
from sqlalchemy import JSON, Column, Date, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from core.db import UTCDateTime, utcnow
from core.inputs import Id
from scheduler.planning.problem import Clock, Plan, Totals


class AppointmentStatus(StrEnum):
    booked = "booked"
    checked_in = "checked_in"  # a ticket was taken for it: served with priority
    cancelled = "cancelled"
    no_show = "no_show"  # not checked in by its end (scheduler/calendars.py, the sweep)


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


# -- visit plans (scheduler/plans.py, docs/planning.md)


class PlanStatus(StrEnum):
    draft = "draft"
    published = "published"  # its visits were scheduled; the field staff follow it
    superseded = "superseded"  # a later version of the same day was published


class PlanChange(StrEnum):
    """What made a version: a fresh plan, a lock, a move by hand, or a re-plan."""

    plan = "plan"
    lock = "lock"
    move = "move"
    replan = "replan"


class VisitPlan(SQLModel, table=True):
    """One version of a day's home-visit plan of an area (a town or the district).

    Versions are never edited: a lock, a move or a re-plan makes the next version, so what was
    published, and what each step changed, stays on record. `problem` and `plan` are in the
    format of docs/planning.md (visit ids `r<request id>`, staff ids `s<staff id>`)."""

    __tablename__ = "visit_plan"
    __table_args__ = (UniqueConstraint("site_id", "day", "version"),)
    id: int | None = Field(default=None, primary_key=True)
    site_id: int = Field(foreign_key="site.id", index=True)
    day: dt.date = Field(sa_column=Column(Date, nullable=False, index=True))
    version: int
    status: str = Field(max_length=16)
    change: str = Field(max_length=16)
    parent_id: int | None = Field(default=None, foreign_key="visit_plan.id")
    note: str = Field(default="", max_length=300)
    problem: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    plan: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    # Requests left out before solving (no window that day, too late today): [{visit, reason}]
    skipped: list[dict[str, Any]] = Field(default_factory=list, sa_type=JSON)
    locked: list[str] = Field(default_factory=list, sa_type=JSON)  # visit ids kept as planned
    urgent: list[int] = Field(default_factory=list, sa_type=JSON)  # request ids marked urgent
    created_by: int | None = Field(default=None, foreign_key="staff.id")
    created_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    published_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    published_by: int | None = Field(default=None, foreign_key="staff.id")


class VisitCheckIn(SQLModel, table=True):
    """A field staff member's arrival at a resident's door: the time and where the tablet was.

    GPS is whereabouts, sensitive personal information (PIPL Art. 28): recorded for the visit
    only, and every record of it is audited."""

    __tablename__ = "visit_check_in"
    id: int | None = Field(default=None, primary_key=True)
    visit_id: int = Field(foreign_key="home_visit.id", unique=True)
    staff_id: int = Field(foreign_key="staff.id", index=True)
    at: dt.datetime = Field(sa_type=UTCDateTime, nullable=False)
    lat: float
    lng: float
    accuracy_m: float | None = Field(default=None)


# -- visit plans: request and response shapes

PlanKey = Annotated[str, pydantic.Field(min_length=2, max_length=20, pattern=r"^[rs][0-9]+$")]


def _plausible_day(v: dt.date) -> dt.date:
    # Adding a day to date.max overflows; no visit is planned outside these years.
    if not 2000 <= v.year <= 2100:
        raise ValueError("a day between the years 2000 and 2100")
    return v


PlanDay = Annotated[dt.date, pydantic.AfterValidator(_plausible_day)]


class PlanIn(BaseModel):
    """Plan a day (or several: visits that do not fit roll to the next day) of an area."""

    model_config = ConfigDict(extra="forbid")
    site_id: Id  # a town (its field staff and its communities' requests), or the district
    day: PlanDay
    days: int = pydantic.Field(default=1, ge=1, le=5)
    staff_ids: list[Id] = pydantic.Field(default_factory=list, max_length=100)  # []: everyone
    urgent: list[Id] = pydantic.Field(default_factory=list, max_length=500)  # request ids
    seconds: float | None = pydantic.Field(default=None, gt=0, le=60)


class LockIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    visits: list[PlanKey] = pydantic.Field(min_length=1, max_length=500)
    locked: bool


class MoveIn(BaseModel):
    """Move one visit by hand: to a staff member's shift, at a position, optionally at a time."""

    model_config = ConfigDict(extra="forbid")
    visit: PlanKey
    staff: PlanKey
    shift: int = pydantic.Field(ge=0, le=5)
    position: int = pydantic.Field(ge=0, le=1000)  # 0: first; past the end: last
    start: Clock | None = None  # "HH:MM": start then (it must be reachable and in a window)


class ReplanIn(BaseModel):
    """Re-plan the rest of the day: after a cancellation, or with urgent requests added."""

    model_config = ConfigDict(extra="forbid")
    urgent: list[Id] = pydantic.Field(default_factory=list, max_length=500)
    from_time: Clock | None = None  # visits before it stay; default: now (today), else 0:00
    seconds: float | None = pydantic.Field(default=None, gt=0, le=60)


class PlanQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    site_id: Id
    day: PlanDay


class PlanSiteQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    site_id: Id


class PlanAreaRead(BaseModel):
    id: int
    name: str
    name_en: str
    kind: str


class PlanStaffRead(BaseModel):
    key: str  # "s<staff id>", as in the problem
    staff_id: int
    name: str
    skills: list[str]
    depot: str


class PlanDepotRead(BaseModel):
    key: str
    name: str
    name_en: str
    lat: float
    lng: float


class PlanVisitRead(BaseModel):
    """A request in the plan (or left out of it), as the coordinator sees it: no address, no
    basis (the plan page needs neither)."""

    key: str  # "r<request id>"
    request_id: int
    case_number: str
    status: str  # the request's status now
    resident_name: str
    resident_age: int
    item_name: str
    item_name_en: str
    community: str
    lat: float | None
    lng: float | None
    duration: int  # seconds at the door
    windows: list[tuple[int, int]]
    skills: list[str]
    priority: int
    urgent: bool
    locked: bool
    required: bool
    checked_in_at: dt.datetime | None = None


class PlanSummary(BaseModel):
    id: int
    site_id: int
    day: dt.date
    version: int
    status: PlanStatus
    change: PlanChange
    note: str
    created_at: dt.datetime
    created_by_name: str
    published_at: dt.datetime | None
    totals: Totals


class PlanRead(PlanSummary):
    site_name: str
    plan: Plan
    skipped: list[dict[str, Any]]
    locked: list[str]
    urgent: list[int]
    staff: list[PlanStaffRead]
    depots: list[PlanDepotRead]
    visits: list[PlanVisitRead]
    latest: bool
    tile_url: str = ""  # the map's tiles (settings); empty: the plain drawing
    tile_attribution: str = ""


class BreachRead(BaseModel):
    code: str
    staff: str
    visit: str | None
    at: int | None
    limit: int | None
    message: str
    message_en: str


class MoveCheckRead(BaseModel):
    """What a move would do: whether it keeps every rule, why not, and the change in cost."""

    feasible: bool
    breaches: list[BreachRead]
    distance_delta: int  # metres, the proposed plan minus the version's
    duration_delta: int  # seconds
    plan: Plan


# -- the visit day (scheduler/field.py)


class DayQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    day: PlanDay | None = None  # default: today


class FieldStopRead(BaseModel):
    """A stop of the field worker's day: who, where, when; the address is sensitive (PIPL):
    shown only to the visitor, and each showing is audited."""

    visit_id: int
    request_id: int
    case_id: int
    case_number: str
    order: int
    starts_at: dt.datetime
    ends_at: dt.datetime
    status: str  # the visit's: scheduled | done | cancelled
    request_status: str
    resident_name: str
    resident_age: int
    phone_masked: str
    address: str
    notes: str
    item_code: str
    item_name: str
    item_name_en: str
    community: str
    lat: float
    lng: float
    nav_url: str
    checked_in_at: dt.datetime | None


class FieldRouteRead(BaseModel):
    day: dt.date
    staff_name: str
    depot: PlanDepotRead | None
    stops: list[FieldStopRead]
    tile_url: str
    tile_attribution: str


class CheckInIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    lat: float = pydantic.Field(ge=-90, le=90, allow_inf_nan=False)
    lng: float = pydantic.Field(ge=-180, le=180, allow_inf_nan=False)
    accuracy_m: float | None = pydantic.Field(default=None, ge=0, le=100_000, allow_inf_nan=False)


class CheckInRead(BaseModel):
    visit_id: int
    at: dt.datetime
    accuracy_m: float | None


class ServicePointRead(BaseModel):
    """What the tablet needs to take a number for a visit's case at the home."""

    visit_id: int
    case_id: int
    case_number: str
    item_code: str
    site_id: int  # the resident's community: the point the number is taken for
    line_id: int | None
    resident_id: int
    resident_name: str
    resident_id_masked: str
    resident_age: int
    checked_in: bool


# -- deliveries (证照速递: scheduler/deliveries.py, docs/delivery.md)


class DeliveryStatus(StrEnum):
    pending = "pending"  # waiting at the hall for its day (a first attempt or a re-attempt)
    dispatched = "dispatched"  # the courier set out with it; the resident has the code
    delivered = "delivered"  # handed over, with its proof
    locked = "locked"  # too many wrong last-4 digits or codes: a supervisor must release it


OPEN_DELIVERY = (DeliveryStatus.pending, DeliveryStatus.dispatched)


class FailReason(StrEnum):
    not_home = "not_home"
    refused = "refused"
    wrong_address = "wrong_address"


class Recipient(StrEnum):
    resident = "resident"  # the resident themself: last 4 of their ID and the SMS code
    proxy = "proxy"  # someone else (代收), authorised by the resident's SMS code


class Delivery(SQLModel, table=True):
    """The courier delivery of a completed case's licence from the issuing hall to the
    resident's address, once per case.

    The address is whereabouts (PIPL Art. 28): kept only encrypted, bound to the case, and shown
    to the assigned courier alone, each showing audited. The 6-digit code sent at dispatch is
    kept as a keyed hash bound to the delivery, so a code of another delivery never matches."""

    __tablename__ = "delivery"
    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="service_case.id", unique=True)
    licence_id: int | None = Field(default=None, foreign_key="licence.id")
    resident_id: int = Field(foreign_key="resident.id", index=True)
    from_site_id: int = Field(foreign_key="site.id", index=True)  # the issuing hall
    to_site_id: int = Field(foreign_key="site.id")  # the resident's community (where it goes)
    address_cipher: str = Field(max_length=1000)
    address_masked: str = Field(default="", max_length=200)
    courier_id: int | None = Field(default=None, foreign_key="staff.id", index=True)
    day: dt.date = Field(sa_column=Column(Date, nullable=False, index=True))
    status: str = Field(max_length=16, index=True)
    attempt: int = Field(default=1)  # the attempt under way (1, then 2 after a failure ...)
    code_hash: str = Field(default="", max_length=64)
    code_expires_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    wrong_last4: int = Field(default=0)
    wrong_codes: int = Field(default=0)
    locked_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    updated_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    delivered_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)


class DeliveryAttempt(SQLModel, table=True):
    """A failed attempt at the door: why, where the phone was, and the day of the next one."""

    __tablename__ = "delivery_attempt"
    __table_args__ = (UniqueConstraint("delivery_id", "attempt"),)
    id: int | None = Field(default=None, primary_key=True)
    delivery_id: int = Field(foreign_key="delivery.id", index=True)
    attempt: int
    courier_id: int = Field(foreign_key="staff.id")
    reason: str = Field(max_length=16)
    note: str = Field(default="", max_length=300)
    at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    lat: float | None = None
    lng: float | None = None
    next_day: dt.date = Field(sa_column=Column(Date, nullable=False))


class DeliveryProof(SQLModel, table=True):
    """The proof of a handover: who took it, a photo, a signature, where and when.

    `key` is the phone's idempotency key: a proof sent again after a lost answer (a weak
    network) finds the first one instead of making another. Only the last 4 digits of a
    proxy's ID are kept; the resident's own are checked and not stored."""

    __tablename__ = "delivery_proof"
    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=64, unique=True)
    delivery_id: int = Field(foreign_key="delivery.id", unique=True)
    courier_id: int = Field(foreign_key="staff.id")
    recipient: str = Field(max_length=16)
    proxy_name: str = Field(default="", max_length=50)
    proxy_id_last4: str = Field(default="", max_length=4)
    proxy_relation: str = Field(default="", max_length=20)
    photo_key: str = Field(max_length=200)
    signature_key: str = Field(max_length=200)
    lat: float
    lng: float
    accuracy_m: float | None = None
    captured_at: dt.datetime = Field(sa_type=UTCDateTime, nullable=False)  # on the phone
    received_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


# -- deliveries: request and response shapes

Last4 = Annotated[str, pydantic.StringConstraints(pattern=r"^[0-9]{3}[0-9Xx]$")]
Code6 = Annotated[str, pydantic.StringConstraints(pattern=r"^[0-9]{6}$")]


class DeliveryChoiceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    deliver: bool


class DeliveryChoiceRead(BaseModel):
    """How the case's licence reaches the resident: picked up at the hall, or brought home."""

    case_id: int
    deliver: bool  # brought home (chosen, or a home-service case)
    available: bool = True  # the item issues a licence (else there is nothing to choose)
    fixed: bool = False  # a home-service case: always brought home
    delivery_id: int | None = None  # the order, once made (then the choice is final)


class FailIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    reason: FailReason
    note: str = pydantic.Field(default="", max_length=300)
    lat: float | None = pydantic.Field(default=None, ge=-90, le=90, allow_inf_nan=False)
    lng: float | None = pydantic.Field(default=None, ge=-180, le=180, allow_inf_nan=False)


class ProofIn(BaseModel):
    """What the courier's phone sends at the door (queued there while offline)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    key: str = pydantic.Field(pattern=r"^[A-Za-z0-9_-]{16,64}$")
    recipient: Recipient
    last4: Last4  # the resident's (recipient resident) or the proxy's ID
    code: Code6
    proxy_name: str = pydantic.Field(default="", max_length=50)
    proxy_relation: str = pydantic.Field(default="", max_length=20)
    photo: str = pydantic.Field(min_length=8, max_length=1_400_000)  # base64 JPEG or PNG
    signature: str = pydantic.Field(min_length=8, max_length=400_000)  # base64 PNG
    lat: float = pydantic.Field(ge=-90, le=90, allow_inf_nan=False)
    lng: float = pydantic.Field(ge=-180, le=180, allow_inf_nan=False)
    accuracy_m: float | None = pydantic.Field(default=None, ge=0, le=100_000, allow_inf_nan=False)
    captured_at: AwareDatetime


class DeliveryQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: DeliveryStatus | None = None
    limit: int = pydantic.Field(default=50, ge=1, le=200)


class AttemptRead(BaseModel):
    attempt: int
    reason: FailReason
    note: str
    at: dt.datetime
    next_day: dt.date


class DeliveryRead(BaseModel):
    """A delivery as staff of its area see it (no address: only the courier sees that)."""

    id: int
    case_id: int
    case_number: str
    item_name: str
    item_name_en: str
    resident_name: str
    address_masked: str
    from_site: str
    courier_name: str
    day: dt.date
    status: DeliveryStatus
    attempt: int
    attempts: list[AttemptRead]
    locked_at: dt.datetime | None
    delivered_at: dt.datetime | None
    has_proof: bool


class CourierStopRead(BaseModel):
    """A stop of the courier's day; the address and the phone are the courier's alone."""

    order: int
    delivery: DeliveryRead
    address: str
    phone: str
    lat: float
    lng: float
    nav_url: str


class CourierDayRead(BaseModel):
    day: dt.date
    courier_name: str
    start: str  # where the round starts: the courier's hall
    stops: list[CourierStopRead]


class ProofRead(BaseModel):
    """The proof of a handover (each reading audited); links are short-lived."""

    delivery_id: int
    case_id: int
    recipient: Recipient
    proxy_name: str
    proxy_id_last4: str
    proxy_relation: str
    courier_name: str
    lat: float
    lng: float
    accuracy_m: float | None
    captured_at: dt.datetime
    received_at: dt.datetime
    photo_url: str
    signature_url: str


class ProofResult(BaseModel):
    """The answer to a proof: the same for the first post and any repeat of it."""

    delivery_id: int
    status: DeliveryStatus
    delivered_at: dt.datetime | None
    recipient: Recipient
    key: str


class ResidentDeliveryRead(BaseModel):
    """What the resident sees of their delivery: its step, the day, the courier's name."""

    id: int
    case_id: int
    item_name: str
    item_name_en: str
    status: DeliveryStatus
    day: dt.date
    courier_name: str
    address_masked: str
    attempts: list[AttemptRead]
    delivered_at: dt.datetime | None
    recipient: Recipient | None


# -- calendars: opening hours, slots per line (scheduler/calendars.py, docs/appointments.md)


class SiteHours(SQLModel, table=True):
    """One opening period of a site on a weekday (0 Monday .. 6 Sunday), in local minutes."""

    __tablename__ = "site_hours"
    __table_args__ = (UniqueConstraint("site_id", "weekday", "opens"),)
    id: int | None = Field(default=None, primary_key=True)
    site_id: int = Field(foreign_key="site.id", index=True)
    weekday: int
    opens: int  # minutes after local midnight
    closes: int


class LineSlots(SQLModel, table=True):
    """A line's own slot length and capacity; a line without a row uses the settings."""

    __tablename__ = "line_slots"
    line_id: int = Field(foreign_key="window_line.id", primary_key=True)
    slot_minutes: int
    capacity: int


# -- calendars: request and response shapes


class SlotsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    from_: dt.date | None = pydantic.Field(default=None, alias="from")
    days: int = pydantic.Field(default=7, ge=1, le=62)


class SlotRead(BaseModel):
    starts_at: dt.datetime
    ends_at: dt.datetime
    capacity: int
    remaining: int


class DayRead(BaseModel):
    """One local day of a line's calendar: open or why not, its hours and its slots."""

    date: dt.date
    open: bool
    reason: str  # "" | "holiday" | "closed" | "adjusted_workday" | "beyond_horizon"
    holiday: str  # the holiday's name (chinese-calendar), when there is one
    calendar_known: bool  # False: beyond the holiday data; plain weekdays assumed
    hours: list[str]
    slots: list[SlotRead]


class SlotsRead(BaseModel):
    line_id: int
    line_name: str
    site_name: str
    slot_minutes: int
    capacity: int
    horizon_days: int
    days: list[DayRead]


class AppointmentView(AppointmentRead):
    """An appointment with the names a page shows."""

    line_name: str
    site_name: str
    site_address: str
    item_code: str
    item_name: str
    item_name_en: str
