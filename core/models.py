"""Tables of the shared domain: sites, window lines, catalog, staff, residents, cases, audit,
and the record of a case's calls (who took part decides who may see the case).

One module on purpose: it is the shared schema, and every table sits beside the request and
response shapes that read and write it, so a column and its API field change together.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Any

import pydantic
from pydantic import BaseModel, ConfigDict, field_validator
from sqlalchemy import JSON, Column, Date, UniqueConstraint
from sqlmodel import Field, SQLModel

from core import idnumber
from core.db import UTCDateTime, utcnow
from core.inputs import Id


class Role(StrEnum):
    community_worker = "community_worker"
    clerk = "clerk"
    expert = "expert"
    supervisor = "supervisor"
    coordinator = "coordinator"
    courier = "courier"
    operator = "operator"  # hotline operator taking residents' phone calls (12345 / 热线)
    field_staff = "field_staff"  # goes on home visits: a mobile service point
    admin = "admin"
    resident = "resident"  # a resident signed in on their own device; never a staff account


# Roles a staff account can have (residents sign in by SMS code, never as staff).
STAFF_ROLES = tuple(r for r in Role if r is not Role.resident)


class SiteKind(StrEnum):
    district = "district"
    town = "town"
    community = "community"


class ItemLevel(StrEnum):
    district = "district"
    town = "town"


class CaseStatus(StrEnum):
    open = "open"
    in_service = "in_service"
    completed = "completed"
    accepted = "accepted"  # accepted for back-office approval
    returned = "returned"
    transferred = "transferred"
    cancelled = "cancelled"


def _opt_ts() -> Any:
    return Field(default=None, sa_type=UTCDateTime, nullable=True)


def _ts(**kw: Any) -> Any:
    return Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False, **kw)


class Site(SQLModel, table=True):
    """A district cloud center, a town convenience center or a community service point."""

    __tablename__ = "site"
    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=32, unique=True, index=True)
    kind: str = Field(max_length=16, index=True)
    parent_id: int | None = Field(default=None, foreign_key="site.id", index=True)
    name: str = Field(max_length=100)
    name_en: str = Field(default="", max_length=100)
    address: str = Field(default="", max_length=200)
    lat: float
    lng: float
    opening_hours: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    # Every call at this site (or below it) is recorded, whatever the item says.
    recording_required: bool = Field(default=False)


class Department(SQLModel, table=True):
    __tablename__ = "department"
    code: str = Field(primary_key=True, max_length=32)
    name: str = Field(max_length=50)
    name_en: str = Field(default="", max_length=100)
    town_line: bool = Field(default=True)


class WindowLine(SQLModel, table=True):
    """One online queue of a hall for a department, e.g. 高桥镇·民政."""

    __tablename__ = "window_line"
    __table_args__ = (UniqueConstraint("site_id", "department"),)
    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=64, unique=True, index=True)
    site_id: int = Field(foreign_key="site.id", index=True)
    department: str = Field(foreign_key="department.code", max_length=32)
    name: str = Field(max_length=100)
    ticket_prefix: str = Field(max_length=2)
    active: bool = Field(default=True)


class ServiceItem(SQLModel, table=True):
    """A catalog entry (事项) with its required materials."""

    __tablename__ = "service_item"
    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=32, unique=True, index=True)
    name: str = Field(max_length=100)
    name_en: str = Field(default="", max_length=200)
    department: str = Field(foreign_key="department.code", max_length=32, index=True)
    level: str = Field(max_length=16)
    keywords: list[str] = Field(default_factory=list, sa_type=JSON)
    # Lower-cased name, keywords and code joined: the column keyword search filters on.
    search_text: str = Field(default="", max_length=1000)
    remote_capable: bool = Field(default=True)
    retention_days: int = Field(default=1825)
    # Calls for this item are recorded and a clerk cannot stop the recording.
    recording_required: bool = Field(default=True)
    description: str = Field(default="", max_length=500)
    active: bool = Field(default=True)
    # Who the item is for, where the catalog says so (core/eligibility.py checks a resident).
    min_age: int | None = Field(default=None)
    max_age: int | None = Field(default=None)
    needs_disability: bool = Field(default=False)
    needs_local_residence: bool = Field(default=False)
    # Home service (上门服务): whether the item can be handled at the resident's home, and for
    # whom: "elderly" (60 or over), "disabled" (certificate on file), "pregnant" (declared with
    # an expected date, checked at the visit). outreach/home.py applies it.
    home_visit: bool = Field(default=False)
    home_visit_for: list[str] = Field(default_factory=list, sa_type=JSON)
    # Visit planning (scheduler/plans.py): time at the door and what the visitor must be able
    # to do (e.g. "disability_assessment", "hukou_officer"; field staff carry skills).
    home_visit_minutes: int = Field(default=40)
    home_visit_skills: list[str] = Field(default_factory=list, sa_type=JSON)
    # The licence a completed case of this item issues (outreach's licence register makes it,
    # valid for the type's validity_months); empty: the item yields none.
    licence_type_id: int | None = Field(default=None, foreign_key="licence_type.id")


class MaterialSpec(SQLModel, table=True):
    __tablename__ = "material_spec"
    id: int | None = Field(default=None, primary_key=True)
    item_id: int = Field(foreign_key="service_item.id", index=True)
    position: int = Field(default=0)
    name: str = Field(max_length=100)
    required: bool = Field(default=True)
    accepted_types: list[str] = Field(default_factory=list, sa_type=JSON)
    note: str = Field(default="", max_length=200)


class Bundle(SQLModel, table=True):
    """一事联办: related items handled as one case."""

    __tablename__ = "bundle"
    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=32, unique=True, index=True)
    name: str = Field(max_length=100)
    name_en: str = Field(default="", max_length=200)
    description: str = Field(default="", max_length=500)
    lead_department: str = Field(foreign_key="department.code", max_length=32)


class BundleItem(SQLModel, table=True):
    __tablename__ = "bundle_item"
    bundle_id: int = Field(foreign_key="bundle.id", primary_key=True)
    item_id: int = Field(foreign_key="service_item.id", primary_key=True)
    position: int = Field(default=0)


class Staff(SQLModel, table=True):
    __tablename__ = "staff"
    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(max_length=64, unique=True, index=True)
    display_name: str = Field(max_length=100)
    role: str = Field(max_length=32, index=True)
    password_hash: str = Field(max_length=200)
    skills: list[str] = Field(default_factory=list, sa_type=JSON)
    phone: str = Field(default="", max_length=20)
    active: bool = Field(default=True)
    created_at: dt.datetime = _ts()


class StaffSite(SQLModel, table=True):
    __tablename__ = "staff_site"
    staff_id: int = Field(foreign_key="staff.id", primary_key=True)
    site_id: int = Field(foreign_key="site.id", primary_key=True)


class StaffLine(SQLModel, table=True):
    __tablename__ = "staff_line"
    staff_id: int = Field(foreign_key="staff.id", primary_key=True)
    line_id: int = Field(foreign_key="window_line.id", primary_key=True, index=True)


class StaffSession(SQLModel, table=True):
    """A logged-in browser; the cookie holds a random token, the table only its SHA-256."""

    __tablename__ = "staff_session"
    token_hash: str = Field(primary_key=True, max_length=64)
    staff_id: int = Field(foreign_key="staff.id", index=True)
    csrf_token: str = Field(max_length=64)
    created_at: dt.datetime = _ts()
    last_seen_at: dt.datetime = _ts()
    expires_at: dt.datetime = Field(sa_type=UTCDateTime, nullable=False)
    ip: str = Field(default="", max_length=64)
    user_agent: str = Field(default="", max_length=300)


class LoginFailure(SQLModel, table=True):
    __tablename__ = "login_failure"
    id: int | None = Field(default=None, primary_key=True)
    at: dt.datetime = _ts(index=True)
    username: str = Field(max_length=64, index=True)
    ip: str = Field(max_length=64, index=True)


class Resident(SQLModel, table=True):
    """A resident; the ID number is kept only encrypted, with a keyed hash to find it."""

    __tablename__ = "resident"
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=50)
    id_cipher: str = Field(max_length=200)
    id_hash: str = Field(max_length=64, unique=True, index=True)
    id_masked: str = Field(max_length=18)
    birth_date: dt.date = Field(sa_column=Column(Date, nullable=False))
    sex: str = Field(max_length=8)
    phone: str = Field(default="", max_length=20)
    address: str = Field(default="", max_length=200)
    community_id: int | None = Field(default=None, foreign_key="site.id", index=True)
    disabled: bool = Field(default=False)
    pregnant: bool = Field(default=False)
    created_by: int | None = Field(default=None, foreign_key="staff.id")
    created_at: dt.datetime = _ts()


class Case(SQLModel, table=True):
    """A case (办件): one resident's request for an item or bundle, with a timeline."""

    __tablename__ = "service_case"
    id: int | None = Field(default=None, primary_key=True)
    number: str = Field(max_length=32, unique=True, index=True)
    item_id: int = Field(foreign_key="service_item.id", index=True)
    bundle_id: int | None = Field(default=None, foreign_key="bundle.id")
    resident_id: int | None = Field(default=None, foreign_key="resident.id", index=True)
    site_id: int = Field(foreign_key="site.id", index=True)
    line_id: int | None = Field(default=None, foreign_key="window_line.id", index=True)
    status: str = Field(max_length=16, index=True)
    created_by: int | None = Field(default=None, foreign_key="staff.id")
    created_at: dt.datetime = _ts(index=True)
    updated_at: dt.datetime = _ts()
    closed_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    note: str = Field(default="", max_length=1000)
    # The resident chose to have the licence brought home (证照速递, scheduler/deliveries.py);
    # a home-service case is delivered without asking.
    licence_delivery: bool = Field(default=False)


class CaseEvent(SQLModel, table=True):
    __tablename__ = "case_event"
    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="service_case.id", index=True)
    at: dt.datetime = _ts()
    kind: str = Field(max_length=32)
    actor_id: int | None = Field(default=None, foreign_key="staff.id")
    data: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)


class CaseRating(SQLModel, table=True):
    """The resident's 好差评 of a finished case: one per case, 1 (very poor) to 5 (very good)."""

    __tablename__ = "case_rating"
    case_id: int = Field(foreign_key="service_case.id", primary_key=True)
    score: int
    comment: str = Field(default="", max_length=500)
    rated_at: dt.datetime = _ts(index=True)
    # Handed over on the worker's tablet (worker recorded) or given on the resident's phone.
    recorded_by: int | None = Field(default=None, foreign_key="staff.id")
    resident_id: int | None = Field(default=None, foreign_key="resident.id")
    line_id: int | None = Field(default=None, foreign_key="window_line.id", index=True)
    # The comment is a written complaint (投诉): it opens a follow-up whatever the score.
    complaint: bool = Field(default=False)


class AuditEntry(SQLModel, table=True):
    """Who did or saw what, when; written in the same transaction as the thing it records."""

    __tablename__ = "audit_log"
    id: int | None = Field(default=None, primary_key=True)
    at: dt.datetime = _ts(index=True)
    actor_id: int | None = Field(default=None, foreign_key="staff.id", index=True)
    actor_role: str = Field(default="", max_length=32)
    action: str = Field(max_length=64, index=True)
    target_type: str = Field(default="", max_length=32)
    target_id: str = Field(default="", max_length=64)
    detail: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    request_id: str = Field(default="", max_length=64)
    ip: str = Field(default="", max_length=64)


class ResidentSession(SQLModel, table=True):
    """A resident signed in on their own device (remote assist 2.0), by SMS code."""

    __tablename__ = "resident_session"
    token_hash: str = Field(primary_key=True, max_length=64)
    resident_id: int = Field(foreign_key="resident.id", index=True)
    csrf_token: str = Field(max_length=64)
    created_at: dt.datetime = _ts()
    last_seen_at: dt.datetime = _ts()
    expires_at: dt.datetime = Field(sa_type=UTCDateTime, nullable=False)


class ResidentLoginCode(SQLModel, table=True):
    """A one-time code sent by SMS to a resident's registered phone."""

    __tablename__ = "resident_login_code"
    id: int | None = Field(default=None, primary_key=True)
    resident_id: int = Field(foreign_key="resident.id", index=True)
    code_hash: str = Field(max_length=64)
    created_at: dt.datetime = _ts(index=True)
    expires_at: dt.datetime = Field(sa_type=UTCDateTime, nullable=False)
    attempts: int = Field(default=0)
    used_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)


class ResidentLink(SQLModel, table=True):
    """A single-use link sent by SMS that opens one resident page (after the SMS code)."""

    __tablename__ = "resident_link"
    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(max_length=64, unique=True, index=True)
    resident_id: int = Field(foreign_key="resident.id", index=True)
    path: str = Field(max_length=200)
    created_at: dt.datetime = _ts()
    expires_at: dt.datetime = Field(sa_type=UTCDateTime, nullable=False)
    used_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)


class CallStatus(StrEnum):
    ringing = "ringing"
    active = "active"
    ended = "ended"


class Call(SQLModel, table=True):
    """One video room, with the times that make its log."""

    __tablename__ = "call"
    id: int | None = Field(default=None, primary_key=True)
    ticket_id: int | None = Field(default=None, foreign_key="ticket.id", index=True)
    case_id: int | None = Field(default=None, foreign_key="service_case.id", index=True)
    status: str = Field(max_length=16, index=True)
    created_at: dt.datetime = _ts()  # when the clerk called the ticket
    connected_at: dt.datetime | None = _opt_ts()
    first_media_at: dt.datetime | None = _opt_ts()
    ended_at: dt.datetime | None = _opt_ts()
    end_reason: str = Field(default="", max_length=32)
    quality: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    # A clerk stopped the recording (allowed only where it is not required): it stays stopped
    # for the rest of the call, for late joiners and rejoins too.
    recording_stopped_at: dt.datetime | None = _opt_ts()
    recording_stopped_by: int | None = Field(default=None, foreign_key="staff.id")


class CallParticipant(SQLModel, table=True):
    __tablename__ = "call_participant"
    id: int | None = Field(default=None, primary_key=True)
    call_id: int = Field(foreign_key="call.id", index=True)
    staff_id: int | None = Field(default=None, foreign_key="staff.id", index=True)
    resident_id: int | None = Field(default=None, foreign_key="resident.id", index=True)
    role: str = Field(max_length=16)  # point | resident | clerk | expert
    joined_at: dt.datetime = _ts()
    left_at: dt.datetime | None = _opt_ts()
    disconnected_at: dt.datetime | None = _opt_ts()
    resume_hash: str = Field(max_length=64)
    # Bumped on every rejoin: a disconnect reported by an older socket of the same participant
    # (noticed late, after the rejoin) must not mark the new connection as dropped.
    generation: int = Field(default=0)
    stats: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    stats_reports: int = Field(default=0)


# -- request and response shapes (beside the tables they read and write)


class CaseCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    item_code: str = pydantic.Field(min_length=1, max_length=32)
    bundle_code: str | None = pydantic.Field(default=None, max_length=32)
    resident_id: Id | None = None
    site_id: Id
    note: str = pydantic.Field(default="", max_length=1000)


class CaseEventRead(BaseModel):
    id: int
    at: dt.datetime
    kind: str
    actor_id: int | None
    data: dict[str, Any]


class RatingIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, strict=True)
    score: int = pydantic.Field(ge=1, le=5)
    comment: str = pydantic.Field(default="", max_length=500)
    complaint: bool = False  # the comment is a complaint (it must then say something)

    @pydantic.model_validator(mode="after")
    def _complaint_is_written(self) -> RatingIn:
        if self.complaint and not self.comment:
            raise ValueError("a complaint needs the comment that says what went wrong")
        return self


class RatingRead(BaseModel):
    case_id: int
    score: int
    comment: str
    rated_at: dt.datetime
    complaint: bool = False


class CaseRead(BaseModel):
    id: int
    number: str
    item_code: str
    item_name: str
    bundle_id: int | None
    resident_id: int | None
    resident_name: str | None
    resident_id_masked: str | None
    site_id: int
    line_id: int | None
    status: CaseStatus
    created_at: dt.datetime
    updated_at: dt.datetime
    closed_at: dt.datetime | None
    note: str
    rating: RatingRead | None = None
    timeline: list[CaseEventRead] = []


class MaterialSpecRead(BaseModel):
    id: int
    name: str
    required: bool
    accepted_types: list[str]
    note: str


class DepartmentRead(BaseModel):
    code: str
    name: str
    name_en: str
    item_count: int = 0


class EligibilityRules(BaseModel):
    """Who an item is for; empty where the catalog states no rule."""

    min_age: int | None = None
    max_age: int | None = None
    disability: bool = False
    local_residence: bool = False


class EligibilityProblem(BaseModel):
    code: str
    message: str
    message_en: str


class EligibilityRead(BaseModel):
    """Whether a resident meets an item's rules, and where it can be handled."""

    item_code: str
    resident_id: int
    eligible: bool
    problems: list[EligibilityProblem]
    remote_capable: bool


class CaseEligibilityProblem(EligibilityProblem):
    item_code: str


class EligibilityAcceptance(BaseModel):
    """The clerk's "accept despite the mismatch", as written on the case timeline."""

    at: dt.datetime
    actor_id: int | None
    reason: str
    rules: list[str]


class CaseEligibilityRead(BaseModel):
    """A case's items checked against its resident now, and the clerk's acceptance if any."""

    case_id: int
    checked: bool  # False when the case has no resident to check
    problems: list[CaseEligibilityProblem]
    accepted: EligibilityAcceptance | None = None


class EligibilityAcceptIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, strict=True)
    reason: str = pydantic.Field(min_length=2, max_length=500)


class ItemRead(BaseModel):
    id: int
    code: str
    name: str
    name_en: str
    department: str
    department_name: str
    level: ItemLevel
    keywords: list[str]
    remote_capable: bool
    retention_days: int
    description: str
    materials: list[MaterialSpecRead]
    eligibility: EligibilityRules = pydantic.Field(default_factory=EligibilityRules)
    score: float | None = None


class BundleRead(BaseModel):
    id: int
    code: str
    name: str
    name_en: str
    description: str
    lead_department: str
    items: list[ItemRead]
    materials: list[str]  # distinct material names across the items, in first-seen order
    documents_saved: int  # how many fewer documents than applying item by item


class CodeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    id_number: str = pydantic.Field(min_length=1, max_length=32)
    phone: str = pydantic.Field(min_length=1, max_length=20)


class ResidentMe(BaseModel):
    resident_id: int
    name: str
    id_masked: str
    community_id: int | None
    csrf_token: str
    age: int = 0
    elderly: bool = False  # 60 or over: the resident pages open in elder mode (large text)
    phone_masked: str = ""


class LinkIn(BaseModel):
    """A sign-in link token from an SMS (/resident/l/<token>)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    token: str = pydantic.Field(min_length=1, max_length=100)


class LinkCodeLogin(LinkIn):
    code: str = pydantic.Field(pattern=r"^[0-9]{6}$")


class LinkRead(BaseModel):
    """What an unused link shows before the code: where it leads and where the code goes."""

    path: str
    phone_masked: str
    expires_at: dt.datetime


class LinkLoginRead(ResidentMe):
    path: str


class ResidentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    name: str = pydantic.Field(min_length=1, max_length=50)
    id_number: str = pydantic.Field(min_length=1, max_length=32)
    phone: str = pydantic.Field(default="", max_length=20)
    address: str = pydantic.Field(default="", max_length=200)
    community_id: Id | None = None
    disabled: bool = False
    pregnant: bool = False

    @field_validator("phone")
    @classmethod
    def _phone(cls, v: str) -> str:
        return idnumber.normalize_phone(v) if v else v


class ResidentLookup(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    id_number: str = pydantic.Field(min_length=1, max_length=32)


class ResidentRead(BaseModel):
    id: int
    name: str
    id_masked: str
    birth_date: dt.date
    age: int
    sex: str
    phone: str
    address: str
    community_id: int | None
    disabled: bool
    pregnant: bool
    elderly: bool
    priority: bool


class ResidentFound(BaseModel):
    """What a lookup by ID number answers: enough to take a number, no more."""

    id: int
    name: str
    id_masked: str
    age: int
    phone_masked: str
    elderly: bool
    priority: bool


class PastCase(BaseModel):
    id: int
    number: str
    item_code: str
    item_name: str
    status: CaseStatus
    created_at: dt.datetime
    closed_at: dt.datetime | None


class ResidentSummary(BaseModel):
    """What the clerk serving a case sees of its resident: masked, with their earlier cases."""

    id: int
    name: str
    id_masked: str
    age: int
    sex: str
    phone_masked: str
    address_masked: str
    community_id: int | None
    community_name: str | None
    elderly: bool
    priority: bool
    disabled: bool
    earlier_cases: list[PastCase]


class IdNumberCheck(BaseModel):
    valid: bool
    masked: str | None = None
    birth_date: dt.date | None = None
    sex: str | None = None
    age: int | None = None


class SiteRead(BaseModel):
    id: int
    code: str
    kind: SiteKind
    parent_id: int | None
    name: str
    name_en: str
    address: str
    lat: float
    lng: float
    opening_hours: dict[str, Any]


class NearbySite(BaseModel):
    site: SiteRead
    distance_km: float


class LineRead(BaseModel):
    id: int
    code: str
    site_id: int
    site_name: str
    department: str
    department_name: str
    name: str
    ticket_prefix: str
    active: bool


class StaffCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    username: str = pydantic.Field(min_length=2, max_length=64, pattern=r"^[a-z0-9][a-z0-9._-]*$")
    display_name: str = pydantic.Field(min_length=1, max_length=100)
    role: Role
    password: str = pydantic.Field(max_length=200)
    skills: list[str] = pydantic.Field(default_factory=list, max_length=20)
    phone: str = pydantic.Field(default="", max_length=20)
    site_codes: list[str] = pydantic.Field(default_factory=list, max_length=50)
    line_codes: list[str] = pydantic.Field(default_factory=list, max_length=50)

    @field_validator("role")
    @classmethod
    def _staff_role(cls, v: Role) -> Role:
        if v is Role.resident:
            raise ValueError("residents sign in by SMS code; they are not staff accounts")
        return v


class StaffRead(BaseModel):
    id: int
    username: str
    display_name: str
    role: Role
    skills: list[str]
    active: bool
    site_ids: list[int]
    line_ids: list[int]


class CodeLogin(CodeRequest):
    code: str = pydantic.Field(pattern=r"^[0-9]{6}$")
