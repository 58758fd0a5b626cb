"""The queue and calls, transport-free: tickets, call next, transfer, finish, joins and sweeps.

Every function changes rows in the caller's session and appends the events to send to an
Outbox; the caller commits first and only then emits (a client never hears of a change that
was rolled back).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel
from sqlalchemy import func, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core import cases as case_service
from core import sites as site_service
from core.access import Principal, require_ticket
from core.db import utcnow
from core.errors import AppError, Conflict, Forbidden, Invalid, NotFound
from core.models import Case, CaseStatus, Resident, Role, ServiceItem, StaffLine, WindowLine
from core.residents import PRIORITY_AGE, age_of
from core.settings import Settings
from scheduler.service import check_in
from signaling.models import (
    Call,
    CallParticipant,
    CallStatus,
    ExpertInvite,
    InviteStatus,
    LineCounter,
    Outcome,
    Presence,
    PresenceStatus,
    Ticket,
    TicketStatus,
)
from uploads import checklist

ACTIVE_TICKET = (TicketStatus.called, TicketStatus.serving)
OPEN_TICKET = (TicketStatus.waiting, TicketStatus.called, TicketStatus.serving)
# Handling times averaged for the wait estimate: the most recent this many finished tickets.
HANDLING_SAMPLE = 20
OUTCOME_STATUS = {
    Outcome.completed: CaseStatus.completed,
    Outcome.accepted: CaseStatus.accepted,
    Outcome.returned: CaseStatus.returned,
}


def room_staff(staff_id: int) -> str:
    return f"staff:{staff_id}"


def room_line(line_id: int) -> str:
    return f"line:{line_id}"


def room_ticket(ticket_id: int) -> str:
    return f"ticket:{ticket_id}"


def room_call(call_id: int) -> str:
    return f"call:{call_id}"


def room_participant(pid: int) -> str:
    return f"p:{pid}"


def room_skill(skill: str) -> str:
    return f"skill:{skill}"


@dataclass
class Emit:
    event: str
    room: str
    data: dict[str, Any]


@dataclass
class Outbox:
    """Events to send once the transaction that caused them has committed."""

    emits: list[Emit] = field(default_factory=list)
    lines: set[int] = field(default_factory=set)  # lines whose queue positions changed
    joined: list[tuple[int, int, int | None]] = field(default_factory=list)  # (call, pid, staff)
    left: list[tuple[int, int]] = field(default_factory=list)  # (call, pid)
    ended: list[int] = field(default_factory=list)  # calls

    def emit(self, event: str, room: str, data: BaseModel | dict[str, Any]) -> None:
        payload = data.model_dump(mode="json") if isinstance(data, BaseModel) else data
        self.emits.append(Emit(event, room, payload))


class TicketRead(BaseModel):
    id: int
    number: str
    line_id: int
    line_name: str
    status: TicketStatus
    priority: int
    priority_reason: str
    channel: str
    item_code: str
    item_name: str
    case_id: int
    case_number: str
    resident_name: str | None
    resident_id_masked: str | None
    point_site_id: int
    waiting_since: dt.datetime
    called_at: dt.datetime | None
    called_by: int | None
    recalls: int
    outcome: str
    call_id: int | None
    position: int | None = None
    eta_seconds: int | None = None


class ParticipantRead(BaseModel):
    id: int
    staff_id: int | None
    resident_id: int | None = None
    role: str
    display_name: str
    connected: bool


class CallJoin(BaseModel):
    """What a participant gets on joining: who is there, how to reach them, how to come back."""

    call_id: int
    participant_id: int
    resume_token: str
    generation: int = 0
    participants: list[ParticipantRead]
    ice_servers: list[dict[str, Any]]
    ticket_id: int | None
    case_id: int | None
    # Filled in by the transport: {enabled, required} — every participant sees the notice.
    recording: dict[str, bool] | None = None


class LineStatus(BaseModel):
    line_id: int
    line_name: str
    waiting: int
    clerks_online: int
    clerks_available: int
    avg_handling_seconds: int
    longest_wait_seconds: int


def working_day(settings: Settings, now: dt.datetime) -> dt.date:
    return now.astimezone(ZoneInfo(settings.timezone)).date()


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _id(x: Any) -> int:
    assert x.id is not None
    return int(x.id)


# -- reading


async def read_tickets(
    session: AsyncSession,
    tickets: Iterable[Ticket],
    positions: dict[int, tuple[int, int | None]],
) -> list[TicketRead]:
    tickets = list(tickets)
    rids = {t.resident_id for t in tickets if t.resident_id}
    residents: dict[int | None, Resident] = {}
    if rids:
        rows = await session.exec(select(Resident).where(col(Resident.id).in_(rids)))
        residents = {r.id: r for r in rows.all()}
    out = []
    for t in tickets:
        resident = residents.get(t.resident_id) if t.resident_id else None
        pos = positions.get(_id(t))
        out.append(
            TicketRead(
                id=_id(t),
                number=t.number,
                line_id=t.line_id,
                line_name=t.line_name,
                status=TicketStatus(t.status),
                priority=t.priority,
                priority_reason=t.priority_reason,
                channel=t.channel,
                item_code=t.item_code,
                item_name=t.item_name,
                case_id=t.case_id,
                case_number=t.case_number,
                resident_name=resident.name if resident else None,
                resident_id_masked=resident.id_masked if resident else None,
                point_site_id=t.point_site_id,
                waiting_since=t.waiting_since,
                called_at=t.called_at,
                called_by=t.called_by,
                recalls=t.recalls,
                outcome=t.outcome,
                call_id=t.call_id,
                position=pos[0] if pos else None,
                eta_seconds=pos[1] if pos else None,
            )
        )
    return out


def _queue_order() -> tuple[Any, ...]:
    return (col(Ticket.priority).desc(), col(Ticket.waiting_since), col(Ticket.id))


async def tickets_by_id(session: AsyncSession, ids: list[int]) -> list[Ticket]:
    rows = await session.exec(select(Ticket).where(col(Ticket.id).in_(ids)))
    return list(rows.all())


async def waiting_ticket_lines(session: AsyncSession, ticket_ids: list[int]) -> dict[int, int]:
    """The line of each of these tickets that is still waiting."""
    rows = await session.exec(
        select(Ticket.id, Ticket.line_id).where(
            col(Ticket.id).in_(ticket_ids), Ticket.status == TicketStatus.waiting
        )
    )
    return {tid: line for tid, line in rows.all() if tid is not None}


async def avg_handling_seconds(session: AsyncSession, settings: Settings, line_id: int) -> int:
    q = (
        select(Ticket.answered_at, Ticket.finished_at)
        .where(
            Ticket.line_id == line_id,
            Ticket.status == TicketStatus.done,
            col(Ticket.answered_at).is_not(None),
            col(Ticket.finished_at).is_not(None),
        )
        .order_by(col(Ticket.finished_at).desc())
        .limit(HANDLING_SAMPLE)
    )
    spans = [(f - a).total_seconds() for a, f in (await session.exec(q)).all() if a and f]
    return int(sum(spans) / len(spans)) if spans else settings.default_handling_seconds


async def clerks_on_line(
    session: AsyncSession, settings: Settings, line_id: int, now: dt.datetime
) -> tuple[int, int]:
    """(online, available) clerks of a line; available = status available and not in a call."""
    fresh = now - dt.timedelta(seconds=settings.presence_ttl_seconds)
    rows = (
        await session.exec(
            select(Presence.staff_id, Presence.status)
            .join(StaffLine, col(StaffLine.staff_id) == col(Presence.staff_id))
            .where(StaffLine.line_id == line_id, col(Presence.updated_at) >= fresh)
        )
    ).all()
    online = {sid for sid, _ in rows}
    willing = {sid for sid, st in rows if st == PresenceStatus.available}
    if willing:
        busy = set(
            (
                await session.exec(
                    select(Ticket.called_by).where(
                        col(Ticket.called_by).in_(willing), col(Ticket.status).in_(ACTIVE_TICKET)
                    )
                )
            ).all()
        )
        willing -= busy
    return len(online), len(willing)


async def line_snapshot(
    session: AsyncSession, settings: Settings, line_id: int, now: dt.datetime | None = None
) -> tuple[LineStatus, dict[int, tuple[int, int | None]]]:
    """The line's status and every waiting ticket's position and estimated wait.

    Reads two columns of the waiting tickets, not whole rows: it runs on every change of a
    busy line, and a long queue must not make each change expensive.
    """
    now = now or utcnow()
    line = await session.get(WindowLine, line_id)
    if line is None:
        raise NotFound(f"窗口 {line_id}", f"Window line {line_id}")
    order = (
        await session.exec(
            select(Ticket.id, Ticket.waiting_since)
            .where(Ticket.line_id == line_id, Ticket.status == TicketStatus.waiting)
            .order_by(*_queue_order())
        )
    ).all()
    avg = await avg_handling_seconds(session, settings, line_id)
    online, available = await clerks_on_line(session, settings, line_id, now)
    serving_clerks = max(online, available)
    positions: dict[int, tuple[int, int | None]] = {}
    for i, (tid, _since) in enumerate(order, start=1):
        # Each clerk serves one resident at a time: the i-th in line waits about
        # ceil(i / clerks) handling times. With no clerk online the wait is unknown.
        eta = math.ceil(i / serving_clerks) * avg if serving_clerks else None
        positions[tid or 0] = (i, eta)
    longest = max(((now - since).total_seconds() for _tid, since in order), default=0)
    status = LineStatus(
        line_id=line_id,
        line_name=line.name,
        waiting=len(order),
        clerks_online=online,
        clerks_available=available,
        avg_handling_seconds=avg,
        longest_wait_seconds=int(longest),
    )
    return status, positions


async def ticket_view(session: AsyncSession, settings: Settings, ticket: Ticket) -> TicketRead:
    positions: dict[int, tuple[int, int | None]] = {}
    if ticket.status == TicketStatus.waiting:
        _, positions = await line_snapshot(session, settings, ticket.line_id)
    return (await read_tickets(session, [ticket], positions))[0]


# -- tickets


async def _next_seq(session: AsyncSession, line_id: int, day: dt.date) -> int:
    """Atomically take the next number of a line for the day (an upsert, safe across nodes)."""
    dialect = session.bind.dialect.name if session.bind else "sqlite"
    ins = (postgresql if dialect == "postgresql" else sqlite).insert(LineCounter)
    stmt = (
        ins.values(line_id=line_id, day=day, last_seq=1)
        .on_conflict_do_update(
            index_elements=["line_id", "day"], set_={"last_seq": LineCounter.last_seq + 1}
        )
        .returning(LineCounter.last_seq)
    )
    return int((await session.exec(stmt)).scalar_one())  # type: ignore[call-overload]


async def _number(session: AsyncSession, line: WindowLine, day: dt.date) -> tuple[int, str]:
    seq = await _next_seq(session, _id(line), day)
    return seq, f"{line.ticket_prefix}{seq:03d}"


async def _lines_serving(session: AsyncSession, item: ServiceItem, site: Any) -> set[int]:
    """Lines a point may queue an item on: the one routing picks, or the district center's."""
    ids = set()
    routed = await site_service.route_line(session=session, item=item, site=site)
    if routed is not None:
        ids.add(_id(routed))
    district = await site_service.hall_of(session, site, "district")
    q = select(WindowLine.id).where(
        WindowLine.site_id == district.id, WindowLine.department == item.department
    )
    ids.update(i for i in (await session.exec(q)).all() if i is not None)
    return ids


def _priority(resident: Resident | None, today: dt.date) -> tuple[int, str]:
    if resident is None:
        return 0, ""
    if age_of(resident.birth_date, today) >= PRIORITY_AGE:
        return 1, "age80"
    if resident.disabled:
        return 1, "disabled"
    return 0, ""


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

    A resident on their own device (remote assist 2.0) takes it for themself, at their
    community's service point.
    """
    if principal.is_resident:
        resident_id = principal.resident_id
        if site_id not in principal.site_ids:
            raise Forbidden("forbidden_site")
    if not consent:
        raise Invalid("queue.consent")
    line = await session.get(WindowLine, line_id)
    if line is None or not line.active:
        raise NotFound(f"窗口 {line_id}", f"Window line {line_id}")
    from core.catalog import get_item

    item = await get_item(session=session, code=item_code)
    if not item.remote_capable:
        raise Invalid("queue.remote_only")
    site = await site_service.get(session=session, site_id=site_id)
    if _id(line) not in await _lines_serving(session, item, site):
        raise Invalid("queue.line_mismatch", line=line.name, item=item.name)
    resident = await session.get(Resident, resident_id) if resident_id is not None else None
    if resident_id is not None and resident is None:
        raise NotFound(f"居民 {resident_id}", f"Resident {resident_id}")
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
    case.line_id = _id(line)
    now = utcnow()
    day = working_day(settings, now)
    seq, number = await _number(session, line, day)
    priority, reason = _priority(resident, day)
    if appointment_id is not None:
        appointment = await check_in(
            session=session,
            appointment_id=appointment_id,
            resident_id=resident_id,
            line_id=_id(line),
        )
        priority, reason = 1, "appointment"
    ticket = Ticket(
        line_id=_id(line),
        case_id=_id(case),
        day=day,
        seq=seq,
        number=number,
        status=TicketStatus.waiting,
        priority=priority,
        priority_reason=reason,
        channel="self" if principal.is_resident else "assisted",
        item_code=item.code,
        item_name=item.name,
        line_name=line.name,
        case_number=case.number,
        item_id=_id(item),
        resident_id=resident_id,
        point_site_id=site_id,
        taken_by=principal.staff_fk,
        consent_at=now,
        waiting_since=now,
        created_at=now,
    )
    session.add(ticket)
    await session.flush()
    if appointment_id is not None:
        appointment.ticket_id = ticket.id
        session.add(appointment)
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
        data={"ticket": number, "line": line.code, "priority": reason or None},
    )
    outbox.lines.add(_id(line))
    return ticket


async def get_ticket(*, session: AsyncSession, ticket_id: int, lock: bool = False) -> Ticket:
    q = select(Ticket).where(Ticket.id == ticket_id)
    if lock:
        q = q.with_for_update()
    ticket = (await session.exec(q)).first()
    if ticket is None:
        raise NotFound(f"号码 {ticket_id}", f"Ticket {ticket_id}")
    return ticket


def _state_error(t: Ticket, action: str, action_en: str) -> AppError:
    return Conflict(
        "ticket.state", number=t.number, status=t.status, action=action, action_en=action_en
    )


async def cancel_ticket(
    *, session: AsyncSession, principal: Principal, outbox: Outbox, ticket_id: int
) -> Ticket:
    t = await get_ticket(session=session, ticket_id=ticket_id, lock=True)
    await require_ticket(session, principal, t)
    if t.status not in (TicketStatus.waiting, TicketStatus.called):
        raise _state_error(t, "取消", "cancel")
    now = utcnow()
    t.status = TicketStatus.cancelled
    t.finished_at = now
    session.add(t)
    case = await case_service.get(session=session, case_id=t.case_id)
    case_service.set_status(
        session, case, CaseStatus.cancelled, actor_id=principal.staff_fk, data={"ticket": t.number}
    )
    if t.call_id:
        await end_call(session=session, outbox=outbox, call_id=t.call_id, reason="cancelled")
    outbox.lines.add(t.line_id)
    return t


async def _active_ticket_of(session: AsyncSession, clerk_id: int) -> Ticket | None:
    q = select(Ticket).where(Ticket.called_by == clerk_id, col(Ticket.status).in_(ACTIVE_TICKET))
    return (await session.exec(q)).first()


async def call_next(
    *, session: AsyncSession, settings: Settings, principal: Principal, outbox: Outbox
) -> tuple[TicketRead, CallJoin] | None:
    """Give the clerk the highest-priority, longest-waiting ticket of their lines, or None.

    Atomic across processes and nodes: on PostgreSQL the row is taken with FOR UPDATE SKIP
    LOCKED (a second clerk skips it and takes the next); on SQLite the transaction holds the
    write lock from its first statement (BEGIN IMMEDIATE).
    """
    if not principal.line_ids:
        raise Invalid("queue.no_lines")
    current = await _active_ticket_of(session, principal.staff_id)
    if current is not None:
        raise Conflict("queue.busy", number=current.number)
    q = (
        select(Ticket)
        .where(col(Ticket.line_id).in_(principal.line_ids), Ticket.status == TicketStatus.waiting)
        .order_by(*_queue_order())
        .limit(1)
        .with_for_update(skip_locked=True)
    )
    ticket = (await session.exec(q)).first()
    if ticket is None:
        return None
    now = utcnow()
    call = Call(
        ticket_id=_id(ticket), case_id=ticket.case_id, status=CallStatus.ringing, created_at=now
    )
    session.add(call)
    await session.flush()
    ticket.status = TicketStatus.called
    ticket.called_at = now
    ticket.called_by = principal.staff_id
    ticket.call_id = _id(call)
    session.add(ticket)
    await case_service.update_status(
        session,
        ticket.case_id,
        CaseStatus.in_service,
        previous=CaseStatus.open,  # a waiting ticket's case is open
        actor_id=principal.staff_id,
        data={"ticket": ticket.number, "call": call.id},
    )
    join = await _add_participant(session, settings, outbox, call, principal, "clerk", present=[])
    read = (await read_tickets(session, [ticket], {}))[0]
    outbox.emit(
        "ticket:called",
        room_ticket(_id(ticket)),
        {
            "ticket": read.model_dump(mode="json"),
            "call_id": call.id,
            "clerk": principal.display_name,
        },
    )
    outbox.lines.add(ticket.line_id)
    return read, join


async def _own_active(session: AsyncSession, principal: Principal, ticket_id: int) -> Ticket:
    t = await get_ticket(session=session, ticket_id=ticket_id, lock=True)
    if t.called_by != principal.staff_id and not principal.is_admin:
        raise Forbidden("ticket.not_yours")
    return t


async def recall(
    *, session: AsyncSession, principal: Principal, outbox: Outbox, ticket_id: int
) -> Ticket:
    """Ring the point again for a ticket this clerk called (叫号 once more)."""
    t = await _own_active(session, principal, ticket_id)
    if t.status != TicketStatus.called:
        raise _state_error(t, "重呼", "recall")
    await _ring_again(session, outbox, t, principal.staff_id)
    return t


async def _ring_again(session: AsyncSession, outbox: Outbox, t: Ticket, actor: int | None) -> None:
    t.called_at = utcnow()
    t.recalls += 1
    session.add(t)
    case = await case_service.get(session=session, case_id=t.case_id)
    case_service.add_event(
        session,
        case,
        "ticket.recalled",
        actor_id=actor,
        data={"ticket": t.number, "recalls": t.recalls},
    )
    read = (await read_tickets(session, [t], {}))[0]
    outbox.emit(
        "ticket:called",
        room_ticket(_id(t)),
        {"ticket": read.model_dump(mode="json"), "call_id": t.call_id, "recall": t.recalls},
    )


async def answer(
    *,
    session: AsyncSession,
    settings: Settings,
    principal: Principal,
    outbox: Outbox,
    ticket_id: int,
) -> tuple[Ticket, CallJoin]:
    """The service point picks up: the ticket is being served and the point joins the call."""
    t = await get_ticket(session=session, ticket_id=ticket_id, lock=True)
    await require_ticket(session, principal, t)
    if t.status != TicketStatus.called or t.call_id is None:
        raise _state_error(t, "接听", "answer")
    call = await session.get(Call, t.call_id)
    assert call is not None
    now = utcnow()
    t.status = TicketStatus.serving
    t.answered_at = now
    session.add(t)
    call.status = CallStatus.active
    session.add(call)
    case = await case_service.get(session=session, case_id=t.case_id)
    case_service.add_event(
        session, case, "call.answered", actor_id=principal.staff_fk, at=now, data={"call": call.id}
    )
    role = "resident" if principal.is_resident else "point"
    join = await _add_participant(session, settings, outbox, call, principal, role)
    return t, join


async def transfer(
    *,
    session: AsyncSession,
    settings: Settings,
    principal: Principal,
    outbox: Outbox,
    ticket_id: int,
    line_id: int,
    reason: str,
) -> Ticket:
    """Move a called or served ticket to another line; it keeps its original waiting time."""
    t = await _own_active(session, principal, ticket_id)
    if t.status not in ACTIVE_TICKET:
        raise _state_error(t, "转办", "transfer")
    target = await session.get(WindowLine, line_id)
    if target is None or not target.active:
        raise NotFound(f"窗口 {line_id}", f"Window line {line_id}")
    if target.id == t.line_id:
        raise Invalid("validation", details=[{"loc": ["line_id"], "msg": "same line"}])
    old_line, old_number = t.line_id, t.number
    day = working_day(settings, utcnow())
    seq, number = await _number(session, target, day)
    t.line_id, t.day, t.seq, t.number = _id(target), day, seq, number
    t.line_name = target.name
    t.status = TicketStatus.waiting
    t.called_at = t.called_by = t.answered_at = None
    call_id, t.call_id = t.call_id, None
    session.add(t)
    case = await case_service.get(session=session, case_id=t.case_id)
    case.line_id = _id(target)
    case_service.set_status(
        session,
        case,
        CaseStatus.transferred,
        actor_id=principal.staff_id,
        data={"from_ticket": old_number, "ticket": number, "line": target.code, "reason": reason},
    )
    case_service.set_status(
        session,
        case,
        CaseStatus.open,
        actor_id=principal.staff_id,
        data={"waiting_on": target.code},
    )
    if call_id:
        await end_call(session=session, outbox=outbox, call_id=call_id, reason="transferred")
    outbox.lines.update({old_line, _id(target)})
    return t


async def finish(
    *,
    session: AsyncSession,
    principal: Principal,
    outbox: Outbox,
    ticket_id: int,
    outcome: Outcome,
    reason: str = "",
    note: str = "",
) -> Ticket:
    """Close the case with an outcome (transfers go through transfer())."""
    t = await _own_active(session, principal, ticket_id)
    if t.status not in ACTIVE_TICKET:
        raise _state_error(t, "办结", "finish")
    if outcome is Outcome.returned and not reason.strip():
        raise Invalid("ticket.reason_required")
    if outcome is Outcome.transferred:
        raise Invalid("validation", details=[{"loc": ["outcome"], "msg": "use ticket:transfer"}])
    if outcome in (Outcome.completed, Outcome.accepted):
        # Completing (or accepting for approval) needs every required material accepted.
        case = await session.get(Case, t.case_id)
        assert case is not None
        await checklist.require_complete(session, case)
    now = utcnow()
    t.status = TicketStatus.done
    t.outcome = outcome
    t.finished_at = now
    session.add(t)
    await case_service.update_status(
        session,
        t.case_id,
        OUTCOME_STATUS[outcome],
        previous=CaseStatus.in_service,  # an active ticket's case is in service
        actor_id=principal.staff_id,
        data={"outcome": outcome, "reason": reason, "note": note},
        note=note or None,
    )
    read = (await read_tickets(session, [t], {}))[0]
    outbox.emit("ticket:update", room_ticket(_id(t)), {"ticket": read.model_dump(mode="json")})
    if t.call_id:
        outbox.emit(
            "case:finished",
            room_call(t.call_id),
            {"call_id": t.call_id, "case_id": t.case_id, "outcome": outcome, "reason": reason},
        )
    outbox.lines.add(t.line_id)
    return t


# -- calls


def ice_servers(
    settings: Settings, user: str, now: dt.datetime | None = None
) -> list[dict[str, Any]]:
    """STUN plus TURN with coturn REST credentials (username "<expiry>:<user>", HMAC-SHA1)."""
    from signaling.turn import ice_servers as build

    return build(settings, user, now or utcnow())


async def _display_names(session: AsyncSession, staff_ids: set[int]) -> dict[int, str]:
    from core.models import Staff

    if not staff_ids:
        return {}
    rows = await session.exec(
        select(Staff.id, Staff.display_name).where(col(Staff.id).in_(staff_ids))
    )
    return {i: n for i, n in rows.all() if i is not None}


async def participants(session: AsyncSession, call_id: int) -> list[ParticipantRead]:
    rows = list(
        (
            await session.exec(
                select(CallParticipant)
                .where(CallParticipant.call_id == call_id, col(CallParticipant.left_at).is_(None))
                .order_by(col(CallParticipant.id))
            )
        ).all()
    )
    names = await _display_names(session, {p.staff_id for p in rows if p.staff_id})
    rids = {p.resident_id for p in rows if p.resident_id}
    if rids:
        people = await session.exec(
            select(Resident.id, Resident.name).where(col(Resident.id).in_(rids))
        )
        resident_names = {i: n for i, n in people.all() if i is not None}
    else:
        resident_names = {}
    return [
        ParticipantRead(
            id=_id(p),
            staff_id=p.staff_id,
            resident_id=p.resident_id,
            role=p.role,
            display_name=(
                resident_names.get(p.resident_id, "")
                if p.resident_id
                else names.get(p.staff_id or 0, "")
            ),
            connected=p.disconnected_at is None,
        )
        for p in rows
    ]


def _is_me(principal: Principal) -> Any:
    """SQL condition: the participant row belongs to this staff member or resident."""
    if principal.is_resident:
        return col(CallParticipant.resident_id) == principal.resident_id
    return col(CallParticipant.staff_id) == principal.staff_id


def ice_user(principal: Principal) -> str:
    return f"r{principal.resident_id}" if principal.is_resident else str(principal.staff_id)


async def _add_participant(
    session: AsyncSession,
    settings: Settings,
    outbox: Outbox,
    call: Call,
    principal: Principal,
    role: str,
    present: list[ParticipantRead] | None = None,
) -> CallJoin:
    """Add the principal to the call (present: who is in it, when the caller knows already)."""
    if present is None:
        present = await participants(session, _id(call))
    me_key = (principal.staff_fk, principal.resident_id)
    if any((p.staff_id, p.resident_id) == me_key for p in present):
        raise Conflict(what="通话参与者", what_en="Participant")
    if len(present) >= settings.call_max_participants:
        raise Conflict("call.full", max=settings.call_max_participants)
    token = secrets.token_urlsafe(24)
    row = CallParticipant(
        call_id=_id(call),
        staff_id=principal.staff_fk,
        resident_id=principal.resident_id,
        role=role,
        resume_hash=_hash(token),
    )
    session.add(row)
    await session.flush()
    me = ParticipantRead(
        id=_id(row),
        staff_id=principal.staff_fk,
        resident_id=principal.resident_id,
        role=role,
        display_name=principal.display_name,
        connected=True,
    )
    outbox.emit(
        "call:participant_joined",
        room_call(_id(call)),
        {"call_id": call.id, "participant": me.model_dump(mode="json")},
    )
    outbox.joined.append((_id(call), _id(row), principal.staff_id))
    return CallJoin(
        call_id=_id(call),
        participant_id=_id(row),
        resume_token=token,
        participants=[*present, me],
        ice_servers=ice_servers(settings, ice_user(principal)),
        ticket_id=call.ticket_id,
        case_id=call.case_id,
    )


async def rejoin(
    *,
    session: AsyncSession,
    settings: Settings,
    principal: Principal,
    outbox: Outbox,
    call_id: int,
    resume_token: str,
) -> CallJoin:
    """Come back to a call after a drop, within the grace period, as the same participant."""
    call = await session.get(Call, call_id)
    if call is None or call.status == CallStatus.ended:
        raise Conflict("call.ended")
    row = (
        await session.exec(
            select(CallParticipant).where(
                CallParticipant.call_id == call_id,
                CallParticipant.resume_hash == _hash(resume_token),
                _is_me(principal),
                col(CallParticipant.left_at).is_(None),
            )
        )
    ).first()
    if row is None:
        raise Forbidden("call.resume")
    row.disconnected_at = None
    row.generation += 1
    session.add(row)
    me = ParticipantRead(
        id=_id(row),
        staff_id=principal.staff_fk,
        resident_id=principal.resident_id,
        role=row.role,
        display_name=principal.display_name,
        connected=True,
    )
    outbox.emit(
        "call:participant_joined",
        room_call(call_id),
        {"call_id": call_id, "participant": me.model_dump(mode="json"), "rejoined": True},
    )
    outbox.joined.append((call_id, _id(row), principal.staff_id))
    present = await participants(session, call_id)
    case = await session.get(Case, call.case_id) if call.case_id else None
    if case is not None:
        case_service.add_event(
            session,
            case,
            "call.rejoined",
            actor_id=principal.staff_id,
            data={"call": call_id, "participant": row.id},
        )
    return CallJoin(
        call_id=call_id,
        participant_id=_id(row),
        resume_token=resume_token,
        generation=row.generation,
        participants=present,
        ice_servers=ice_servers(settings, ice_user(principal)),
        ticket_id=call.ticket_id,
        case_id=call.case_id,
    )


async def _participant(session: AsyncSession, call_id: int, pid: int) -> CallParticipant:
    row = await session.get(CallParticipant, pid)
    if row is None or row.call_id != call_id or row.left_at is not None:
        raise Forbidden("call.not_participant")
    return row


async def leave(*, session: AsyncSession, outbox: Outbox, call_id: int, pid: int) -> None:
    """A participant leaves for good; the call ends when nobody is left."""
    row = await _participant(session, call_id, pid)
    row.left_at = utcnow()
    session.add(row)
    outbox.emit(
        "call:participant_left",
        room_call(call_id),
        {"call_id": call_id, "participant_id": pid, "reconnecting": False},
    )
    outbox.left.append((call_id, pid))
    await _end_if_empty(session, outbox, call_id)


async def disconnected(
    *, session: AsyncSession, outbox: Outbox, call_id: int, pid: int, generation: int
) -> None:
    """The participant's socket dropped: others are told; they may rejoin within the grace.

    A socket older than the participant's last rejoin is ignored: its drop is old news.
    """
    row = await session.get(CallParticipant, pid)
    if row is None or row.left_at is not None or row.call_id != call_id:
        return
    if row.generation != generation:
        return
    row.disconnected_at = utcnow()
    session.add(row)
    outbox.emit(
        "call:participant_left",
        room_call(call_id),
        {"call_id": call_id, "participant_id": pid, "reconnecting": True},
    )


async def _end_if_empty(session: AsyncSession, outbox: Outbox, call_id: int) -> None:
    await session.flush()
    left = (
        await session.exec(
            select(func.count())
            .select_from(CallParticipant)
            .where(CallParticipant.call_id == call_id, col(CallParticipant.left_at).is_(None))
        )
    ).one()
    if left == 0:
        await end_call(session=session, outbox=outbox, call_id=call_id, reason="everyone_left")


async def end_call(*, session: AsyncSession, outbox: Outbox, call_id: int, reason: str) -> None:
    call = await session.get(Call, call_id)
    if call is None or call.status == CallStatus.ended:
        return
    now = utcnow()
    call.status = CallStatus.ended
    call.ended_at = now
    call.end_reason = reason
    session.add(call)
    await session.exec(
        update(CallParticipant)  # type: ignore[call-overload]
        .where(col(CallParticipant.call_id) == call_id, col(CallParticipant.left_at).is_(None))
        .values(left_at=now)
    )
    await session.exec(
        update(ExpertInvite)  # type: ignore[call-overload]
        .where(col(ExpertInvite.call_id) == call_id, col(ExpertInvite.status) == InviteStatus.open)
        .values(status=InviteStatus.cancelled)
    )
    if call.case_id:
        case = await session.get(Case, call.case_id)
        if case is not None:
            case_service.add_event(
                session,
                case,
                "call.ended",
                actor_id=None,
                at=now,
                data={"call": call_id, "reason": reason, **call_log(call)},
            )
    outbox.emit("call:ended", room_call(call_id), {"call_id": call_id, "reason": reason})
    outbox.ended.append(call_id)


def call_log(call: Call) -> dict[str, Any]:
    """Seconds from the clerk's call to connection and to first media, and the call's length."""

    def since(t: dt.datetime | None) -> float | None:
        return round((t - call.created_at).total_seconds(), 3) if t else None

    return {
        "connected_after_s": since(call.connected_at),
        "first_media_after_s": since(call.first_media_at),
        "duration_s": since(call.ended_at),
        "quality": call.quality,
    }


async def record_state(*, session: AsyncSession, call_id: int, pid: int, state: str) -> Call:
    """A client reports "connected" or "first_media"; the first report of each is kept."""
    await _participant(session, call_id, pid)
    call = await session.get(Call, call_id)
    assert call is not None
    now = utcnow()
    if state == "connected" and call.connected_at is None:
        call.connected_at = now
    elif state == "first_media" and call.first_media_at is None:
        call.first_media_at = now
    session.add(call)
    return call


async def record_stats(
    *, session: AsyncSession, call_id: int, pid: int, summary: dict[str, Any]
) -> None:
    """Keep the participant's latest stats summary and the call's worst figures."""
    row = await _participant(session, call_id, pid)
    row.stats = summary
    row.stats_reports += 1
    session.add(row)
    call = await session.get(Call, call_id)
    assert call is not None
    q = dict(call.quality)
    for key, worst in (
        ("rtt_ms", max),
        ("jitter_ms", max),
        ("packet_loss_pct", max),
        ("bitrate_kbps", min),
        ("fps", min),
    ):
        value = summary.get(key)
        if value is not None:
            q[key] = worst(q[key], value) if key in q else value
    q["reports"] = q.get("reports", 0) + 1
    call.quality = q
    session.add(call)


# -- experts


async def invite_expert(
    *,
    session: AsyncSession,
    settings: Settings,
    principal: Principal,
    outbox: Outbox,
    call_id: int,
    pid: int,
    skill: str,
) -> ExpertInvite:
    await _participant(session, call_id, pid)
    call = await session.get(Call, call_id)
    if call is None or call.status == CallStatus.ended:
        raise Conflict("call.ended")
    if len(await participants(session, call_id)) >= settings.call_max_participants:
        raise Conflict("call.full", max=settings.call_max_participants)
    now = utcnow()
    invite = ExpertInvite(
        call_id=call_id,
        skill=skill,
        invited_by=principal.staff_id,
        status=InviteStatus.open,
        created_at=now,
        expires_at=now + dt.timedelta(seconds=settings.expert_invite_seconds),
    )
    session.add(invite)
    await session.flush()
    item_name = ""
    if call.case_id:
        case = await session.get(Case, call.case_id)
        item = await session.get(ServiceItem, case.item_id) if case else None
        item_name = item.name if item else ""
        if case:
            case_service.add_event(
                session,
                case,
                "expert.invited",
                actor_id=principal.staff_id,
                data={"skill": skill, "invite": invite.id},
            )
    outbox.emit(
        "expert:invited",
        room_skill(skill),
        {
            "invite_id": invite.id,
            "call_id": call_id,
            "skill": skill,
            "item_name": item_name,
            "invited_by": principal.display_name,
            "expires_at": invite.expires_at.isoformat(),
        },
    )
    return invite


async def accept_invite(
    *,
    session: AsyncSession,
    settings: Settings,
    principal: Principal,
    outbox: Outbox,
    invite_id: int,
) -> CallJoin:
    """The first available expert with the skill who accepts joins; later ones get invite.taken."""
    invite = await session.get(ExpertInvite, invite_id)
    if invite is None:
        raise NotFound(f"邀请 {invite_id}", f"Invite {invite_id}")
    if invite.skill not in principal.skills:
        raise Forbidden("invite.skill", skill=invite.skill)
    now = utcnow()
    won = await session.exec(
        update(ExpertInvite)  # type: ignore[call-overload]
        .where(
            col(ExpertInvite.id) == invite_id,
            col(ExpertInvite.status) == InviteStatus.open,
            col(ExpertInvite.expires_at) > now,
        )
        .values(status=InviteStatus.accepted, accepted_by=principal.staff_id)
    )
    if won.rowcount != 1:
        raise Conflict("invite.taken")
    call = await session.get(Call, invite.call_id)
    if call is None or call.status == CallStatus.ended:
        raise Conflict("call.ended")
    join = await _add_participant(session, settings, outbox, call, principal, "expert")
    if call.case_id:
        case = await session.get(Case, call.case_id)
        if case:
            case_service.add_event(
                session,
                case,
                "expert.joined",
                actor_id=principal.staff_id,
                data={"skill": invite.skill, "invite": invite_id},
            )
    outbox.emit(
        "expert:invite_closed",
        room_skill(invite.skill),
        {"invite_id": invite_id, "accepted_by": principal.display_name},
    )
    return join


# -- presence


async def set_presence(
    *, session: AsyncSession, staff_id: int, node_id: str, status: PresenceStatus
) -> None:
    row = await session.get(Presence, (staff_id, node_id))
    now = utcnow()
    if row is None:
        session.add(Presence(staff_id=staff_id, node_id=node_id, status=status, updated_at=now))
    else:
        row.status, row.updated_at = status, now
        session.add(row)
    # The same person on another node (a second screen) shows the same status.
    await session.exec(
        update(Presence)  # type: ignore[call-overload]
        .where(col(Presence.staff_id) == staff_id, col(Presence.node_id) != node_id)
        .values(status=status)
    )


async def drop_presence(*, session: AsyncSession, staff_id: int, node_id: str) -> None:
    row = await session.get(Presence, (staff_id, node_id))
    if row is not None:
        await session.delete(row)


async def refresh_presence(*, session: AsyncSession, node_id: str, staff_ids: set[int]) -> None:
    if staff_ids:
        await session.exec(
            update(Presence)  # type: ignore[call-overload]
            .where(col(Presence.node_id) == node_id, col(Presence.staff_id).in_(staff_ids))
            .values(updated_at=utcnow())
        )


async def lines_of_staff(session: AsyncSession, staff_id: int) -> list[int]:
    rows = await session.exec(select(StaffLine.line_id).where(StaffLine.staff_id == staff_id))
    return list(rows.all())


# -- state for a reconnecting client


async def open_tickets_for(
    session: AsyncSession, settings: Settings, principal: Principal
) -> list[TicketRead]:
    """Tickets the principal took or is serving that are not finished yet."""
    q = select(Ticket).where(col(Ticket.status).in_(OPEN_TICKET))
    if principal.role == Role.clerk:
        q = q.where(Ticket.called_by == principal.staff_id)
    elif principal.is_resident:
        q = q.where(Ticket.resident_id == principal.resident_id)
    else:
        q = q.where(Ticket.taken_by == principal.staff_id)
    tickets = list((await session.exec(q.order_by(col(Ticket.id)))).all())
    out = []
    for t in tickets:
        out.append(await ticket_view(session, settings, t))
    return out


async def active_calls_for(session: AsyncSession, principal: Principal) -> list[dict[str, Any]]:
    rows = (
        await session.exec(
            select(CallParticipant.call_id, CallParticipant.id)
            .join(Call, col(Call.id) == col(CallParticipant.call_id))
            .where(
                _is_me(principal),
                col(CallParticipant.left_at).is_(None),
                Call.status != CallStatus.ended,
            )
        )
    ).all()
    return [{"call_id": c, "participant_id": p} for c, p in rows]


# -- sweeps


async def sweep_unanswered(
    *, session: AsyncSession, settings: Settings, outbox: Outbox, now: dt.datetime | None = None
) -> int:
    """Recall called tickets nobody answered in time; after the last recall, mark no-show."""
    now = now or utcnow()
    deadline = now - dt.timedelta(seconds=settings.ticket_answer_seconds)
    q = (
        select(Ticket)
        .where(Ticket.status == TicketStatus.called, col(Ticket.called_at) < deadline)
        .with_for_update(skip_locked=True)
        .limit(100)
    )
    changed = 0
    for t in (await session.exec(q)).all():
        if t.recalls < settings.ticket_max_recalls:
            await _ring_again(session, outbox, t, None)
        else:
            t.status = TicketStatus.no_show
            t.finished_at = now
            session.add(t)
            case = await case_service.get(session=session, case_id=t.case_id)
            case_service.set_status(
                session,
                case,
                CaseStatus.cancelled,
                actor_id=None,
                data={"reason": "no_show", "ticket": t.number},
            )
            if t.call_id:
                await end_call(session=session, outbox=outbox, call_id=t.call_id, reason="no_show")
            read = (await read_tickets(session, [t], {}))[0]
            outbox.emit(
                "ticket:update", room_ticket(_id(t)), {"ticket": read.model_dump(mode="json")}
            )
            outbox.lines.add(t.line_id)
        changed += 1
    return changed


async def sweep_dropped(
    *, session: AsyncSession, settings: Settings, outbox: Outbox, now: dt.datetime | None = None
) -> int:
    """Participants gone longer than the rejoin grace leave; empty calls end."""
    now = now or utcnow()
    deadline = now - dt.timedelta(seconds=settings.call_rejoin_grace_seconds)
    rows = (
        await session.exec(
            select(CallParticipant)
            .where(
                col(CallParticipant.left_at).is_(None),
                col(CallParticipant.disconnected_at).is_not(None),
                col(CallParticipant.disconnected_at) < deadline,
            )
            .limit(200)
        )
    ).all()
    calls = set()
    for row in rows:
        row.left_at = now
        session.add(row)
        outbox.emit(
            "call:participant_left",
            room_call(row.call_id),
            {"call_id": row.call_id, "participant_id": row.id, "reconnecting": False},
        )
        outbox.left.append((row.call_id, _id(row)))
        calls.add(row.call_id)
    for call_id in calls:
        await _end_if_empty(session, outbox, call_id)
    expired = await session.exec(
        update(ExpertInvite)  # type: ignore[call-overload]
        .where(col(ExpertInvite.status) == InviteStatus.open, col(ExpertInvite.expires_at) <= now)
        .values(status=InviteStatus.expired)
    )
    return len(rows) + int(expired.rowcount or 0)
