"""Events go on the wire as they always did: same keys, same order, unset flags left out."""

from __future__ import annotations

import datetime as dt
import json

from core.events import Audience
from signaling import events as ev
from signaling.models import ParticipantRead, TicketRead, TicketStatus
from signaling.outbox import Outbox

NOW = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)


def ticket() -> TicketRead:
    return TicketRead(
        id=7,
        number="M007",
        line_id=1,
        line_name="民政",
        status=TicketStatus.waiting,
        priority=0,
        priority_reason="",
        channel="assisted",
        item_code="X1",
        item_name="高龄津贴",
        case_id=3,
        case_number="C3",
        resident_name=None,
        resident_id_masked=None,
        point_site_id=5,
        waiting_since=NOW,
        called_at=None,
        called_by=None,
        recalls=0,
        outcome="",
        call_id=None,
    )


def test_optional_flags_are_absent_unless_set() -> None:
    t = ticket()
    assert list(ev.TicketUpdated(ticket=t).payload()) == ["ticket"]
    assert ev.TicketUpdated(ticket=t, transferred=True).payload()["transferred"] is True
    called = ev.TicketCalled(ticket=t, call_id=9, clerk="王")
    assert list(called.payload()) == ["ticket", "call_id", "clerk"]
    recalled = ev.TicketCalled(ticket=t, call_id=None, recall=2)
    assert recalled.payload() == {"ticket": t.model_dump(mode="json"), "call_id": None, "recall": 2}
    # Nested shapes keep their nulls: only the event's own optional keys are left out.
    assert called.payload()["ticket"]["resident_name"] is None


def test_payloads_match_the_dicts_they_replaced() -> None:
    me = ParticipantRead(
        id=4, staff_id=None, resident_id=8, role="resident", display_name="李", connected=True
    )
    joined = ev.ParticipantJoined(call_id=2, participant=me, rejoined=True)
    assert json.dumps(joined.payload()) == json.dumps(
        {"call_id": 2, "participant": me.model_dump(mode="json"), "rejoined": True}
    )
    invited = ev.ExpertInvited(
        invite_id=1,
        call_id=2,
        skill="社保",
        item_name="",
        invited_by="王",
        expires_at=NOW.isoformat(),
    )
    assert invited.payload()["expires_at"] == "2026-01-02T03:04:05+00:00"
    signal = ev.SignalRelayed.model_validate(
        {
            "call_id": 1,
            "from": 2,
            "kind": "candidate",
            "ice_restart": False,
            "candidate": {"candidate": "c"},
        }
    )
    assert signal.payload() == {
        "call_id": 1,
        "from": 2,
        "kind": "candidate",
        "ice_restart": False,
        "candidate": {"candidate": "c"},
    }
    finished = ev.CaseFinished(call_id=1, case_id=2, outcome="completed", reason="")
    assert json.dumps(finished.payload()) == json.dumps(
        {"call_id": 1, "case_id": 2, "outcome": "completed", "reason": ""}
    )


def test_the_outbox_keeps_events_until_taken() -> None:
    outbox = Outbox()
    outbox.emit(ev.CallEnded(call_id=1, reason="everyone_left"), Audience.call(1))
    outbox.lines.add(3)
    taken = outbox.take()
    assert [(d.event.name, d.to.room) for d in taken] == [("call:ended", "call:1")]
    assert outbox.take() == [] and outbox.lines == {3}
