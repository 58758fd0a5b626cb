"""Appointment calendars: a site's opening hours, public holidays, the slots of a line, and the
periodic work on appointments (no-shows, the reminder the day before). docs/appointments.md.

A day is open by the site's hours for its weekday, except:
- a statutory public holiday (chinese-calendar names it) is closed, even at a hall that opens
  on weekends;
- an adjusted workday (调休上班, a weekend day the State Council makes a working day) opens
  with the site's Monday hours, since it stands in for a working day;
- a date beyond the package's data (it knows each year once the State Council publishes it)
  falls back to the plain weekday hours, and the day says `calendar_known: false`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

import chinese_calendar
from sqlalchemy import func, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.db import Database, utcnow
from core.errors import Conflict, Invalid
from core.jobs import Daily, Every, Jobs, Run
from core.models import Resident, ServiceItem, Site, WindowLine
from core.settings import Settings
from core.sms import SmsGateway
from outreach.reminders import send_time
from scheduler.models import (
    Appointment,
    AppointmentStatus,
    DayRead,
    LineSlots,
    SiteHours,
    SlotRead,
    SlotsRead,
)

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
NO_SHOW_JOB = "appointments.no_show"
REMINDER_JOB = "appointments.reminder"
LEASE = dt.timedelta(minutes=5)
# Appointments that hold a place in a slot (a cancelled one frees it).
HOLDING = (AppointmentStatus.booked, AppointmentStatus.checked_in, AppointmentStatus.no_show)


def reminder_key(appointment_id: int) -> str:
    return f"appointment:{appointment_id}:reminder"


def booked_key(appointment_id: int) -> str:
    return f"appointment:{appointment_id}:booked"


# -- opening hours


def parse_hours(hours: Mapping[str, Iterable[str]]) -> list[tuple[int, int, int]]:
    """{"mon": ["09:00-12:00", ...]} as (weekday, opens, closes) in minutes; ValueError if bad."""
    out: list[tuple[int, int, int]] = []
    for key, periods in hours.items():
        if key not in WEEKDAYS:
            raise ValueError(f"unknown weekday {key!r}")
        for p in periods:
            a, b = (dt.time.fromisoformat(x.strip()) for x in p.split("-"))
            opens, closes = a.hour * 60 + a.minute, b.hour * 60 + b.minute
            if closes <= opens:
                raise ValueError(f"period {p!r} ends before it starts")
            out.append((WEEKDAYS.index(key), opens, closes))
    return sorted(out)


async def set_hours(
    session: AsyncSession, site_id: int, hours: Mapping[str, Iterable[str]]
) -> None:
    """Replace a site's opening hours."""
    rows = (await session.exec(select(SiteHours).where(SiteHours.site_id == site_id))).all()
    for r in rows:
        await session.delete(r)
    await session.flush()
    session.add_all(
        SiteHours(site_id=site_id, weekday=w, opens=a, closes=b) for w, a, b in parse_hours(hours)
    )


async def seed_hours(session: AsyncSession) -> int:
    """Every site's table of hours from the hours the site was created with (the demo)."""
    n = 0
    for site in (await session.exec(select(Site))).all():
        assert site.id is not None
        await set_hours(session, site.id, site.opening_hours or {})
        n += 1
    return n


async def site_hours(session: AsyncSession, site_id: int) -> dict[int, list[tuple[int, int]]]:
    rows = await session.exec(
        select(SiteHours).where(SiteHours.site_id == site_id).order_by(col(SiteHours.opens))
    )
    out: dict[int, list[tuple[int, int]]] = {w: [] for w in range(7)}
    for r in rows.all():
        out[r.weekday].append((r.opens, r.closes))
    return out


def hm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


# -- days


@dataclass(frozen=True)
class DayRule:
    weekday: int | None  # whose hours apply; None: closed
    reason: str
    holiday: str
    known: bool


def day_rule(day: dt.date) -> DayRule:
    """Which weekday's hours a date follows, by the public-holiday calendar."""
    try:
        on_holiday, name = chinese_calendar.get_holiday_detail(day)
    except NotImplementedError:
        return DayRule(day.weekday(), "", "", False)
    if on_holiday and name:
        return DayRule(None, "holiday", str(name), True)
    if not on_holiday and day.weekday() >= 5:
        return DayRule(0, "adjusted_workday", str(name or ""), True)
    return DayRule(day.weekday(), "", "", True)


def local_today(now: dt.datetime, settings: Settings) -> dt.date:
    return now.astimezone(ZoneInfo(settings.timezone)).date()


# -- slots


@dataclass(frozen=True)
class LineCalendar:
    line: WindowLine
    site: Site
    slot_minutes: int
    capacity: int
    hours: dict[int, list[tuple[int, int]]]


async def calendar_for(session: AsyncSession, settings: Settings, line: WindowLine) -> LineCalendar:
    site = await session.get(Site, line.site_id)
    assert site is not None and site.id is not None
    own = await session.get(LineSlots, line.id)
    return LineCalendar(
        line=line,
        site=site,
        slot_minutes=own.slot_minutes if own else settings.appointment_slot_minutes,
        capacity=own.capacity if own else settings.appointment_slot_capacity,
        hours=await site_hours(session, site.id),
    )


def day_slots(
    cal: LineCalendar, day: dt.date, tz: ZoneInfo
) -> list[tuple[dt.datetime, dt.datetime]]:
    """The slot starts and ends (UTC) of a local day; a period's tail shorter than a slot is
    not offered."""
    rule = day_rule(day)
    if rule.weekday is None:
        return []
    midnight = dt.datetime.combine(day, dt.time(0), tz)
    out = []
    for opens, closes in cal.hours[rule.weekday]:
        m = opens
        while m + cal.slot_minutes <= closes:
            a = (midnight + dt.timedelta(minutes=m)).astimezone(dt.UTC)
            out.append((a, a + dt.timedelta(minutes=cal.slot_minutes)))
            m += cal.slot_minutes
    return out


async def taken_counts(
    session: AsyncSession, line_id: int, start: dt.datetime, end: dt.datetime
) -> dict[dt.datetime, int]:
    rows = await session.exec(
        select(Appointment.starts_at, func.count())
        .where(
            Appointment.line_id == line_id,
            col(Appointment.starts_at) >= start,
            col(Appointment.starts_at) < end,
            col(Appointment.status).in_(HOLDING),
        )
        .group_by(col(Appointment.starts_at))
    )
    return {a.astimezone(dt.UTC): n for a, n in rows.all()}


async def slots(
    session: AsyncSession,
    settings: Settings,
    line: WindowLine,
    *,
    start: dt.date | None,
    days: int,
    now: dt.datetime | None = None,
) -> SlotsRead:
    """A line's days from `start` (local today by default) with each slot's remaining places."""
    now = now or utcnow()
    tz = ZoneInfo(settings.timezone)
    today = local_today(now, settings)
    start = start or today
    last = today + dt.timedelta(days=settings.appointment_horizon_days)
    cal = await calendar_for(session, settings, line)
    lo = dt.datetime.combine(start, dt.time(0), tz).astimezone(dt.UTC)
    hi = dt.datetime.combine(start + dt.timedelta(days=days), dt.time(0), tz).astimezone(dt.UTC)
    taken = await taken_counts(session, cal.line.id or 0, lo, hi)
    out: list[DayRead] = []
    for i in range(days):
        day = start + dt.timedelta(days=i)
        rule = day_rule(day)
        hours = [] if rule.weekday is None else cal.hours[rule.weekday]
        reason = rule.reason or ("" if hours else "closed")
        bookable = today <= day <= last
        if hours and day > last:
            reason = "beyond_horizon"
        slot_list = [
            SlotRead(
                starts_at=a,
                ends_at=b,
                capacity=cal.capacity,
                remaining=max(0, cal.capacity - taken.get(a, 0)),
            )
            for a, b in (day_slots(cal, day, tz) if bookable else [])
            if a > now
        ]
        out.append(
            DayRead(
                date=day,
                open=bool(hours),
                reason=reason,
                holiday=rule.holiday,
                calendar_known=rule.known,
                hours=[f"{hm(a)}-{hm(b)}" for a, b in hours],
                slots=slot_list,
            )
        )
    return SlotsRead(
        line_id=cal.line.id or 0,
        line_name=cal.line.name,
        site_name=cal.site.name,
        slot_minutes=cal.slot_minutes,
        capacity=cal.capacity,
        horizon_days=settings.appointment_horizon_days,
        days=out,
    )


async def check_slot(
    session: AsyncSession,
    settings: Settings,
    line: WindowLine,
    starts: dt.datetime,
    *,
    now: dt.datetime,
) -> tuple[dt.datetime, int]:
    """The slot's end and capacity when `starts` is a bookable slot of the line; else why not."""
    tz = ZoneInfo(settings.timezone)
    day = starts.astimezone(tz).date()
    today = local_today(now, settings)
    if day > today + dt.timedelta(days=settings.appointment_horizon_days):
        raise Invalid("appointment.horizon", days=settings.appointment_horizon_days)
    rule = day_rule(day)
    cal = await calendar_for(session, settings, line)
    if rule.weekday is None or not cal.hours[rule.weekday]:
        words = rule.holiday or "closed"
        raise Invalid("appointment.closed", reason=words)
    for a, b in day_slots(cal, day, tz):
        if a == starts:
            return b, cal.capacity
    at = starts.astimezone(tz).strftime("%Y-%m-%d %H:%M")
    raise Invalid("appointment.not_a_slot", at=at)


async def check_resident(
    session: AsyncSession,
    settings: Settings,
    resident_id: int,
    starts: dt.datetime,
    *,
    now: dt.datetime,
) -> None:
    """The per-resident rules: open appointments, the same slot twice, repeated no-shows."""
    mine = (
        await session.exec(
            select(Appointment).where(
                Appointment.resident_id == resident_id,
                Appointment.status == AppointmentStatus.booked,
                col(Appointment.ends_at) > now,
            )
        )
    ).all()
    if any(a.starts_at.astimezone(dt.UTC) == starts for a in mine):
        raise Conflict("appointment.same_slot")
    if len(mine) >= settings.appointment_max_open:
        raise Conflict("appointment.limit", limit=settings.appointment_max_open)
    limit = settings.appointment_no_show_limit
    if limit:
        since = now - dt.timedelta(days=settings.appointment_no_show_days)
        missed = (
            await session.exec(
                select(func.count())
                .select_from(Appointment)
                .where(
                    Appointment.resident_id == resident_id,
                    Appointment.status == AppointmentStatus.no_show,
                    col(Appointment.ends_at) >= since,
                )
            )
        ).one()
        if missed >= limit:
            raise Conflict(
                "appointment.no_shows", count=missed, days=settings.appointment_no_show_days
            )


# -- messages


async def message_params(
    session: AsyncSession, a: Appointment, settings: Settings
) -> dict[str, str]:
    line = await session.get(WindowLine, a.line_id)
    item = await session.get(ServiceItem, a.item_id)
    assert line is not None and item is not None
    site = await session.get(Site, line.site_id)
    assert site is not None
    local = a.starts_at.astimezone(ZoneInfo(settings.timezone))
    return {
        "time": local.strftime("%m月%d日 %H:%M"),
        "hall": site.name,
        "line": f"（{line.name}）",
        "item": item.name,
    }


async def send_booked(
    session: AsyncSession, sms: SmsGateway, settings: Settings, a: Appointment, *, now: dt.datetime
) -> bool:
    """The confirmation, once per appointment (its key); held over quiet hours."""
    resident = await session.get(Resident, a.resident_id)
    if resident is None or not resident.phone or a.id is None:
        return False
    await sms.send(
        session,
        phone=resident.phone,
        kind="appointment.booked",
        params=await message_params(session, a, settings),
        key=booked_key(a.id),
        not_before=send_time(now, settings),
    )
    return True


# -- periodic work


async def sweep_no_shows(db: Database, *, now: dt.datetime) -> int:
    """Mark booked appointments whose slot has ended as no-shows. Conditional on the state it
    read, so a second run (or a second node) marks nothing twice."""
    async with db.session() as session:
        result = await session.exec(  # type: ignore[call-overload]
            update(Appointment)
            .where(
                col(Appointment.status) == AppointmentStatus.booked,
                col(Appointment.ends_at) <= now,
            )
            .values(status=AppointmentStatus.no_show)
        )
        await session.commit()
        return int(result.rowcount or 0)


async def send_reminders(
    db: Database, *, settings: Settings, sms: SmsGateway, now: dt.datetime
) -> int:
    """The SMS for every booked appointment on the next local day; once each (its key)."""
    tz = ZoneInfo(settings.timezone)
    tomorrow = local_today(now, settings) + dt.timedelta(days=1)
    lo = dt.datetime.combine(tomorrow, dt.time(0), tz).astimezone(dt.UTC)
    hi = lo + dt.timedelta(days=1)
    n = 0
    async with db.session() as session:
        rows = (
            await session.exec(
                select(Appointment).where(
                    Appointment.status == AppointmentStatus.booked,
                    col(Appointment.starts_at) >= lo,
                    col(Appointment.starts_at) < hi,
                )
            )
        ).all()
        for a in rows:
            resident = await session.get(Resident, a.resident_id)
            if resident is None or not resident.phone or a.id is None:
                continue
            await sms.send(
                session,
                phone=resident.phone,
                kind="appointment.reminder",
                params=await message_params(session, a, settings),
                key=reminder_key(a.id),
                not_before=send_time(now, settings),
            )
            n += 1
        await session.commit()
    return n


async def _no_show_job(run: Run) -> dict[str, Any]:
    return {"no_shows": await sweep_no_shows(run.db, now=run.now())}


async def _reminder_job(
    run: Run, *, settings: Settings, sms: Callable[[], SmsGateway]
) -> dict[str, Any]:
    reminded = await send_reminders(run.db, settings=settings, sms=sms(), now=run.now())
    return {"reminded": reminded}


def register_jobs(jobs: Jobs, *, settings: Settings, sms: Callable[[], SmsGateway]) -> None:
    """The no-show sweep and the day-before reminder on the node's runner; `sms` is asked for
    the gateway at each run."""
    jobs.add(
        NO_SHOW_JOB,
        Every(settings.appointment_sweep_seconds),
        _no_show_job,
        lease=LEASE,
    )
    jobs.add(
        REMINDER_JOB,
        Daily(settings.appointment_reminder_at, settings.timezone),
        partial(_reminder_job, settings=settings, sms=sms),
        lease=LEASE,
    )
