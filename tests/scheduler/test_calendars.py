"""Appointment calendars on SQLite and PostgreSQL: opening hours, public holidays and adjusted
workdays, the 5+2 hall, the slots API with remaining places, booking rules, cancellation, the
no-show sweep and the SMS (confirmation and the reminder the day before), each once."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text
from sqlmodel import select

from core.db import Database
from core.jobs import Jobs
from core.models import Site, WindowLine
from core.settings import Settings
from outreach.sms import build_gateway
from scheduler import calendars
from scheduler.models import Appointment
from tests.conftest import base_settings
from tests.signaling.helpers import gaoqiao_setup, new_resident

TZ = ZoneInfo("Asia/Shanghai")


def local(day: dt.date, h: int, m: int = 0) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(h, m), TZ).astimezone(dt.UTC)


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    return base_settings(db_url, tmp_path / "data", appointment_no_show_limit=2)


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[Database]:
    database = Database(settings.effective_database_url)
    yield database
    await database.dispose()


async def line_at(db: Database, town: str, department: str = "civil_affairs") -> WindowLine:
    async with db.session() as s:
        site = (await s.exec(select(Site).where(Site.code == town))).one()
        return (
            await s.exec(
                select(WindowLine).where(
                    WindowLine.site_id == site.id, WindowLine.department == department
                )
            )
        ).one()


async def days(
    db: Database, settings: Settings, town: str, start: dt.date, n: int, now: dt.datetime
) -> Any:
    line = await line_at(db, town)
    async with db.session() as s:
        return (await calendars.slots(s, settings, line, start=start, days=n, now=now)).days


async def test_hours_holidays_and_adjusted_workdays(db: Database, settings: Settings) -> None:
    now = local(dt.date(2026, 9, 28), 8)
    # 望江街道 keeps the 5+2 extended hours; 高桥镇 the plain weekday hours.
    week = await days(db, settings, "T02", dt.date(2026, 9, 28), 7, now)
    mon, sat, sun = week[0], week[5], week[6]
    assert mon.hours == ["09:00-12:00", "14:00-20:00"] and len(mon.slots) == 36
    assert mon.slots[-1].ends_at == local(mon.date, 20)
    # 1 October onwards is National Day: closed even at the hall that opens at weekends.
    assert [d.reason for d in week[3:]] == ["holiday"] * 4
    assert all(not d.open and d.slots == [] for d in (sat, sun))
    assert week[3].holiday == "National Day"
    plain = await days(db, settings, "T02", dt.date(2026, 9, 12), 2, local(dt.date(2026, 9, 7), 8))
    assert plain[0].hours == ["09:00-12:00", "14:00-16:00"] and len(plain[0].slots) == 20
    assert plain[1].hours == ["09:00-12:00"] and len(plain[1].slots) == 12
    town = await days(db, settings, "T07", dt.date(2026, 9, 12), 2, local(dt.date(2026, 9, 7), 8))
    assert [(d.open, d.reason) for d in town] == [(False, "closed"), (False, "closed")]
    # Saturday 10 October 2026 is an adjusted workday: the weekday hall opens with Monday hours.
    [adjusted] = await days(db, settings, "T07", dt.date(2026, 10, 10), 1, now)
    assert (adjusted.open, adjusted.reason) == (True, "adjusted_workday")
    assert adjusted.hours == ["08:30-12:00", "13:30-17:00"]
    assert adjusted.slots[0].starts_at == local(adjusted.date, 8, 30)
    # Beyond the horizon (14 days) the hours show, the slots do not.
    [far] = await days(db, settings, "T02", dt.date(2026, 10, 19), 1, now)
    assert (far.open, far.reason, far.slots) == (True, "beyond_horizon", [])


async def test_beyond_the_holiday_data_plain_weekdays(db: Database, settings: Settings) -> None:
    now = local(dt.date(2026, 12, 28), 8)
    out = await days(db, settings, "T07", dt.date(2027, 1, 1), 4, now)
    assert [d.calendar_known for d in out] == [False] * 4
    # Friday 1 January 2027 is not known as a holiday yet: a plain Friday.
    assert [(d.date.weekday(), d.open) for d in out] == [
        (4, True),
        (5, False),
        (6, False),
        (0, True),
    ]


async def test_now_hides_past_slots(db: Database, settings: Settings) -> None:
    day = dt.date(2026, 9, 28)
    [today] = await days(db, settings, "T02", day, 1, local(day, 19, 10))
    assert [s.starts_at for s in today.slots] == [local(day, 19, 15), local(day, 19, 30),
                                                   local(day, 19, 45)]  # fmt: skip


# -- over HTTP, on the real clock: the first open slots from the API


async def open_slots(user: Any, line_id: int, **params: str) -> list[dict[str, Any]]:
    resp = await user.get(f"/api/v1/lines/{line_id}/slots", params={"days": "14", **params})
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    return [s for d in body["days"] for s in d["slots"]]


async def book(user: Any, setup: dict[str, Any], resident: int | None, at: str) -> Any:
    body = {"line_id": setup["line"]["id"], "item_code": setup["item"]["code"], "starts_at": at}
    if resident is not None:
        body["resident_id"] = resident
    return await user.post("/api/v1/appointments", json=body)


async def outbox(db: Database, kind: str) -> list[tuple[Any, ...]]:
    async with db.engine.connect() as s:
        rows = await s.execute(
            text("SELECT key, phone FROM sms_outbox WHERE kind = :k ORDER BY key"), {"k": kind}
        )
        return [tuple(r) for r in rows.all()]


async def test_capacity_limit_and_cancel(as_user: Any, db: Database) -> None:
    worker = await as_user("worker")
    setup = await gaoqiao_setup(worker)
    line_id = setup["line"]["id"]
    first, second, *_ = await open_slots(worker, line_id)
    assert first["capacity"] == first["remaining"] == 2
    people = [
        await new_resident(worker, years=30 + i, seq=800 + 2 * i, phone=f"1390000{i:04d}")
        for i in range(4)
    ]
    for p in people[:2]:
        resp = await book(worker, setup, p, first["starts_at"])
        assert resp.status == 201, await resp.text()
        made = await resp.json()
        assert made["site_name"] == "高桥镇" and made["item_code"] == setup["item"]["code"]
    again = await book(worker, setup, people[0], first["starts_at"])
    assert (await again.json())["error"]["code"] == "appointment.same_slot"
    full = await book(worker, setup, people[2], first["starts_at"])
    assert full.status == 409
    assert (await full.json())["error"]["code"] == "appointment.full"
    assert (await open_slots(worker, line_id))[0]["remaining"] == 0
    # Not a slot (off the grid), and beyond the horizon.
    at = dt.datetime.fromisoformat(second["starts_at"]) + dt.timedelta(minutes=7)
    off = await book(worker, setup, people[2], at.isoformat())
    assert (await off.json())["error"]["code"] == "appointment.not_a_slot"
    far = dt.datetime.fromisoformat(second["starts_at"]) + dt.timedelta(days=30)
    beyond = await book(worker, setup, people[2], far.isoformat())
    assert beyond.status == 422
    assert (await beyond.json())["error"]["code"] == "appointment.horizon"
    # Three open appointments per resident (the setting's default).
    slots = await open_slots(worker, line_id)
    for s in slots[1:4]:
        assert (await book(worker, setup, people[3], s["starts_at"])).status == 201
    over = await book(worker, setup, people[3], slots[4]["starts_at"])
    assert over.status == 409
    assert (await over.json())["error"]["code"] == "appointment.limit"
    # Cancelling frees the place.
    mine = await (
        await worker.get("/api/v1/appointments", params={"resident_id": str(people[0])})
    ).json()
    cancelled = await worker.post(f"/api/v1/appointments/{mine[0]['id']}/cancel")
    assert (await cancelled.json())["status"] == "cancelled"
    assert (await open_slots(worker, line_id))[0]["remaining"] == 1
    assert (await book(worker, setup, people[2], first["starts_at"])).status == 201
    # One confirmation per booking (five made, one cancelled), each once.
    sent = await outbox(db, "appointment.booked")
    assert len(sent) == 6 and len({k for k, _ in sent}) == 6


async def test_slots_are_scoped(as_user: Any) -> None:
    worker = await as_user("worker")
    setup = await gaoqiao_setup(worker)
    line_id = setup["line"]["id"]
    stranger = await as_user("worker.t01-c01")  # a point of another town
    assert (await stranger.get(f"/api/v1/lines/{line_id}/slots")).status == 404
    operator = await as_user("operator")
    assert len(await open_slots(operator, line_id)) > 0
    courier = await as_user("courier")
    assert (await courier.get(f"/api/v1/lines/{line_id}/slots")).status == 403
    bad = await worker.get(f"/api/v1/lines/{line_id}/slots", params={"days": "999"})
    assert bad.status == 422
    bad = await worker.get(f"/api/v1/lines/{line_id}/slots", params={"from": "tomorrow"})
    assert bad.status == 422
    assert (await worker.get("/api/v1/lines/999999/slots")).status == 404


async def test_no_shows_are_counted_once_and_pause_booking(
    as_user: Any, db: Database, settings: Settings
) -> None:
    worker = await as_user("worker")
    setup = await gaoqiao_setup(worker)
    resident = await new_resident(worker, years=44, seq=901, phone="13900009901")
    slots = await open_slots(worker, setup["line"]["id"])
    made = []
    for s in slots[:3]:
        resp = await book(worker, setup, resident, s["starts_at"])
        assert resp.status == 201
        made.append(await resp.json())
    after_two = dt.datetime.fromisoformat(made[1]["ends_at"]) + dt.timedelta(minutes=1)
    # Two runners of the sweep at the same period: the first marks both, the second nothing.
    outcomes = []
    for node in ("a", "b"):
        jobs = Jobs(db, node_id=node, clock=lambda: after_two)
        calendars.register_jobs(jobs, settings=settings, sms=lambda: build_gateway(settings))
        outcomes.append(await jobs.run_once(calendars.NO_SHOW_JOB))
    assert outcomes[0].outcome == {"no_shows": 2}
    assert await calendars.sweep_no_shows(db, now=after_two) == 0
    listed = await (
        await worker.get("/api/v1/appointments", params={"resident_id": str(resident)})
    ).json()
    assert [a["status"] for a in listed] == ["no_show", "no_show", "booked"]
    # Two no-shows (the test's setting) pause booking; the open one stays.
    paused = await book(worker, setup, resident, slots[5]["starts_at"])
    assert paused.status == 409
    assert (await paused.json())["error"]["code"] == "appointment.no_shows"


async def test_reminder_the_day_before_once(db: Database, settings: Settings, as_user: Any) -> None:
    worker = await as_user("worker")
    setup = await gaoqiao_setup(worker)
    resident = await new_resident(worker, years=45, seq=903, phone="13900009903")
    slots = await open_slots(worker, setup["line"]["id"])
    at = dt.datetime.fromisoformat(slots[-1]["starts_at"])
    assert (await book(worker, setup, resident, slots[-1]["starts_at"])).status == 201
    day_before = local(at.astimezone(TZ).date() - dt.timedelta(days=1), 10)
    two_before = day_before - dt.timedelta(days=1)
    sms = build_gateway(settings)
    assert await calendars.send_reminders(db, settings=settings, sms=sms, now=two_before) == 0
    # Late in the evening (quiet hours) the message waits until they end, 08:00 by default.
    late = day_before.astimezone(TZ).replace(hour=22, minute=30)
    await calendars.send_reminders(db, settings=settings, sms=sms, now=late)
    for _ in range(2):
        await calendars.send_reminders(db, settings=settings, sms=sms, now=day_before)
    async with db.session() as session:
        q = select(Appointment).where(Appointment.resident_id == resident)
        a = (await session.exec(q)).one()
    async with db.engine.connect() as s:
        [row] = (
            await s.execute(
                text(
                    "SELECT key, phone, not_before, params FROM sms_outbox "
                    "WHERE kind = 'appointment.reminder'"
                )
            )
        ).all()
    assert (row[0], row[1]) == (calendars.reminder_key(a.id or 0), "13900009903")
    held = row[2] if isinstance(row[2], dt.datetime) else dt.datetime.fromisoformat(row[2])
    assert held.replace(tzinfo=held.tzinfo or dt.UTC) == local(at.astimezone(TZ).date(), 8)
    params = row[3] if isinstance(row[3], dict) else json.loads(row[3])
    assert params["hall"] == "高桥镇" and params["item"] == setup["item"]["name"]
