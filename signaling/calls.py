"""Calls and their participants: joining, rejoining, leaving, ending, and the call log."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from typing import Any

from sqlalchemy import func, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core import cases as case_service
from core.access import Principal
from core.db import utcnow
from core.errors import Conflict, Forbidden
from core.events import Audience
from core.models import Case, Resident, Staff
from core.settings import Settings
from signaling import turn
from signaling.events import CallEnded, ParticipantJoined, ParticipantLeft
from signaling.models import (
    Call,
    CallJoin,
    CallParticipant,
    CallStatus,
    ExpertInvite,
    InviteStatus,
    ParticipantRead,
    id_of,
)
from signaling.outbox import Outbox


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def ice_servers(
    settings: Settings, user: str, now: dt.datetime | None = None
) -> list[dict[str, Any]]:
    """STUN plus TURN with coturn REST credentials (username "<expiry>:<user>", HMAC-SHA1)."""
    return turn.ice_servers(settings, user, now or utcnow())


def ice_user(principal: Principal) -> str:
    return f"r{principal.resident_id}" if principal.is_resident else str(principal.staff_id)


async def _display_names(session: AsyncSession, staff_ids: set[int]) -> dict[int, str]:
    if not staff_ids:
        return {}
    rows = await session.exec(
        select(Staff.id, Staff.display_name).where(col(Staff.id).in_(staff_ids))
    )
    return {i: n for i, n in rows.all() if i is not None}


async def participants(*, session: AsyncSession, call_id: int) -> list[ParticipantRead]:
    """Who is in the call now (not left), in the order they joined."""
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
            id=id_of(p),
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


async def add_participant(
    *,
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
        present = await participants(session=session, call_id=id_of(call))
    me_key = (principal.staff_fk, principal.resident_id)
    if any((p.staff_id, p.resident_id) == me_key for p in present):
        raise Conflict(what="通话参与者", what_en="Participant")
    if len(present) >= settings.call_max_participants:
        raise Conflict("call.full", max=settings.call_max_participants)
    token, resume_hash = new_resume_token()
    row = CallParticipant(
        call_id=id_of(call),
        staff_id=principal.staff_fk,
        resident_id=principal.resident_id,
        role=role,
        resume_hash=resume_hash,
    )
    session.add(row)
    await session.flush()
    return joined(
        settings=settings,
        outbox=outbox,
        principal=principal,
        role=role,
        call_id=id_of(call),
        participant_id=id_of(row),
        resume_token=token,
        present=present,
        ticket_id=call.ticket_id,
        case_id=call.case_id,
    )


def new_resume_token() -> tuple[str, str]:
    """A participant's resume token and the hash the database keeps of it."""
    token = secrets.token_urlsafe(24)
    return token, _hash(token)


def joined(
    *,
    settings: Settings,
    outbox: Outbox,
    principal: Principal,
    role: str,
    call_id: int,
    participant_id: int,
    resume_token: str,
    present: list[ParticipantRead],
    ticket_id: int | None,
    case_id: int | None,
) -> CallJoin:
    """A participant row was written: tell the call, and what the joiner gets back."""
    me = ParticipantRead(
        id=participant_id,
        staff_id=principal.staff_fk,
        resident_id=principal.resident_id,
        role=role,
        display_name=principal.display_name,
        connected=True,
    )
    outbox.emit(ParticipantJoined(call_id=call_id, participant=me), Audience.call(call_id))
    outbox.joined.append((call_id, participant_id, principal.staff_id))
    return CallJoin(
        call_id=call_id,
        participant_id=participant_id,
        resume_token=resume_token,
        participants=[*present, me],
        ice_servers=ice_servers(settings, ice_user(principal)),
        ticket_id=ticket_id,
        case_id=case_id,
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
        id=id_of(row),
        staff_id=principal.staff_fk,
        resident_id=principal.resident_id,
        role=row.role,
        display_name=principal.display_name,
        connected=True,
    )
    outbox.emit(
        ParticipantJoined(call_id=call_id, participant=me, rejoined=True), Audience.call(call_id)
    )
    outbox.joined.append((call_id, id_of(row), principal.staff_id))
    present = await participants(session=session, call_id=call_id)
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
        participant_id=id_of(row),
        resume_token=resume_token,
        generation=row.generation,
        participants=present,
        ice_servers=ice_servers(settings, ice_user(principal)),
        ticket_id=call.ticket_id,
        case_id=call.case_id,
    )


async def participant(*, session: AsyncSession, call_id: int, pid: int) -> CallParticipant:
    """The participant row, if it is in this call and has not left; else call.not_participant."""
    row = await session.get(CallParticipant, pid)
    if row is None or row.call_id != call_id or row.left_at is not None:
        raise Forbidden("call.not_participant")
    return row


async def leave(*, session: AsyncSession, outbox: Outbox, call_id: int, pid: int) -> None:
    """A participant leaves for good; the call ends when nobody is left."""
    row = await participant(session=session, call_id=call_id, pid=pid)
    row.left_at = utcnow()
    session.add(row)
    outbox.emit(
        ParticipantLeft(call_id=call_id, participant_id=pid, reconnecting=False),
        Audience.call(call_id),
    )
    outbox.left.append((call_id, pid))
    await end_if_empty(session=session, outbox=outbox, call_id=call_id)


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
        ParticipantLeft(call_id=call_id, participant_id=pid, reconnecting=True),
        Audience.call(call_id),
    )


async def end_if_empty(*, session: AsyncSession, outbox: Outbox, call_id: int) -> None:
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
    """End the call for everyone still in it; its open expert invites are cancelled."""
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
    outbox.emit(CallEnded(call_id=call_id, reason=reason), Audience.call(call_id))
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
    await participant(session=session, call_id=call_id, pid=pid)
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
    row = await participant(session=session, call_id=call_id, pid=pid)
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


async def active_calls_for(*, session: AsyncSession, principal: Principal) -> list[dict[str, Any]]:
    """The calls the principal is in and has not left: {call_id, participant_id}."""
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
