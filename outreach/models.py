"""Tables of outreach: messages sent to residents."""

from __future__ import annotations

import datetime as dt

from sqlmodel import Field, SQLModel

from core.db import UTCDateTime, utcnow


class SmsMessage(SQLModel, table=True):
    """An SMS as handed to the gateway (the log gateway keeps only this record)."""

    __tablename__ = "sms_message"
    id: int | None = Field(default=None, primary_key=True)
    phone: str = Field(max_length=20, index=True)
    body: str = Field(max_length=500)
    kind: str = Field(max_length=32)
    created_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
