"""Tables of outreach: messages sent to residents, and the SMS outbox."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Literal

import pydantic
from pydantic import AwareDatetime, BaseModel, ConfigDict
from sqlalchemy import JSON, Column, Date, Index, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from core.db import UTCDateTime, utcnow
from core.inputs import Id
from core.models import EligibilityProblem


class SmsMessage(SQLModel, table=True):
    """An SMS as handed to the gateway (the log gateway keeps only this record)."""

    __tablename__ = "sms_message"
    id: int | None = Field(default=None, primary_key=True)
    phone: str = Field(max_length=20, index=True)
    body: str = Field(max_length=500)
    kind: str = Field(max_length=32)
    created_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


# -- home service (上门服务): requests, their visits, and the shapes the pages read


class HomeStatus(StrEnum):
    requested = "requested"  # waiting for the coordinator
    needs_info = "needs_info"  # the coordinator asked for more information
    accepted = "accepted"  # to be given a visit
    scheduled = "scheduled"  # a visit has a time and a field staff member
    visited = "visited"  # the visit took place
    handled = "handled"  # the case was handled
    delivered = "delivered"  # the result reached the resident
    declined = "declined"
    cancelled = "cancelled"


HOME_CLOSED = frozenset({HomeStatus.delivered, HomeStatus.declined, HomeStatus.cancelled})
# One open request per resident and item: a second call about the same thing finds the first.
HOME_OPEN_SQL = text("status NOT IN ('delivered', 'declined', 'cancelled')")


class HomeChannel(StrEnum):
    hotline = "hotline"  # a hotline operator took a phone call
    resident = "resident"  # the resident on their phone
    point = "point"  # a community worker on the tablet


class HomeBasis(StrEnum):
    """Why a resident may be served at home (the catalog says which apply to an item)."""

    elderly = "elderly"  # 60 or over, from the ID number's birth date
    disabled = "disabled"  # a disability certificate on file
    pregnant = "pregnant"  # declared with an expected date, checked at the visit


class HomeRequest(SQLModel, table=True):
    """A resident's request to have an item handled at home; part of its case's record.

    The basis, a declared pregnancy's expected date, the full address and the notes are
    sensitive personal information (PIPL Art. 28): they are kept only in `private_cipher`
    (AES-GCM, bound to this row), shown to the roles that need them and audited when shown.
    """

    __tablename__ = "home_request"
    __table_args__ = (
        Index(
            "ux_home_request_open",
            "resident_id",
            "item_id",
            unique=True,
            sqlite_where=HOME_OPEN_SQL,
            postgresql_where=HOME_OPEN_SQL,
        ),
    )
    id: int | None = Field(default=None, primary_key=True)
    resident_id: int = Field(foreign_key="resident.id", index=True)
    item_id: int = Field(foreign_key="service_item.id")
    case_id: int = Field(foreign_key="service_case.id", index=True)
    # The resident's community: its area's coordinators triage the request.
    site_id: int = Field(foreign_key="site.id", index=True)
    channel: str = Field(max_length=16)
    status: str = Field(max_length=16, index=True)
    created_by: int | None = Field(default=None, foreign_key="staff.id", index=True)
    created_at: dt.datetime = Field(
        default_factory=utcnow, sa_type=UTCDateTime, nullable=False, index=True
    )
    updated_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    closed_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    preferred: list[dict[str, str]] = Field(default_factory=list, sa_type=JSON)
    address_masked: str = Field(default="", max_length=200)
    private_cipher: str = Field(default="", max_length=8000)
    info_question: str = Field(default="", max_length=500)
    decline_reason: str = Field(default="", max_length=500)


class VisitStatus(StrEnum):
    scheduled = "scheduled"
    done = "done"
    cancelled = "cancelled"  # rescheduled, or the request ended before it


class HomeVisit(SQLModel, table=True):
    """One planned visit of a field staff member for a request (set by hand or by a planner)."""

    __tablename__ = "home_visit"
    __table_args__ = (
        Index(
            "ux_home_visit_open",
            "request_id",
            unique=True,
            sqlite_where=text("status = 'scheduled'"),
            postgresql_where=text("status = 'scheduled'"),
        ),
        Index("ix_home_visit_staff_time", "staff_id", "starts_at"),
    )
    id: int | None = Field(default=None, primary_key=True)
    request_id: int = Field(foreign_key="home_request.id", index=True)
    staff_id: int = Field(foreign_key="staff.id")
    starts_at: dt.datetime = Field(sa_type=UTCDateTime, nullable=False)
    ends_at: dt.datetime = Field(sa_type=UTCDateTime, nullable=False)
    status: str = Field(max_length=16)
    planned_by: str = Field(default="coordinator", max_length=16)  # coordinator | planner
    created_by: int | None = Field(default=None, foreign_key="staff.id")
    created_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    done_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    # Whether the visit confirmed the basis (for a pregnancy: seen at the visit; age and a
    # certificate are confirmed by the records). Kept for every basis, so it names none.
    basis_confirmed: bool | None = Field(default=None)


class PreferredTime(BaseModel):
    """A half day the resident would like the visit in."""

    model_config = ConfigDict(extra="forbid")
    date: dt.date
    part: Literal["am", "pm"]


class HomeCheckIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    resident_id: Id | None = None  # staff: required; a resident checks for themself
    item_code: str = pydantic.Field(min_length=1, max_length=32)
    pregnant_due: dt.date | None = None  # a declared pregnancy's expected date


class HomeRequestIn(HomeCheckIn):
    preferred: list[PreferredTime] = pydantic.Field(default_factory=list, max_length=6)
    address: str = pydantic.Field(default="", max_length=200)  # empty: the address on record
    notes: str = pydantic.Field(default="", max_length=500)
    community_id: Id | None = None  # where the resident lives, when the record has none


class HomeFind(BaseModel):
    """The hotline's lookup: the caller's ID number, or the phone number they registered."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    id_number: str = pydantic.Field(default="", max_length=32)
    phone: str = pydantic.Field(default="", max_length=20)


class HomeNote(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    note: str = pydantic.Field(default="", max_length=500)


class HomeReason(BaseModel):
    """A question to the resident, a reason to decline or cancel: said in words, never empty."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    text: str = pydantic.Field(min_length=2, max_length=500)


class HomeAnswerIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    text: str = pydantic.Field(min_length=1, max_length=500)
    address: str = pydantic.Field(default="", max_length=200)
    preferred: list[PreferredTime] | None = pydantic.Field(default=None, max_length=6)
    pregnant_due: dt.date | None = None


class HomeScheduleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    starts_at: AwareDatetime
    minutes: int = pydantic.Field(default=60, ge=15, le=240)
    staff_id: Id

    @pydantic.field_validator("starts_at")
    @classmethod
    def _plausible(cls, v: dt.datetime) -> dt.datetime:
        # Comparing and adding to a time near year 1 or 9999 overflows; no visit is there.
        if not 2000 <= v.year <= 2100:
            raise ValueError("a visit time is between the years 2000 and 2100")
        return v


class HomeVisitDoneIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    basis_confirmed: bool


class HomeItemRead(BaseModel):
    code: str
    name: str
    name_en: str
    department_name: str
    remote_capable: bool
    home_for: list[HomeBasis]


class HomeAlternative(BaseModel):
    """Where an ineligible resident can be served instead."""

    kind: Literal["hall", "remote_assist", "appointment"]
    site_id: int
    site_name: str
    site_name_en: str
    address: str
    distance_km: float | None = None  # from the resident's community point
    line_id: int | None = None
    line_name: str | None = None


class HomeCheckRead(BaseModel):
    """Whether a resident can be served at home for an item, why not, and what else there is.

    `basis` is withheld (null) from roles that need not know it (see docs/home-service.md).
    """

    item_code: str
    resident_id: int
    eligible: bool
    basis: HomeBasis | None
    problems: list[EligibilityProblem]
    item_problems: list[EligibilityProblem]  # the item's own rules, weighed at triage
    alternatives: list[HomeAlternative]
    address_on_file: bool
    address_masked: str
    community_id: int | None
    community_name: str | None
    open_request_id: int | None


class HomeVisitRead(BaseModel):
    id: int
    staff_id: int
    staff_name: str
    starts_at: dt.datetime
    ends_at: dt.datetime
    status: VisitStatus
    planned_by: str
    done_at: dt.datetime | None


class HomePrivate(BaseModel):
    """The sensitive part of a request, shown to the resident and to the roles that need it."""

    basis: HomeBasis
    pregnant_due: dt.date | None
    address: str
    notes: str


class HomeRequestRead(BaseModel):
    id: int
    case_id: int
    case_number: str
    resident_id: int
    resident_name: str
    resident_id_masked: str
    resident_age: int
    resident_phone_masked: str
    item_code: str
    item_name: str
    item_name_en: str
    site_id: int
    site_name: str
    channel: HomeChannel
    status: HomeStatus
    created_at: dt.datetime
    updated_at: dt.datetime
    created_by_name: str | None
    preferred: list[PreferredTime]
    address_masked: str
    info_question: str
    decline_reason: str
    visit: HomeVisitRead | None
    private: HomePrivate | None = None


class HomeStaffChoice(BaseModel):
    id: int
    display_name: str
    site_names: list[str]
    visits_today: int


class HomeCounts(BaseModel):
    """Requests of one community point in a period, by what became of them."""

    site_id: int
    site_name: str
    requested: int
    accepted: int
    declined: int
    visited: int
    delivered: int


class OutboxStatus(StrEnum):
    pending = "pending"  # waiting to be sent (first try, or a retry after its backoff)
    sending = "sending"  # claimed by a node's sender, under its lease
    sent = "sent"  # the carrier accepted it (message_id is the carrier's id)
    failed = "failed"  # the carrier refused it for good (bad number, template rejected)
    expired = "expired"  # not sent within its template's ttl (a login code too late to use)


class Delivery(StrEnum):
    delivered = "delivered"
    undelivered = "undelivered"


class SmsOutbox(SQLModel, table=True):
    """One message to send: added in the caller's transaction, sent after it commits.

    `key` makes queuing idempotent (a second message with the same key is not added);
    `out_id` is our own id, handed to the carrier with every attempt (Aliyun OutId, Tencent
    SessionContext), so a re-sent message can be matched to the first try. A node's sender
    claims due rows under a lease (lease_owner, lease_until); `attempts` counts claims and,
    with lease_owner, fences a late answer from a node whose lease has run out.
    """

    __tablename__ = "sms_outbox"
    __table_args__ = (Index("ix_sms_outbox_due", "status", "next_attempt_at"),)
    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=200, unique=True)
    out_id: str = Field(max_length=64, unique=True)
    phone: str = Field(max_length=20)
    kind: str = Field(max_length=32)
    params: dict[str, str] = Field(default_factory=dict, sa_type=JSON)
    body: str = Field(default="", max_length=500)  # rendered; secret parameters masked
    status: str = Field(default=OutboxStatus.pending, max_length=16)
    carrier: str = Field(default="", max_length=16)  # who sent it (set when claimed)
    attempts: int = 0
    lease_expiries: int = 0  # claims that took over from a sender whose lease ran out
    not_before: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    next_attempt_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    expires_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    lease_owner: str | None = Field(default=None, max_length=100)
    lease_until: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    message_id: str | None = Field(default=None, max_length=100, index=True)
    error_code: str = Field(default="", max_length=64)
    error_message: str = Field(default="", max_length=200)
    created_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    sent_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    delivery: str = Field(default="", max_length=16)  # from the carrier's delivery report
    delivery_code: str = Field(default="", max_length=64)
    delivered_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)


# -- licences: the register, each type's reminder policy, the reminders and the opt-outs
# (outreach/licences.py, outreach/reminders.py, docs/reminders.md)

# Rows the daily reminder run and the dispatch read: a partial index holds only these, and
# statements name the predicate literally so PostgreSQL can use it.
LICENCE_ACTIVE_SQL = text("status = 'active'")
REMINDER_SCHEDULED_SQL = text("status = 'scheduled'")


class LicenceStatus(StrEnum):
    active = "active"
    renewed = "renewed"  # a newer licence of the same type for the same holder replaced it
    revoked = "revoked"


class LicenceSource(StrEnum):
    case = "case"  # issued by a completed case whose item yields a licence
    imported = "import"  # registered from an import of existing licences


class LicenceType(SQLModel, table=True):
    """A kind of licence (证照): how long one is valid; its policy is its reminder offsets."""

    __tablename__ = "licence_type"
    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=32, unique=True, index=True)
    name: str = Field(max_length=100)
    name_en: str = Field(default="", max_length=200)
    validity_months: int = Field(default=60)
    active: bool = Field(default=True)


class LicenceReminderOffset(SQLModel, table=True):
    """One reminder of a type's policy: days from the expiry date (-90 before, +1 after)."""

    __tablename__ = "licence_reminder_offset"
    type_id: int = Field(foreign_key="licence_type.id", primary_key=True)
    offset_days: int = Field(primary_key=True)


class LicenceImport(SQLModel, table=True):
    """One file of existing licences, imported whole (or not at all)."""

    __tablename__ = "licence_import"
    id: int | None = Field(default=None, primary_key=True)
    filename: str = Field(default="", max_length=200)
    sha256: str = Field(max_length=64)
    rows: int
    residents_created: int = Field(default=0)
    site_id: int = Field(foreign_key="site.id")
    imported_by: int | None = Field(default=None, foreign_key="staff.id")
    at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


class Licence(SQLModel, table=True):
    """A licence held by a resident, in the register of the office (site) that issued it.

    `ix_licence_due` makes "whose reminder at offset d is due today" a range scan on the
    expiry date over active licences only.
    """

    __tablename__ = "licence"
    __table_args__ = (
        UniqueConstraint("type_id", "number", name="ux_licence_number"),
        Index(
            "ix_licence_due",
            "expires_on",
            "type_id",
            postgresql_where=LICENCE_ACTIVE_SQL,
            sqlite_where=LICENCE_ACTIVE_SQL,
        ),
    )
    id: int | None = Field(default=None, primary_key=True)
    type_id: int = Field(foreign_key="licence_type.id")
    number: str = Field(max_length=64)
    resident_id: int = Field(foreign_key="resident.id", index=True)
    site_id: int = Field(foreign_key="site.id", index=True)
    issued_on: dt.date = Field(sa_column=Column(Date, nullable=False))
    expires_on: dt.date = Field(sa_column=Column(Date, nullable=False))
    status: str = Field(default=LicenceStatus.active, max_length=16)
    source: str = Field(max_length=16)
    case_id: int | None = Field(default=None, foreign_key="service_case.id", unique=True)
    import_id: int | None = Field(default=None, foreign_key="licence_import.id", index=True)
    renewed_by: int | None = Field(default=None, foreign_key="licence.id")
    renewed_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


class ReminderStatus(StrEnum):
    scheduled = "scheduled"  # due; waits for its send time (quiet hours)
    queued = "queued"  # handed to the SMS outbox (its delivery is on the outbox row)
    cancelled = "cancelled"  # not sent: see the reason


class ReminderReason(StrEnum):
    renewed = "renewed"  # the licence was renewed (or revoked) first
    opted_out = "opted_out"  # the resident stopped these reminders first
    no_phone = "no_phone"  # the resident has no phone number on record


class LicenceReminder(SQLModel, table=True):
    """One reminder of one licence at one offset on one channel; the unique key keeps it one,
    whatever runs twice. `sms_key` is its message's key in the SMS outbox."""

    __tablename__ = "licence_reminder"
    __table_args__ = (
        UniqueConstraint("licence_id", "offset_days", "channel", name="ux_licence_reminder"),
        Index(
            "ix_licence_reminder_send",
            "send_after",
            postgresql_where=REMINDER_SCHEDULED_SQL,
            sqlite_where=REMINDER_SCHEDULED_SQL,
        ),
    )
    id: int | None = Field(default=None, primary_key=True)
    licence_id: int = Field(foreign_key="licence.id")
    offset_days: int
    channel: str = Field(default="sms", max_length=8)
    due_on: dt.date = Field(sa_column=Column(Date, nullable=False))
    send_after: dt.datetime = Field(sa_type=UTCDateTime, nullable=False)
    status: str = Field(default=ReminderStatus.scheduled, max_length=16)
    reason: str = Field(default="", max_length=16)
    planned_at: dt.datetime = Field(
        default_factory=utcnow, sa_type=UTCDateTime, nullable=False, index=True
    )
    queued_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime, index=True)
    sms_key: str = Field(default="", max_length=200)


class ReminderOptOut(SQLModel, table=True):
    """A resident stopped reminders of one licence type, or (type empty) of every type."""

    __tablename__ = "reminder_opt_out"
    __table_args__ = (
        Index(
            "ux_reminder_opt_out_type",
            "resident_id",
            "type_id",
            unique=True,
            postgresql_where=text("type_id IS NOT NULL"),
            sqlite_where=text("type_id IS NOT NULL"),
        ),
        Index(
            "ux_reminder_opt_out_all",
            "resident_id",
            unique=True,
            postgresql_where=text("type_id IS NULL"),
            sqlite_where=text("type_id IS NULL"),
        ),
    )
    id: int | None = Field(default=None, primary_key=True)
    resident_id: int = Field(foreign_key="resident.id")
    type_id: int | None = Field(default=None, foreign_key="licence_type.id")
    source: str = Field(max_length=16)  # page | sms
    created_at: dt.datetime = Field(
        default_factory=utcnow, sa_type=UTCDateTime, nullable=False, index=True
    )


class LicenceTypeRead(BaseModel):
    id: int
    code: str
    name: str
    name_en: str
    validity_months: int
    active: bool
    offsets: list[int]  # the reminder policy, in days from expiry, earliest first
    items: list[str] = []  # codes of the catalog items that yield it


class PolicyIn(BaseModel):
    """A type's reminder policy: days before (negative) or after (positive) the expiry date."""

    model_config = ConfigDict(extra="forbid", strict=True)
    offsets: list[int] = pydantic.Field(max_length=12)

    @pydantic.field_validator("offsets")
    @classmethod
    def _offsets(cls, v: list[int]) -> list[int]:
        if any(not -366 <= d <= 366 for d in v):
            raise ValueError("each offset is between -366 and 366 days")
        if len(set(v)) != len(v):
            raise ValueError("an offset appears twice")
        return sorted(v)


class ReminderRead(BaseModel):
    id: int
    offset_days: int
    channel: str
    due_on: dt.date
    send_after: dt.datetime
    status: ReminderStatus
    reason: str
    queued_at: dt.datetime | None
    # From the SMS outbox: pending, sending, sent, failed, expired; then the carrier's report.
    sms_status: str | None = None
    delivery: str | None = None
    delivered_at: dt.datetime | None = None


class LicenceRead(BaseModel):
    id: int
    type_id: int
    type_code: str
    type_name: str
    type_name_en: str
    number: str
    resident_id: int
    holder_name: str
    holder_id_masked: str
    holder_phone_masked: str
    site_id: int
    site_name: str
    issued_on: dt.date
    expires_on: dt.date
    status: LicenceStatus
    source: LicenceSource
    case_id: int | None
    renewed_by: int | None
    reminders: list[ReminderRead] = []


class LicencePage(BaseModel):
    items: list[LicenceRead]
    total: int


class LicenceImportRead(BaseModel):
    id: int
    filename: str
    rows: int
    residents_created: int
    renewed: int = 0
    site_id: int
    site_name: str
    at: dt.datetime


class ImportRowError(BaseModel):
    """One problem of an import file, where a person finds it: the row, the column."""

    row: int  # as the spreadsheet numbers it (the header is row 1)
    column: str
    code: str
    message: str


class RenewWays(BaseModel):
    """The catalog item that issues a licence type, and the ways a resident can apply for it."""

    item_code: str
    item_name: str
    item_name_en: str
    remote: bool  # through the cloud window (take a number on the phone)
    home_visit: bool  # at home, for those who qualify


class ResidentLicenceRead(BaseModel):
    """A licence on the holder's own page: what it is, when it ends, what reminders it has."""

    id: int
    type_id: int
    type_name: str
    type_name_en: str
    number_masked: str
    expires_on: dt.date
    status: LicenceStatus
    days_left: int
    stopped: bool  # the resident stopped reminders of this type (or of every type)
    next_reminder: dt.date | None
    reminders: list[ReminderRead]
    renew: RenewWays | None = None  # how to renew it: the item that issues this type


class ResidentRemindersRead(BaseModel):
    licences: list[ResidentLicenceRead]
    all_stopped: bool
    stopped_types: list[int]


class ReminderStopIn(BaseModel):
    """Stop (or restart) reminders of one licence type, or with no type of every type."""

    model_config = ConfigDict(extra="forbid", strict=True)
    type_id: Id | None = None
    stop: bool


class ReminderTypeCount(BaseModel):
    type_id: int
    type_code: str
    type_name: str
    planned: int
    queued: int
    delivered: int


class ReminderCounts(BaseModel):
    """Licence-expiry reminders in a period [start, end), as the district reports them."""

    start: dt.datetime
    end: dt.datetime
    planned: int  # reminders that came due
    queued: int  # handed to the SMS outbox
    sent: int  # accepted by the carrier
    delivered: int  # the carrier reported them delivered
    failed: int  # refused, undelivered or expired
    cancelled_renewed: int
    cancelled_opted_out: int
    cancelled_no_phone: int
    opt_outs: int  # residents who stopped reminders in the period (page or SMS)
    by_type: list[ReminderTypeCount]
