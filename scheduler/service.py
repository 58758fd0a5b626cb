"""Appointments: book a slot on a line, cancel it, and check in when the resident arrives."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.access import Principal, may_book_line, require_resident
from core.catalog import get_item
from core.db import utcnow
from core.errors import AppError, Conflict, Invalid, NotFound
from core.models import Resident, ServiceItem, Site, WindowLine
from core.settings import Settings
from core.sms import SmsGateway
from scheduler import calendars
from scheduler.models import (
    Appointment,
    AppointmentCreate,
    AppointmentRead,
    AppointmentStatus,
    AppointmentView,
)

# A resident may check in this early for an appointment (and until the slot ends).
CHECK_IN_EARLY = dt.timedelta(minutes=30)


def read(a: Appointment) -> AppointmentRead:
    assert a.id is not None
    return AppointmentRead(
        id=a.id,
        resident_id=a.resident_id,
        line_id=a.line_id,
        item_id=a.item_id,
        starts_at=a.starts_at,
        ends_at=a.ends_at,
        status=AppointmentStatus(a.status),
        ticket_id=a.ticket_id,
    )


async def book(
    *,
    session: AsyncSession,
    settings: Settings,
    principal: Principal,
    appointment_in: AppointmentCreate,
    sms: SmsGateway | None = None,
    now: dt.datetime | None = None,
) -> Appointment:
    """Book one place in a slot of the line's calendar (scheduler/calendars.py) and confirm it
    by SMS; the line's row is locked so two bookings cannot both take the last place."""
    now = now or utcnow()
    resident_id = principal.resident_id if principal.is_resident else appointment_in.resident_id
    if resident_id is None:
        raise Invalid(details=[{"loc": ["resident_id"], "msg": "required"}])
    resident = await session.get(Resident, resident_id)
    if resident is None:
        raise NotFound(f"居民 {resident_id}", f"Resident {resident_id}")
    await require_resident(session, principal, resident)
    line = (
        await session.exec(
            select(WindowLine).where(WindowLine.id == appointment_in.line_id).with_for_update()
        )
    ).first()
    if line is None or not line.active or not await may_book_line(session, principal, line):
        raise NotFound(f"窗口 {appointment_in.line_id}", f"Window line {appointment_in.line_id}")
    item = await get_item(session=session, code=appointment_in.item_code)
    if item.department != line.department:
        raise Invalid("queue.line_mismatch", line=line.name, item=item.name)
    starts = appointment_in.starts_at.astimezone(dt.UTC)
    if starts <= now:
        raise Invalid("appointment.past")
    ends, capacity = await calendars.check_slot(session, settings, line, starts, now=now)
    await calendars.check_resident(session, settings, resident_id, starts, now=now)
    taken = (
        await session.exec(
            select(func.count())
            .select_from(Appointment)
            .where(
                Appointment.line_id == line.id,
                Appointment.starts_at == starts,
                col(Appointment.status).in_(calendars.HOLDING),
            )
        )
    ).one()
    if taken >= capacity:
        raise Conflict("appointment.full")
    appointment = Appointment(
        resident_id=resident_id,
        line_id=line.id or 0,
        item_id=item.id or 0,
        starts_at=starts,
        ends_at=ends,
        status=AppointmentStatus.booked,
        booked_by=principal.staff_fk,
    )
    session.add(appointment)
    await session.flush()
    if sms is not None:
        await calendars.send_booked(session, sms, settings, appointment, now=now)
    return appointment


async def view(session: AsyncSession, a: Appointment) -> AppointmentView:
    """An appointment with the line's, the hall's and the item's names."""
    line = await session.get(WindowLine, a.line_id)
    item = await session.get(ServiceItem, a.item_id)
    assert line is not None and item is not None
    site = await session.get(Site, line.site_id)
    assert site is not None
    return AppointmentView(
        **read(a).model_dump(),
        line_name=line.name,
        site_name=site.name,
        site_address=site.address,
        item_code=item.code,
        item_name=item.name,
        item_name_en=item.name_en,
    )


async def line_for_slots(session: AsyncSession, principal: Principal, line_id: int) -> WindowLine:
    """An active line the caller may book on; else 404."""
    line = await session.get(WindowLine, line_id)
    if line is None or not line.active or not await may_book_line(session, principal, line):
        raise NotFound(f"窗口 {line_id}", f"Window line {line_id}")
    return line


async def get(*, session: AsyncSession, principal: Principal, appointment_id: int) -> Appointment:
    a = await session.get(Appointment, appointment_id)
    if a is None:
        raise NotFound(f"预约 {appointment_id}", f"Appointment {appointment_id}")
    resident = await session.get(Resident, a.resident_id)
    assert resident is not None
    try:
        await require_resident(session, principal, resident)
    except NotFound:
        raise NotFound(f"预约 {appointment_id}", f"Appointment {appointment_id}") from None
    return a


async def cancel(
    *, session: AsyncSession, principal: Principal, appointment_id: int
) -> Appointment:
    a = await get(session=session, principal=principal, appointment_id=appointment_id)
    if a.status != AppointmentStatus.booked or a.ends_at <= utcnow():
        raise Conflict("appointment.state", status=a.status)
    a.status = AppointmentStatus.cancelled
    session.add(a)
    return a


async def list_for(
    *, session: AsyncSession, principal: Principal, resident_id: int
) -> list[Appointment]:
    resident = await session.get(Resident, resident_id)
    if resident is None:
        raise NotFound(f"居民 {resident_id}", f"Resident {resident_id}")
    await require_resident(session, principal, resident)
    q = (
        select(Appointment)
        .where(Appointment.resident_id == resident_id)
        .order_by(col(Appointment.starts_at))
    )
    return list((await session.exec(q)).all())


async def check_in(
    *, session: AsyncSession, appointment_id: int, resident_id: int | None, line_id: int
) -> Appointment:
    """Mark an appointment as arrived; its ticket is served first. Errors say why not."""
    a = (
        await session.exec(
            select(Appointment).where(Appointment.id == appointment_id).with_for_update()
        )
    ).first()
    if a is None or a.resident_id != resident_id:
        raise NotFound(f"预约 {appointment_id}", f"Appointment {appointment_id}")
    if a.line_id != line_id:
        raise Invalid("appointment.line")
    if a.status != AppointmentStatus.booked:
        raise Conflict("appointment.state", status=a.status)
    now = utcnow()
    if not (a.starts_at - CHECK_IN_EARLY <= now <= a.ends_at):
        raise AppError("appointment.window", starts=a.starts_at.isoformat(timespec="minutes"))
    a.status = AppointmentStatus.checked_in
    session.add(a)
    return a
