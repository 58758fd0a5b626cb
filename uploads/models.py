"""Materials (办件材料): upload slots, stored documents, and the clerk's requests for them."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Any

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
