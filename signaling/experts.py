"""Experts invited into a call by skill: the first available one who accepts joins."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import update
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from core import cases as case_service
from core.access import Principal
from core.db import utcnow
from core.errors import Conflict, Forbidden, NotFound
from core.events import Audience
from core.models import Case, ServiceItem
from core.settings import Settings
from signaling import calls
from signaling.events import ExpertInviteClosed, ExpertInvited
from signaling.models import Call, CallJoin, CallStatus, ExpertInvite, InviteStatus
from signaling.outbox import Outbox


async def invite_expert(
    *,
    session: AsyncSession,
    settings: Settings,
    principal: Principal,
    outbox: Outbox,
    call_id: int,
    pid: int,
    skill: str,
    question: str = "",
) -> ExpertInvite:
    """Ask the experts with a skill into the call the inviter (participant pid) is in."""
    await calls.participant(session=session, call_id=call_id, pid=pid)
    call = await session.get(Call, call_id)
    if call is None or call.status == CallStatus.ended:
        raise Conflict("call.ended")
    present = await calls.participants(session=session, call_id=call_id)
    if len(present) >= settings.call_max_participants:
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
    assert invite.id is not None
    item_name = case_number = ""
    if call.case_id:
        case = await session.get(Case, call.case_id)
        item = await session.get(ServiceItem, case.item_id) if case else None
        item_name = item.name if item else ""
        if case:
            case_number = case.number
            case_service.add_event(
                session,
                case,
                "expert.invited",
                actor_id=principal.staff_id,
                data={"skill": skill, "invite": invite.id, "question": question},
            )
    outbox.emit(
        ExpertInvited(
            invite_id=invite.id,
            call_id=call_id,
            skill=skill,
            item_name=item_name,
            invited_by=principal.display_name,
            expires_at=invite.expires_at.isoformat(),
            case_number=case_number,
            question=question,
        ),
        Audience.skill(skill),
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
    join = await calls.add_participant(
        session=session,
        settings=settings,
        outbox=outbox,
        call=call,
        principal=principal,
        role="expert",
    )
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
        ExpertInviteClosed(invite_id=invite_id, accepted_by=principal.display_name),
        Audience.skill(invite.skill),
    )
    return join


async def expire_invites(*, session: AsyncSession, now: dt.datetime) -> int:
    """Open invites past their time expire; how many did."""
    expired = await session.exec(
        update(ExpertInvite)  # type: ignore[call-overload]
        .where(col(ExpertInvite.status) == InviteStatus.open, col(ExpertInvite.expires_at) <= now)
        .values(status=InviteStatus.expired)
    )
    return int(expired.rowcount or 0)
