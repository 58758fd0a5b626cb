"""Recordings of calls: one row per recorded participant stream, one per stored segment,
and the shapes they are read in."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Any

from pydantic import BaseModel
from sqlalchemy import BigInteger, Column
from sqlmodel import JSON, Field, SQLModel

from core.db import UTCDateTime, utcnow


class RecordingStatus(StrEnum):
    recording = "recording"
    finished = "finished"
    failed = "failed"  # the recorder broke; its finished segments are kept, the gap is noted


def _ts(**kw: Any) -> Any:
    return Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False, **kw)


class Recording(SQLModel, table=True):
    """One participant's media as the recorder peer received it, from start to stop."""

    __tablename__ = "recording"
    id: int | None = Field(default=None, primary_key=True)
    call_id: int = Field(foreign_key="call.id", index=True)
    case_id: int | None = Field(default=None, foreign_key="service_case.id", index=True)
    participant_id: int = Field(foreign_key="call_participant.id")
    staff_id: int | None = Field(default=None, foreign_key="staff.id")
    resident_id: int | None = Field(default=None, foreign_key="resident.id")
    role: str = Field(max_length=16)
    node_id: str = Field(default="", max_length=64)
    status: str = Field(max_length=16, index=True)
    codecs: list[str] = Field(default_factory=list, sa_type=JSON)
    started_at: dt.datetime = _ts()
    ended_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)
    duration: float = Field(default=0.0)
    error: str = Field(default="", max_length=200)


class RecordingSegment(SQLModel, table=True):
    """A finished segment file, stored in object storage; never changed once written."""

    __tablename__ = "recording_segment"
    id: int | None = Field(default=None, primary_key=True)
    recording_id: int = Field(foreign_key="recording.id", index=True)
    index: int
    key: str = Field(max_length=255, unique=True)
    content_type: str = Field(max_length=32)
    size: int = Field(sa_column=Column(BigInteger, nullable=False))
    sha256: str = Field(max_length=64)
    duration: float
    frames: dict[str, int] = Field(default_factory=dict, sa_type=JSON)
    started_at: dt.datetime = Field(sa_type=UTCDateTime, nullable=False)
    ended_at: dt.datetime = Field(sa_type=UTCDateTime, nullable=False)
    expires_at: dt.datetime = Field(sa_type=UTCDateTime, nullable=False, index=True)


# -- read shapes


class RecordingPolicy(BaseModel):
    """What every participant is told on joining: is the call recorded, can it be stopped."""

    enabled: bool
    required: bool
    stopped: bool = False  # a clerk stopped it for the rest of this call


class SegmentRead(BaseModel):
    id: int
    index: int
    content_type: str
    size: int
    sha256: str
    duration: float
    started_at: dt.datetime
    ended_at: dt.datetime


class RecordingRead(BaseModel):
    id: int
    call_id: int
    case_id: int | None
    participant_id: int
    role: str
    status: RecordingStatus
    codecs: list[str]
    started_at: dt.datetime
    ended_at: dt.datetime | None
    duration: float
    error: str
    segments: list[SegmentRead]
