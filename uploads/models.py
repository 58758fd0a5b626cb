"""Materials (办件材料): the tables (upload slots, stored documents, the clerk's requests for
them) and the request and response shapes of the materials API."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict
from pydantic import Field as In
from sqlalchemy import BigInteger, Column, Index
from sqlmodel import Field, SQLModel

from core.db import UTCDateTime, utcnow


class SlotState(StrEnum):
    pending = "pending"  # a single-request upload may arrive
    multipart = "multipart"  # parts may arrive
    processing = "processing"  # a confirm is checking the object right now
    confirmed = "confirmed"  # it became a material
    failed = "failed"  # the object was refused (type, size); its bytes are deleted
    abandoned = "abandoned"  # never confirmed in time; the sweep deleted its bytes


OPEN_SLOT = (SlotState.pending, SlotState.multipart, SlotState.processing)


class MaterialStatus(StrEnum):
    pending = "pending"  # uploaded, waiting for the clerk
    accepted = "accepted"
    rejected = "rejected"
    superseded = "superseded"  # rejected, then replaced by a new upload for the same material
    deleted = "deleted"  # its retention ran out; the object is gone, the record stays


LIVE_MATERIAL = (MaterialStatus.pending, MaterialStatus.accepted, MaterialStatus.rejected)


class MaterialSource(StrEnum):
    upload = "upload"
    reuse = "reuse"  # copied from an earlier case with the resident's consent (材料少交免交)
    snapshot = "snapshot"  # a still taken from the call's video


def _ts(**kw: Any) -> Any:
    return Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False, **kw)


def _opt_ts() -> Any:
    return Field(default=None, sa_type=UTCDateTime, nullable=True)


class UploadSlot(SQLModel, table=True):
    """Permission to put one object at one server-chosen key, for one case's material."""

    __tablename__ = "upload_slot"
    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="service_case.id", index=True)
    spec_id: int | None = Field(default=None, foreign_key="material_spec.id")
    key: str = Field(max_length=255, unique=True)
    state: str = Field(max_length=16, index=True)
    filename: str = Field(default="", max_length=200)
    declared_type: str = Field(max_length=100)
    declared_size: int = Field(sa_column=Column(BigInteger, nullable=False))
    max_bytes: int = Field(sa_column=Column(BigInteger, nullable=False))
    multipart_id: str = Field(default="", max_length=255)
    retention_days: int
    created_by: int | None = Field(default=None, foreign_key="staff.id")
    created_by_resident: int | None = Field(default=None, foreign_key="resident.id")
    created_at: dt.datetime = _ts()
    expires_at: dt.datetime = Field(sa_type=UTCDateTime, nullable=False, index=True)
    error: str = Field(default="", max_length=64)


class Material(SQLModel, table=True):
    """One stored document of a case. A row exists only once its object is in the store."""

    __tablename__ = "material"
    __table_args__ = (Index("ix_material_case_spec", "case_id", "spec_id"),)
    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="service_case.id")
    spec_id: int | None = Field(default=None, foreign_key="material_spec.id")
    # The spec's name when stored: reuse across items matches on it (居民身份证 is one document).
    name: str = Field(max_length=100)
    resident_id: int | None = Field(default=None, foreign_key="resident.id", index=True)
    slot_id: int | None = Field(default=None, foreign_key="upload_slot.id", unique=True)
    key: str = Field(max_length=255, unique=True)
    thumb_key: str = Field(default="", max_length=255)
    content_type: str = Field(max_length=100)
    size: int = Field(sa_column=Column(BigInteger, nullable=False))
    sha256: str = Field(max_length=64)
    width: int | None = None
    height: int | None = None
    filename: str = Field(default="", max_length=200)
    status: str = Field(max_length=16, index=True)
    source: str = Field(max_length=16)
    reused_from: int | None = Field(default=None, foreign_key="material.id")
    consent_at: dt.datetime | None = _opt_ts()
    reason: str = Field(default="", max_length=500)
    uploaded_by: int | None = Field(default=None, foreign_key="staff.id")
    uploaded_by_resident: int | None = Field(default=None, foreign_key="resident.id")
    uploaded_at: dt.datetime = _ts()
    reviewed_by: int | None = Field(default=None, foreign_key="staff.id")
    reviewed_at: dt.datetime | None = _opt_ts()
    expires_at: dt.datetime = Field(sa_type=UTCDateTime, nullable=False, index=True)
    deleted_at: dt.datetime | None = _opt_ts()


class MaterialRequest(SQLModel, table=True):
    """The clerk asked the point for one material of the checklist (补正)."""

    __tablename__ = "material_request"
    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="service_case.id", index=True)
    spec_id: int = Field(foreign_key="material_spec.id")
    note: str = Field(default="", max_length=500)
    requested_by: int = Field(foreign_key="staff.id")
    requested_at: dt.datetime = _ts()
    fulfilled_at: dt.datetime | None = _opt_ts()


# -- request and response shapes


class ItemState(StrEnum):
    missing = "missing"
    requested = "requested"  # the clerk asked for it
    uploaded = "uploaded"  # something arrived; the clerk has not decided on all of it
    accepted = "accepted"
    rejected = "rejected"


class MaterialRead(BaseModel):
    id: int
    case_id: int
    spec_id: int | None
    name: str
    status: MaterialStatus
    source: str
    content_type: str
    size: int
    sha256: str
    width: int | None
    height: int | None
    filename: str
    has_thumbnail: bool
    reason: str
    uploaded_at: dt.datetime
    reviewed_at: dt.datetime | None
    reviewed_by: int | None
    reused_from: int | None
    expires_at: dt.datetime


class ChecklistItem(BaseModel):
    spec_id: int
    name: str
    required: bool
    accepted_types: list[str]
    note: str
    state: ItemState
    reason: str = ""
    request_note: str = ""
    materials: list[MaterialRead] = []


class PhotoPrep(BaseModel):
    """How the device prepares a photo before upload (settings photo_max_side, photo_quality)."""

    max_side: int = 2048
    quality: float = 0.82


class Checklist(BaseModel):
    case_id: int
    complete: bool
    missing: list[str]
    items: list[ChecklistItem]
    extras: list[MaterialRead]
    photo: PhotoPrep = PhotoPrep()


def material_read(m: Material) -> MaterialRead:
    return MaterialRead(
        id=m.id or 0,
        case_id=m.case_id,
        spec_id=m.spec_id,
        name=m.name,
        status=MaterialStatus(m.status),
        source=m.source,
        content_type=m.content_type,
        size=m.size,
        sha256=m.sha256,
        width=m.width,
        height=m.height,
        filename=m.filename,
        has_thumbnail=bool(m.thumb_key),
        reason=m.reason,
        uploaded_at=m.uploaded_at,
        reviewed_at=m.reviewed_at,
        reviewed_by=m.reviewed_by,
        reused_from=m.reused_from,
        expires_at=m.expires_at,
    )


MAX_ID = 2**31 - 1


class SlotIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, strict=True)
    spec_id: int | None = In(default=None, ge=1, le=MAX_ID)
    filename: str = In(default="", max_length=200)
    content_type: str = In(min_length=3, max_length=100)
    size: int = In(ge=0, le=2**40)
    multipart: bool = False


class SlotRead(BaseModel):
    id: int
    case_id: int
    spec_id: int | None
    method: str
    url: str
    fields: dict[str, str]
    headers: dict[str, str]
    expires_at: dt.datetime
    max_bytes: int
    multipart: bool
    part_bytes: int | None = None
    parts_count: int | None = None


class PartsIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    numbers: list[int] = In(min_length=1, max_length=100)


class PartUrl(BaseModel):
    number: int
    method: str
    url: str


class PartRead(BaseModel):
    number: int
    size: int


# The local store's signed links, as the document describes them: the query is sent exactly
# as the slot (or the part URL) gave it, since the signature covers every parameter.
_SIGNED = "sent exactly as the upload URL gave it (the signature covers it)"


class ObjectPutQuery(BaseModel):
    action: Literal["put"] = In(description=f"Always put, {_SIGNED}")
    key: str = In(description=f"Object key, {_SIGNED}")
    type: str = In(description=f"Declared content type, {_SIGNED}")
    max: str = In(description=f"Largest body in bytes, {_SIGNED}")
    expires: str = In(description=f"Unix time the link expires, {_SIGNED}")
    signature: str = In(description="HMAC of the other parameters")


class ObjectPartQuery(BaseModel):
    action: Literal["part"] = In(description=f"Always part, {_SIGNED}")
    key: str = In(description=f"Object key, {_SIGNED}")
    upload: str = In(description=f"Multipart upload id, {_SIGNED}")
    n: str = In(description=f"Part number, {_SIGNED}")
    max: str = In(description=f"Largest part in bytes, {_SIGNED}")
    expires: str = In(description=f"Unix time the link expires, {_SIGNED}")
    signature: str = In(description="HMAC of the other parameters")


class StoredRead(BaseModel):
    size: int


class ReviewIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, strict=True)
    decision: Literal["accept", "reject"]
    reason: str = In(default="", max_length=500)


class RequestIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, strict=True)
    note: str = In(default="", max_length=500)


class ReuseIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    material_id: int = In(ge=1, le=MAX_ID)
    spec_id: int = In(ge=1, le=MAX_ID)
    consent: bool


class ReuseCandidate(BaseModel):
    spec_id: int
    name: str
    material: MaterialRead
    from_case_number: str
    from_case_at: dt.datetime


class LinkQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    variant: Literal["original", "thumbnail"] = "original"


class LinkRead(BaseModel):
    url: str
    expires_at: dt.datetime
