"""Use cases that span domains: the case, the appointment, the checklist and the ticket together."""

from __future__ import annotations

from sqlmodel.ext.asyncio.session import AsyncSession

from core import cases as case_service
from core.access import Principal
from core.db import single_statements
from core.errors import Invalid
from core.models import Case, CaseStatus, ServiceItem
from core.settings import Settings
from scheduler import field
from scheduler.service import check_in
from signaling import queue
from signaling.models import Outcome, Ticket, TicketRead, id_of
from signaling.outbox import Outbox
from uploads import checklist

OUTCOME_STATUS = {
    Outcome.completed: CaseStatus.completed,
    Outcome.accepted: CaseStatus.accepted,
    Outcome.returned: CaseStatus.returned,
}


async def take_ticket(
    *,
    session: AsyncSession,
    settings: Settings,
    principal: Principal,
    outbox: Outbox,
    line_id: int,
    item_code: str,
    site_id: int,
    resident_id: int | None,
    consent: bool,
    bundle_code: str | None = None,
    appointment_id: int | None = None,
    note: str = "",
) -> Ticket:
    """Take a number on a line for an item, on behalf of a resident who consented.

    Opens the case, checks an appointment in (its ticket is served first) and records the
    consent and the number on the case's timeline.
    """
    line, item, resident = await queue.admit(
        session=session,
        principal=principal,
        line_id=line_id,
        item_code=item_code,
        site_id=site_id,
        resident_id=resident_id,
        consent=consent,
    )
    resident_id = resident.id if resident is not None else None
    case = await case_service.create(
        session=session,
        principal=principal,
        case_in=case_service.CaseCreate(
            item_code=item_code,
            bundle_code=bundle_code,
            resident_id=resident_id,
            site_id=site_id,
            note=note,
        ),
    )
    case.line_id = id_of(line)
    appointment = None
    if appointment_id is not None:
        appointment = await check_in(
            session=session,
            appointment_id=appointment_id,
            resident_id=resident_id,
            line_id=id_of(line),
        )
    ticket = await queue.issue(
        session=session,
        settings=settings,
        principal=principal,
        outbox=outbox,
        line=line,
        item=item,
        case=case,
        resident=resident,
        site_id=site_id,
        appointment=appointment is not None,
    )
    if appointment is not None:
        appointment.ticket_id = ticket.id
        session.add(appointment)
    now = ticket.created_at
    case_service.add_event(
        session,
        case,
        "consent",
        actor_id=principal.staff_fk,
        at=now,
        data={
            "given_to": principal.staff_fk,
            "purpose": "self_service" if principal.is_resident else "assisted_intake",
            "resident": resident_id,
        },
    )
    case_service.add_event(
        session,
        case,
        "ticket.taken",
        actor_id=principal.staff_fk,
        at=now,
        data={
            "ticket": ticket.number,
            "line": line.code,
            "priority": ticket.priority_reason or None,
        },
    )
    return ticket


async def take_home_visit_ticket(
    *,
    session: AsyncSession,
    settings: Settings,
    principal: Principal,
    outbox: Outbox,
    visit_id: int,
    consent: bool,
) -> Ticket:
    """A field worker at the resident's door, checked in, takes a number for the visit's case
    on its line, served first: the home is a mobile service point of the resident's community
    (the case is the request's, opened at intake; no second case)."""
    _, req, case = await field.visit_case(session, principal, visit_id)
    item = await session.get(ServiceItem, case.item_id)
    assert item is not None
    if case.line_id is None:
        raise Invalid("queue.line_mismatch", line="-", item=item.name)
    line, item, resident = await queue.admit(
        session=session,
        principal=principal,
        line_id=case.line_id,
        item_code=item.code,
        site_id=req.site_id,
        resident_id=req.resident_id,
        consent=consent,
    )
    ticket = await queue.issue(
        session=session,
        settings=settings,
        principal=principal,
        outbox=outbox,
        line=line,
        item=item,
        case=case,
        resident=resident,
        site_id=req.site_id,
        home_visit=True,
    )
    now = ticket.created_at
    case_service.add_event(
        session,
        case,
        "consent",
        actor_id=principal.staff_fk,
        at=now,
        data={"given_to": principal.staff_fk, "purpose": "home_visit", "resident": req.resident_id},
    )
    case_service.add_event(
        session,
        case,
        "ticket.taken",
        actor_id=principal.staff_fk,
        at=now,
        data={"ticket": ticket.number, "line": line.code, "priority": "home_visit"},
    )
    return ticket


async def finish_ticket(
    *,
    session: AsyncSession,
    principal: Principal,
    outbox: Outbox,
    ticket_id: int,
    outcome: Outcome,
    reason: str = "",
    note: str = "",
) -> TicketRead:
    """Close the case with an outcome (transfers go through queue.transfer).

    Completing, or accepting for back-office approval, needs every required material accepted.
    """
    await single_statements(session)
    if outcome in (Outcome.completed, Outcome.accepted) or not queue.finish_outcome_ok(
        outcome, reason
    ):
        case_id = await queue.finishable(
            session=session,
            principal=principal,
            ticket_id=ticket_id,
            outcome=outcome,
            reason=reason,
        )
        case = await session.get(Case, case_id)
        assert case is not None
        await checklist.require_complete(session, case)
    return await queue.close(
        session=session,
        outbox=outbox,
        principal=principal,
        ticket_id=ticket_id,
        outcome=outcome,
        reason=reason,
        case_status=OUTCOME_STATUS[outcome],
        note=note,
    )
