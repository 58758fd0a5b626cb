"""The periods the district reports by: a day, a week (from Monday), a month, or custom days."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from zoneinfo import ZoneInfo

# A custom period longer than this is a statistics question, not an alert count.
MAX_CUSTOM_DAYS = 366


class Period(StrEnum):
    day = "day"
    week = "week"
    month = "month"
    custom = "custom"


def bounds(
    period: Period,
    *,
    tz: str,
    today: dt.date,
    start: dt.date | None = None,
    end: dt.date | None = None,
) -> tuple[dt.datetime, dt.datetime]:
    """The period holding `today` (or custom days start..end inclusive) as UTC [from, to)."""
    if period == Period.day:
        first, last = today, today
    elif period == Period.week:
        first = today - dt.timedelta(days=today.weekday())
        last = first + dt.timedelta(days=6)
    elif period == Period.month:
        first = today.replace(day=1)
        last = (first + dt.timedelta(days=32)).replace(day=1) - dt.timedelta(days=1)
    else:
        if start is None or end is None or end < start:
            raise ValueError("a custom period needs start <= end")
        if (end - start).days >= MAX_CUSTOM_DAYS:
            raise ValueError(f"a custom period is at most {MAX_CUSTOM_DAYS} days")
        first, last = start, end
    zone = ZoneInfo(tz)

    def midnight(d: dt.date) -> dt.datetime:
        return dt.datetime.combine(d, dt.time(), zone).astimezone(dt.UTC)

    return midnight(first), midnight(last + dt.timedelta(days=1))
