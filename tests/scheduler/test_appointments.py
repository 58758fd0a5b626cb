"""Appointments: booked on a line, checked in when taking a number, served first."""

from __future__ import annotations

import datetime as dt
from typing import Any

from core.db import utcnow
from core.settings import Settings
from tests.scheduler.appointment_helpers import insert_appointment
from tests.signaling.helpers import gaoqiao_setup, new_resident, take_payload


async def test_checked_in_appointment_is_served_before_earlier_walk_ins(
    sock: Any, settings: Settings
) -> None:
    worker = await sock("worker")
    clerk = await sock("clerk")
    setup = await gaoqiao_setup(worker.user)
    walk_in = await new_resident(worker.user, years=40, seq=501)
    booked = await new_resident(worker.user, years=41, seq=503)
    appointment = await insert_appointment(settings, setup, booked, 10)
    assert appointment["status"] == "booked"

    first = await worker.ok("ticket:take", take_payload(setup, walk_in))
    second = await worker.ok(
        "ticket:take", take_payload(setup, booked, appointment_id=appointment["id"])
    )
    assert second["priority_reason"] == "appointment"
    assert first["priority_reason"] == ""
    called = await clerk.ok("queue:call_next")
    assert called["ticket"]["id"] == second["id"]

    listed = await (
        await worker.user.get("/api/v1/appointments", params={"resident_id": str(booked)})
    ).json()
    assert [(a["status"], a["ticket_id"]) for a in listed] == [("checked_in", second["id"])]
    # An appointment checks in once.
    again = await worker.err(
        "ticket:take", take_payload(setup, booked, appointment_id=appointment["id"])
    )
    assert again["code"] == "appointment.state"


async def test_check_in_rules(sock: Any, settings: Settings) -> None:
    worker = await sock("worker")
    setup = await gaoqiao_setup(worker.user)
    resident = await new_resident(worker.user, years=50, seq=601)
    other = await new_resident(worker.user, years=51, seq=603)
    later = await insert_appointment(settings, setup, resident, 120)
    err = await worker.err("ticket:take", take_payload(setup, resident, appointment_id=later["id"]))
    assert err["code"] == "appointment.window"
    soon = await insert_appointment(settings, setup, resident, 5)
    err = await worker.err("ticket:take", take_payload(setup, other, appointment_id=soon["id"]))
    assert err["code"] == "not_found"  # someone else's appointment
    # Nothing was queued by the refused check-ins.
    assert (await worker.ok("state:sync"))["tickets"] == []


async def test_booking_rules(as_user: Any) -> None:
    worker = await as_user("worker")
    setup = await gaoqiao_setup(worker)
    resident = await new_resident(worker, years=30, seq=700)
    days = (await (await worker.get(f"/api/v1/lines/{setup['line']['id']}/slots?days=14")).json())[
        "days"
    ]
    first = next(s for d in days for s in d["slots"])

    async def book(who: Any, at: str) -> Any:
        body = {
            "resident_id": resident,
            "line_id": setup["line"]["id"],
            "item_code": setup["item"]["code"],
            "starts_at": at,
        }
        return await who.post("/api/v1/appointments", json=body)

    past = await book(worker, (utcnow() - dt.timedelta(minutes=5)).isoformat())
    assert (await past.json())["error"]["code"] == "appointment.past"
    naive = await book(worker, "2030-01-01T09:00:00")
    assert naive.status == 422
    booked = await (await book(worker, first["starts_at"])).json()
    cancelled = await worker.post(f"/api/v1/appointments/{booked['id']}/cancel")
    assert (await cancelled.json())["status"] == "cancelled"
    twice = await worker.post(f"/api/v1/appointments/{booked['id']}/cancel")
    assert twice.status == 409
    stranger = await as_user("worker.t01-c01")
    assert (await stranger.post(f"/api/v1/appointments/{booked['id']}/cancel")).status == 404
    courier = await as_user("courier")
    assert (await book(courier, first["starts_at"])).status == 403
