"""Taking, following and serving tickets."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from core.access import require_ticket
from core.events import Audience, Delivery
from signaling import flows, queue
from signaling import payloads as pl
from signaling.events import TicketUpdated
from signaling.handlers.spec import SERVE_ERRORS, TICKET_ERRORS, EventSpec
from signaling.models import Outcome, Ticket, id_of
from signaling.outbox import Outbox

if TYPE_CHECKING:
    from sqlmodel.ext.asyncio.session import AsyncSession

    from signaling.server import Conn, Signaling


async def h_take(sg: Signaling, sid: str, conn: Conn, p: pl.TicketTake) -> Any:
    async def work(session: AsyncSession, outbox: Outbox) -> Ticket:
        if p.home_visit_id is not None:  # field staff at a resident's home
            return await flows.take_home_visit_ticket(
                session=session,
                settings=sg.settings,
                principal=conn.principal,
                outbox=outbox,
                visit_id=p.home_visit_id,
                consent=p.consent,
            )
        return await flows.take_ticket(
            session=session,
            settings=sg.settings,
            principal=conn.principal,
            outbox=outbox,
            line_id=p.line_id,
            item_code=p.item_code,
            site_id=p.site_id,
            resident_id=p.resident_id,
            consent=p.consent,
            bundle_code=p.bundle_code,
            appointment_id=p.appointment_id,
            note=p.note,
        )

    async def watch(ticket: Ticket) -> None:
        # Join the ticket's room before the line's change is announced, so the first push
        # about this ticket cannot run before its holder is listening.
        await sg.enter(sid, Audience.ticket(id_of(ticket)))

    ticket = await sg.run(work, before_flush=watch)
    async with sg.db.session() as session:
        return await queue.ticket_view(session=session, settings=sg.settings, ticket=ticket)


async def h_ticket_watch(sg: Signaling, sid: str, conn: Conn, p: pl.TicketRef) -> Any:
    async with sg.db.session() as session:
        t = await queue.get_ticket(session=session, ticket_id=p.ticket_id)
        await require_ticket(session, conn.principal, t)
        view = await queue.ticket_view(session=session, settings=sg.settings, ticket=t)
    await sg.enter(sid, Audience.ticket(p.ticket_id))
    return view


async def h_cancel(sg: Signaling, sid: str, conn: Conn, p: pl.TicketRef) -> Any:
    t = await sg.run(
        lambda s, o: queue.cancel_ticket(
            session=s, principal=conn.principal, outbox=o, ticket_id=p.ticket_id
        )
    )
    async with sg.db.session() as session:
        view = await queue.ticket_view(session=session, settings=sg.settings, ticket=t)
    await sg.deliver([Delivery(TicketUpdated(ticket=view), Audience.ticket(p.ticket_id))])
    return view


async def h_call_next(sg: Signaling, sid: str, conn: Conn, p: pl.Empty) -> Any:
    async def work(session: AsyncSession, outbox: Outbox) -> Any:
        result = await queue.call_next(
            session=session, settings=sg.settings, principal=conn.principal, outbox=outbox
        )
        if result is not None:  # the recording notice, read in the same transaction
            await sg.recording_notice(session, result[1])
        return result

    result = await sg.run(work)
    if result is None:
        return {"ticket": None, "call": None}
    view, join = result
    await sg.join_rooms(sid, conn, join)
    return {"ticket": view.model_dump(mode="json"), "call": join.model_dump(mode="json")}


async def h_recall(sg: Signaling, sid: str, conn: Conn, p: pl.TicketRef) -> Any:
    t = await sg.run(
        lambda s, o: queue.recall(
            session=s, principal=conn.principal, outbox=o, ticket_id=p.ticket_id
        )
    )
    return {"ticket_id": t.id, "recalls": t.recalls}


async def h_answer(sg: Signaling, sid: str, conn: Conn, p: pl.TicketRef) -> Any:
    ticket, join = await sg.run(
        lambda s, o: queue.answer(
            session=s,
            settings=sg.settings,
            principal=conn.principal,
            outbox=o,
            ticket_id=p.ticket_id,
        )
    )
    await sg.join_rooms(sid, conn, join)
    return {"ticket_id": ticket.id, "call": join.model_dump(mode="json")}


async def h_transfer(sg: Signaling, sid: str, conn: Conn, p: pl.TicketTransfer) -> Any:
    t = await sg.run(
        lambda s, o: queue.transfer(
            session=s,
            settings=sg.settings,
            principal=conn.principal,
            outbox=o,
            ticket_id=p.ticket_id,
            line_id=p.line_id,
            reason=p.reason,
        )
    )
    async with sg.db.session() as session:
        view = await queue.ticket_view(session=session, settings=sg.settings, ticket=t)
    await sg.deliver(
        [Delivery(TicketUpdated(ticket=view, transferred=True), Audience.ticket(p.ticket_id))]
    )
    return view


async def h_finish(sg: Signaling, sid: str, conn: Conn, p: pl.TicketFinish) -> Any:
    t = await sg.run(
        lambda s, o: flows.finish_ticket(
            session=s,
            principal=conn.principal,
            outbox=o,
            ticket_id=p.ticket_id,
            outcome=Outcome(p.outcome),
            reason=p.reason,
            note=p.note,
        )
    )
    return {"ticket_id": t.id, "status": t.status, "outcome": t.outcome}


EVENTS = (
    EventSpec(
        "ticket:take",
        pl.TicketTake,
        "queue.take",
        "Take a ticket (取号) for a resident who consented; opens the case. With an "
        "appointment_id the appointment is checked in and the ticket served first. With a "
        "home_visit_id (field staff at the resident's home, checked in at the door) the "
        "ticket is for the visit's case and served before all others.",
        h_take,
        "Ticket (with position and eta_seconds)",
        (
            "queue.consent",
            "queue.remote_only",
            "queue.line_mismatch",
            "not_found",
            "forbidden_site",
            "appointment.line",
            "appointment.state",
            "appointment.window",
            "field.check_in_first",
            "field.visit_state",
        ),
    ),
    EventSpec(
        "ticket:watch",
        pl.TicketRef,
        "queue.watch",
        "Follow a ticket: ticket:update and ticket:called from now on.",
        h_ticket_watch,
        "Ticket",
        ("not_found",),
    ),
    EventSpec(
        "ticket:cancel",
        pl.TicketRef,
        "queue.cancel",
        "Cancel a waiting ticket.",
        h_cancel,
        "Ticket",
        TICKET_ERRORS,
    ),
    EventSpec(
        "ticket:answer",
        pl.TicketRef,
        "queue.answer",
        "The service point picks up a called ticket and joins its call.",
        h_answer,
        "{ticket_id, call: CallJoin}",
        (*TICKET_ERRORS, "call.full"),
    ),
    EventSpec(
        "queue:call_next",
        pl.Empty,
        "queue.serve",
        "Call the highest-priority, longest-waiting ticket of my lines.",
        h_call_next,
        "{ticket: Ticket | null, call: CallJoin | null}",
        ("queue.no_lines", "queue.busy"),
    ),
    EventSpec(
        "ticket:recall",
        pl.TicketRef,
        "queue.serve",
        "Ring the point again for the ticket I called.",
        h_recall,
        "{ticket_id, recalls}",
        SERVE_ERRORS,
    ),
    EventSpec(
        "ticket:transfer",
        pl.TicketTransfer,
        "queue.serve",
        "Send my ticket to another line; it keeps its waiting time; the call ends.",
        h_transfer,
        "Ticket",
        (*SERVE_ERRORS, "validation"),
    ),
    EventSpec(
        "ticket:finish",
        pl.TicketFinish,
        "queue.serve",
        "Close the case: completed, accepted (back office) or returned (reason).",
        h_finish,
        "{ticket_id, status, outcome}",
        (*SERVE_ERRORS, "ticket.reason_required", "case.materials_incomplete"),
    ),
)
