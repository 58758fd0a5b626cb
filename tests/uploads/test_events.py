"""The materials' socket events keep the payload clients already read."""

from __future__ import annotations

import datetime as dt

from core.events import Audience, Outbox
from uploads.events import MaterialRequested, MaterialReviewed, MaterialUploaded
from uploads.models import MaterialRead, MaterialStatus


def _read() -> MaterialRead:
    now = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    return MaterialRead(
        id=7,
        case_id=3,
        spec_id=11,
        name="户口簿",
        status=MaterialStatus.pending,
        source="upload",
        content_type="application/pdf",
        size=10,
        sha256="0" * 64,
        width=None,
        height=None,
        filename="hukou.pdf",
        has_thumbnail=False,
        reason="",
        uploaded_at=now,
        reviewed_at=None,
        reviewed_by=None,
        reused_from=None,
        expires_at=now,
    )


def test_payloads_have_the_documented_keys() -> None:
    read = _read()
    for event_type, name in (
        (MaterialUploaded, "material:uploaded"),
        (MaterialReviewed, "material:reviewed"),
    ):
        event = event_type(call_id=5, case_id=3, material=read)
        assert event.name == name
        assert event.payload() == {
            "call_id": 5,
            "case_id": 3,
            "material": read.model_dump(mode="json"),
        }
    asked = MaterialRequested(call_id=5, case_id=3, spec_id=11, spec_name="户口簿", note="清晰")
    assert asked.name == "material:requested"
    assert asked.payload() == {
        "call_id": 5,
        "case_id": 3,
        "spec_id": 11,
        "name": "户口簿",
        "note": "清晰",
    }
    assert list(asked.payload()) == ["call_id", "case_id", "spec_id", "name", "note"]


def test_events_are_addressed_to_the_call_room() -> None:
    outbox = Outbox()
    outbox.emit(MaterialUploaded(call_id=5, case_id=3, material=_read()), Audience.call(5))
    (delivery,) = outbox.take()
    assert delivery.to.room == "call:5"
