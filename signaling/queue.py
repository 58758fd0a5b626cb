"""The queue of a window line: tickets, numbers, call next, recall, transfer, finish, positions.

Work that spans other domains (opening the case, checking an appointment in, the checklist
gate) is composed in signaling.flows; this module keeps the queue's own rules. It stays one
module because every part works on the same row and order: the positions read the queue in
the order call next takes it, and every state change is checked against the same states.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Iterable
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core import cases as case_service
from core import sites as site_service
from core.access import Principal, require_ticket
from core.catalog import get_item
from core.db import driver_fetchrow, single_statements, utcnow
from core.errors import AppError, Conflict, Forbidden, Invalid, NotFound
from core.events import Audience
from core.models import (
    Case,
    CaseStatus,
    Resident,
    Role,
    ServiceItem,
    Site,
    StaffLine,
    WindowLine,
)
from core.residents import PRIORITY_AGE, age_of
from core.settings import Settings
from signaling import calls
from signaling.events import CaseFinished, TicketCalled, TicketUpdated
from signaling.models import (
    Call,
    CallJoin,
    CallParticipant,
    CallStatus,
    LineCounter,
    LineStatus,
    Outcome,
    Presence,
    PresenceStatus,
    Ticket,
    TicketRead,
    TicketStatus,
    id_of,
)
from signaling.outbox import Outbox

ACTIVE_TICKET = (TicketStatus.called, TicketStatus.serving)
ACTIVE_WHERE = "status IN ('called', 'serving')"  # the same, as SQL
OPEN_TICKET = (TicketStatus.waiting, TicketStatus.called, TicketStatus.serving)
# Handling times averaged for the wait estimate: the most recent this many finished tickets.
HANDLING_SAMPLE = 20

Positions = dict[int, tuple[int, int | None]]  # ticket id -> (position, eta seconds)


def working_day(settings: Settings, now: dt.datetime) -> dt.date:
    return now.astimezone(ZoneInfo(settings.timezone)).date()


# -- reading


async def lines_of(session: AsyncSession, staff_id: int) -> frozenset[int]:
    """The lines a staff member is bound to now (a tidal move adds one for a while)."""
    rows = await session.exec(select(StaffLine.line_id).where(StaffLine.staff_id == staff_id))
    return frozenset(rows.all())


async def read_tickets(
    *, session: AsyncSession, tickets: Iterable[Ticket], positions: Positions
) -> list[TicketRead]:
    """What holders and clerks see of tickets (resident name and masked id, position)."""
    tickets = list(tickets)
    rids = {t.resident_id for t in tickets if t.resident_id}
    residents: dict[int | None, Resident] = {}
    if rids:
        rows = await session.exec(select(Resident).where(col(Resident.id).in_(rids)))
        residents = {r.id: r for r in rows.all()}
    out = []
    for t in tickets:
        resident = residents.get(t.resident_id) if t.resident_id else None
        pos = positions.get(id_of(t))
        out.append(
            TicketRead(
                id=id_of(t),
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


async def _read_one(session: AsyncSession, ticket: Ticket) -> TicketRead:
    return (await read_tickets(session=session, tickets=[ticket], positions={}))[0]


def _queue_order() -> tuple[Any, ...]:
    return (col(Ticket.priority).desc(), col(Ticket.waiting_since), col(Ticket.id))


async def tickets_by_id(*, session: AsyncSession, ids: list[int]) -> list[Ticket]:
    rows = await session.exec(select(Ticket).where(col(Ticket.id).in_(ids)))
    return list(rows.all())


async def waiting_ticket_lines(*, session: AsyncSession, ticket_ids: list[int]) -> dict[int, int]:
    """The line of each of these tickets that is still waiting."""
    rows = await session.exec(
        select(Ticket.id, Ticket.line_id).where(
            col(Ticket.id).in_(ticket_ids), Ticket.status == TicketStatus.waiting
        )
    )
    return {tid: line for tid, line in rows.all() if tid is not None}


async def avg_handling_seconds(*, session: AsyncSession, line_id: int) -> int | None:
    """The mean of the line's last HANDLING_SAMPLE handling times; None until one is measured
    (an assumed figure would be shown to residents as if it were the line's)."""
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
    return int(sum(spans) / len(spans)) if spans else None


async def clerks_on_line(
    *, session: AsyncSession, settings: Settings, line_id: int, now: dt.datetime
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
    *, session: AsyncSession, settings: Settings, line_id: int, now: dt.datetime | None = None
) -> tuple[LineStatus, Positions]:
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
    avg = await avg_handling_seconds(session=session, line_id=line_id)
    online, available = await clerks_on_line(
        session=session, settings=settings, line_id=line_id, now=now
    )
    serving_clerks = max(online, available)
    positions: Positions = {}
    for i, (tid, _since) in enumerate(order, start=1):
        # Each clerk serves one resident at a time: the i-th in line waits about
        # ceil(i / clerks) handling times. With no clerk online, or no handling time measured
        # yet, the wait is unknown.
        eta = math.ceil(i / serving_clerks) * avg if serving_clerks and avg else None
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


async def ticket_view(*, session: AsyncSession, settings: Settings, ticket: Ticket) -> TicketRead:
    """One ticket as its holder sees it, with its position while it waits."""
    positions: Positions = {}
    if ticket.status == TicketStatus.waiting:
        _, positions = await line_snapshot(
            session=session, settings=settings, line_id=ticket.line_id
        )
    return (await read_tickets(session=session, tickets=[ticket], positions=positions))[0]


async def open_tickets_for(
    *, session: AsyncSession, settings: Settings, principal: Principal
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
        out.append(await ticket_view(session=session, settings=settings, ticket=t))
    return out


# -- taking a number


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
    seq = await _next_seq(session, id_of(line), day)
    return seq, f"{line.ticket_prefix}{seq:03d}"


async def _lines_serving(session: AsyncSession, item: ServiceItem, site: Site) -> set[int]:
    """Lines a point may queue an item on: the one routing picks, or the district center's."""
    ids = set()
    routed = await site_service.route_line(session=session, item=item, site=site)
    if routed is not None:
        ids.add(id_of(routed))
    district = await site_service.hall_of(session, site, "district")
    q = select(WindowLine.id).where(
        WindowLine.site_id == district.id, WindowLine.department == item.department
    )
    ids.update(i for i in (await session.exec(q)).all() if i is not None)
    return ids


# A number taken at a resident's home by the visiting field worker: ahead of appointments
# and priority residents (1), since staff and resident wait at the door together.
HOME_VISIT_PRIORITY = 2


def _priority(resident: Resident | None, today: dt.date) -> tuple[int, str]:
    if resident is None:
        return 0, ""
    if age_of(resident.birth_date, today) >= PRIORITY_AGE:
        return 1, "age80"
    if resident.disabled:
        return 1, "disabled"
    return 0, ""


async def admit(
    *,
    session: AsyncSession,
    principal: Principal,
    line_id: int,
    item_code: str,
    site_id: int,
    resident_id: int | None,
    consent: bool,
) -> tuple[WindowLine, ServiceItem, Resident | None]:
    """Check that a number may be taken on the line for the item, at the site, for whom.

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
    item = await get_item(session=session, code=item_code)
    if not item.remote_capable:
        raise Invalid("queue.remote_only")
    site = await site_service.get(session=session, site_id=site_id)
    if id_of(line) not in await _lines_serving(session, item, site):
        raise Invalid("queue.line_mismatch", line=line.name, item=item.name)
    resident = await session.get(Resident, resident_id) if resident_id is not None else None
    if resident_id is not None and resident is None:
        raise NotFound(f"居民 {resident_id}", f"Resident {resident_id}")
    return line, item, resident


async def issue(
    *,
    session: AsyncSession,
    settings: Settings,
    principal: Principal,
    outbox: Outbox,
    line: WindowLine,
    item: ServiceItem,
    case: Case,
    resident: Resident | None,
    site_id: int,
    appointment: bool = False,
    home_visit: bool = False,
) -> Ticket:
    """Give the case the line's next number; an appointment check-in is served first, and a
    field worker at a resident's door before that (they stand at someone's home)."""
    now = utcnow()
    day = working_day(settings, now)
    seq, number = await _number(session, line, day)
    priority, reason = (1, "appointment") if appointment else _priority(resident, day)
    if home_visit:
        priority, reason = HOME_VISIT_PRIORITY, "home_visit"
    ticket = Ticket(
        line_id=id_of(line),
        case_id=id_of(case),
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
        item_id=id_of(item),
        resident_id=resident.id if resident is not None else None,
        point_site_id=site_id,
        taken_by=principal.staff_fk,
        consent_at=now,
        waiting_since=now,
        created_at=now,
    )
    session.add(ticket)
    await session.flush()
    outbox.lines.add(id_of(line))
    return ticket


# -- serving


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
        await calls.end_call(session=session, outbox=outbox, call_id=t.call_id, reason="cancelled")
    outbox.lines.add(t.line_id)
    return t


async def _active_ticket_of(session: AsyncSession, clerk_id: int) -> Ticket | None:
    q = select(Ticket).where(Ticket.called_by == clerk_id, col(Ticket.status).in_(ACTIVE_TICKET))
    return (await session.exec(q)).first()


# The ticket columns TicketRead shows (and resident_id, for the resident's name and masked id).
_READ_COLUMNS = ", ".join(
    f"t.{name}" for name in (*TicketRead.model_fields, "resident_id") if name in Ticket.model_fields
)

# PostgreSQL: call next in one statement and one round trip. The waiting ticket is taken with
# FOR UPDATE SKIP LOCKED (a concurrent clerk skips it and takes the next), the call id is drawn
# from its sequence first, so the ticket row is written once; the call, the clerk's participant
# row, the case's status and its timeline event are written by the same statement. It goes
# straight through asyncpg: SQLAlchemy's result handling cost more than the statement.
_CALL_NEXT_PG = (
    """
WITH pick AS (
    SELECT id FROM ticket
    WHERE line_id = ANY($1) AND status = 'waiting'
    ORDER BY priority DESC, waiting_since, id
    LIMIT 1 FOR UPDATE SKIP LOCKED
), cid AS (
    SELECT nextval(pg_get_serial_sequence('call', 'id')) AS id FROM pick
), t AS (
    UPDATE ticket SET status = 'called', called_at = $2, called_by = $3, call_id = cid.id
    FROM pick, cid WHERE ticket.id = pick.id
    RETURNING ticket.*
), c AS (
    INSERT INTO call (id, ticket_id, case_id, status, created_at, end_reason, quality)
    SELECT cid.id, t.id, t.case_id, 'ringing', $2, '', '{}'::json FROM t, cid
    RETURNING id
), p AS (
    INSERT INTO call_participant
        (call_id, staff_id, role, joined_at, resume_hash, generation, stats, stats_reports)
    SELECT c.id, $3, 'clerk', $2, $4, 0, '{}'::json, 0 FROM c
    RETURNING id
), sc AS (
    UPDATE service_case SET status = 'in_service', updated_at = $2
    FROM t WHERE service_case.id = t.case_id
), ev AS (
    INSERT INTO case_event (case_id, at, kind, actor_id, data)
    SELECT t.case_id, $2, 'status.in_service', $3,
           json_build_object('from', 'open', 'ticket', t.number, 'call', t.call_id)
    FROM t
)
SELECT """
    + _READ_COLUMNS
    + """, p.id AS participant_id,
       r.name AS resident_name, r.id_masked AS resident_id_masked
FROM t CROSS JOIN p LEFT JOIN resident r ON r.id = t.resident_id
"""
)


async def _assign_pg(
    session: AsyncSession, principal: Principal, now: dt.datetime, resume_hash: str
) -> Any:
    args = (sorted(principal.line_ids), now, principal.staff_id, resume_hash)
    return await driver_fetchrow(session, _CALL_NEXT_PG, *args)


async def _assign_sqlite(
    session: AsyncSession, principal: Principal, now: dt.datetime, resume_hash: str
) -> Any:
    """The same writes as one statement each (the transaction holds SQLite's write lock)."""
    tickets = Ticket.__table__  # type: ignore[attr-defined]
    picked = (
        await session.exec(
            sa.select(tickets.c.id, tickets.c.case_id, tickets.c.number)
            .where(
                tickets.c.line_id.in_(principal.line_ids),
                tickets.c.status == TicketStatus.waiting,
            )
            .order_by(*_queue_order())
            .limit(1)
        )
    ).first()
    if picked is None:
        return None
    call_id = (
        await session.exec(
            sa.insert(Call.__table__)  # type: ignore[attr-defined]
            .values(
                ticket_id=picked.id,
                case_id=picked.case_id,
                status=CallStatus.ringing,
                created_at=now,
                end_reason="",
                quality={},
            )
            .returning(sa.literal_column("id"))
        )
    ).scalar_one()
    row = (
        await session.exec(
            sa.update(tickets)
            .where(tickets.c.id == picked.id)
            .values(
                status=TicketStatus.called,
                called_at=now,
                called_by=principal.staff_id,
                call_id=call_id,
            )
            .returning(*tickets.columns)
        )
    ).first()
    pid = (
        await session.exec(
            sa.insert(CallParticipant.__table__)  # type: ignore[attr-defined]
            .values(
                call_id=call_id,
                staff_id=principal.staff_id,
                role="clerk",
                joined_at=now,
                resume_hash=resume_hash,
                generation=0,
                stats={},
                stats_reports=0,
            )
            .returning(sa.literal_column("id"))
        )
    ).scalar_one()
    await case_service.update_status(
        session,
        picked.case_id,
        CaseStatus.in_service,
        previous=CaseStatus.open,
        actor_id=principal.staff_id,
        data={"ticket": picked.number, "call": call_id},
        at=now,
    )
    resident = await _resident_shown(session, row.resident_id)
    return {**row._mapping, "participant_id": pid, **resident}


async def _resident_shown(session: AsyncSession, resident_id: int | None) -> dict[str, Any]:
    if resident_id is None:
        return {"resident_name": None, "resident_id_masked": None}
    r = await session.get(Resident, resident_id)
    return {
        "resident_name": r.name if r else None,
        "resident_id_masked": r.id_masked if r else None,
    }


def _ticket_out(row: Any) -> TicketRead:
    return TicketRead.model_validate(dict(row))


async def call_next(
    *, session: AsyncSession, settings: Settings, principal: Principal, outbox: Outbox
) -> tuple[TicketRead, CallJoin] | None:
    """Give the clerk the highest-priority, longest-waiting ticket of their lines, or None.

    Atomic across processes and nodes: on PostgreSQL the row is taken with FOR UPDATE SKIP
    LOCKED (a second clerk skips it and takes the next); on SQLite the transaction holds the
    write lock from its first statement (BEGIN IMMEDIATE). A clerk holds one active ticket at a
    time: a partial unique index keeps it so, even for two call nexts sent at once.
    """
    if not principal.line_ids:
        raise Invalid("queue.no_lines")
    await single_statements(session)  # on PostgreSQL the assignment is one statement
    now = utcnow()
    token, resume_hash = calls.new_resume_token()
    assign = _assign_pg if session.bind.dialect.name == "postgresql" else _assign_sqlite
    try:
        row = await assign(session, principal, now, resume_hash)
    except IntegrityError:
        await session.rollback()
        row = None
    if row is None:
        # Nothing was assigned: the queue is empty, or the clerk already serves a ticket.
        current = await _active_ticket_of(session, principal.staff_id)
        if current is not None:
            raise Conflict("queue.busy", number=current.number)
        return None
    read = _ticket_out(row)
    join = calls.joined(
        settings=settings,
        outbox=outbox,
        principal=principal,
        role="clerk",
        call_id=read.call_id or 0,
        participant_id=row["participant_id"],
        resume_token=token,
        present=[],
        ticket_id=read.id,
        case_id=read.case_id,
    )
    outbox.emit(
        TicketCalled(ticket=read, call_id=read.call_id, clerk=principal.display_name),
        Audience.ticket(read.id),
    )
    outbox.lines.add(read.line_id)
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
    await ring_again(session=session, outbox=outbox, ticket=t, actor=principal.staff_id)
    return t


async def ring_again(
    *, session: AsyncSession, outbox: Outbox, ticket: Ticket, actor: int | None
) -> None:
    """Ring the holder of a called ticket once more."""
    t = ticket
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
    read = await _read_one(session, t)
    outbox.emit(
        TicketCalled(ticket=read, call_id=t.call_id, recall=t.recalls), Audience.ticket(id_of(t))
    )


async def no_show(
    *, session: AsyncSession, outbox: Outbox, ticket: Ticket, now: dt.datetime
) -> None:
    """Nobody answered a called ticket after its last recall: it is closed as a no-show."""
    t = ticket
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
        await calls.end_call(session=session, outbox=outbox, call_id=t.call_id, reason="no_show")
    read = await _read_one(session, t)
    outbox.emit(TicketUpdated(ticket=read), Audience.ticket(id_of(t)))
    outbox.lines.add(t.line_id)


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
    join = await calls.add_participant(
        session=session, settings=settings, outbox=outbox, call=call, principal=principal, role=role
    )
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
    t.line_id, t.day, t.seq, t.number = id_of(target), day, seq, number
    t.line_name = target.name
    t.status = TicketStatus.waiting
    t.called_at = t.called_by = t.answered_at = None
    call_id, t.call_id = t.call_id, None
    session.add(t)
    case = await case_service.get(session=session, case_id=t.case_id)
    case.line_id = id_of(target)
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
        await calls.end_call(session=session, outbox=outbox, call_id=call_id, reason="transferred")
    outbox.lines.update({old_line, id_of(target)})
    return t


_TICKETS = Ticket.__table__  # type: ignore[attr-defined]
# Built once: the hot path should not rebuild (and re-key) the same statement per event.
_FINISH_CHECK = sa.select(
    _TICKETS.c.case_id, _TICKETS.c.called_by, _TICKETS.c.status, _TICKETS.c.number
).where(_TICKETS.c.id == sa.bindparam("ticket_id"))
_ACTIVE_SQL = sa.text(ACTIVE_WHERE)


async def finishable(
    *,
    session: AsyncSession,
    principal: Principal,
    ticket_id: int,
    outcome: Outcome,
    reason: str,
) -> int:
    """Raise why the clerk may not close this ticket with this outcome; else its case id."""
    t = (await session.exec(_FINISH_CHECK, params={"ticket_id": ticket_id})).first()
    if t is None:
        raise NotFound(f"号码 {ticket_id}", f"Ticket {ticket_id}")
    if t.called_by != principal.staff_id and not principal.is_admin:
        raise Forbidden("ticket.not_yours")
    if t.status not in ACTIVE_TICKET:
        raise _state_error(t, "办结", "finish")
    if not finish_outcome_ok(outcome, reason):
        if outcome is Outcome.returned:
            raise Invalid("ticket.reason_required")
        raise Invalid("validation", details=[{"loc": ["outcome"], "msg": "use ticket:transfer"}])
    return int(t.case_id)


def finish_outcome_ok(outcome: Outcome, reason: str) -> bool:
    """Returning needs a reason; transfers go through ticket:transfer."""
    if outcome is Outcome.transferred:
        return False
    return outcome is not Outcome.returned or bool(reason.strip())


# PostgreSQL: the ticket done, its case closed and the timeline event, in one statement. It
# writes only a ticket that is still active and the clerk's (or any, for an admin): the
# conditions are checked by the same statement that writes.
_CLOSE_PG = (
    """
WITH t AS (
    UPDATE ticket SET status = 'done', outcome = $1, finished_at = $2
    WHERE id = $3 AND status IN ('called', 'serving') AND (called_by = $4 OR $5)
    RETURNING ticket.*
), sc AS (
    UPDATE service_case
    SET status = $6, updated_at = $2, closed_at = $2,
        note = CASE WHEN $7 = '' THEN service_case.note ELSE $7 END
    FROM t WHERE service_case.id = t.case_id
), ev AS (
    INSERT INTO case_event (case_id, at, kind, actor_id, data)
    SELECT t.case_id, $2, $8, $4, $9::json FROM t
)
SELECT """
    + _READ_COLUMNS
    + """, r.name AS resident_name, r.id_masked AS resident_id_masked
FROM t LEFT JOIN resident r ON r.id = t.resident_id
"""
)


async def close(
    *,
    session: AsyncSession,
    outbox: Outbox,
    principal: Principal,
    ticket_id: int,
    outcome: Outcome,
    reason: str,
    case_status: CaseStatus,
    note: str = "",
) -> TicketRead:
    """Mark the clerk's active ticket done and close its case with it; its holder and its call
    are told. Refused as finishable() explains when the ticket is not (or no longer) closable.

    The case leaves service (previous status in_service) in the same statement as its ticket:
    this is the queue's hot path, as call next is.
    """
    now = utcnow()
    data = {"from": CaseStatus.in_service, "outcome": outcome, "reason": reason, "note": note}
    row: Any
    if session.bind.dialect.name == "postgresql":
        args = (
            str(outcome),
            now,
            ticket_id,
            principal.staff_id,
            principal.is_admin,
            str(case_status),
            note[:1000],
            f"status.{case_status}",
            json.dumps(data, ensure_ascii=False),
        )
        row = await driver_fetchrow(session, _CLOSE_PG, *args)
    else:
        mine = sa.true() if principal.is_admin else _TICKETS.c.called_by == principal.staff_id
        done = (
            await session.exec(
                sa.update(_TICKETS)
                .where(_TICKETS.c.id == ticket_id, _ACTIVE_SQL, mine)
                .values(status=TicketStatus.done, outcome=outcome, finished_at=now)
                .returning(*_TICKETS.columns)
            )
        ).first()
        row = None
        if done is not None:
            await case_service.update_status(
                session,
                done.case_id,
                case_status,
                previous=CaseStatus.in_service,
                actor_id=principal.staff_id,
                data={k: v for k, v in data.items() if k != "from"},
                note=note or None,
                at=now,
            )
            row = {**done._mapping, **await _resident_shown(session, done.resident_id)}
    if row is None:
        await finishable(
            session=session,
            principal=principal,
            ticket_id=ticket_id,
            outcome=outcome,
            reason=reason,
        )
        raise Conflict("ticket.state", number="", status="", action="办结", action_en="finish")
    read = _ticket_out(row)
    outbox.emit(TicketUpdated(ticket=read), Audience.ticket(read.id))
    if read.call_id:
        outbox.emit(
            CaseFinished(
                call_id=read.call_id, case_id=read.case_id, outcome=outcome, reason=reason
            ),
            Audience.call(read.call_id),
        )
    outbox.lines.add(read.line_id)
    return read
