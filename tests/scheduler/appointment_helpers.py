"""An appointment written straight to its table, for tests of check-in and the queue: they run
at any hour, whatever the hall's calendar says (tests/scheduler/test_calendars.py tests booking
through the calendar)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from core.db import Database, utcnow
from core.settings import Settings
from scheduler.models import Appointment, AppointmentStatus


async def insert_appointment(
    settings: Settings, setup: dict[str, Any], resident: int, minutes: int
) -> dict[str, Any]:
    """A booked appointment on the setup's line and item, starting `minutes` from now."""
    starts = (utcnow() + dt.timedelta(minutes=minutes)).replace(second=0, microsecond=0)
    db = Database(settings.effective_database_url)
    try:
        async with db.session() as session:
            a = Appointment(
                resident_id=resident,
                line_id=setup["line"]["id"],
                item_id=setup["item"]["id"],
                starts_at=starts,
                ends_at=starts + dt.timedelta(minutes=15),
                status=AppointmentStatus.booked,
            )
            session.add(a)
            await session.commit()
            return {"id": a.id, "status": a.status}
    finally:
        await db.dispose()
