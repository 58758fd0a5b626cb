"""Periodic work: unanswered tickets are rung again or closed, dropped participants leave."""

from __future__ import annotations

import datetime as dt

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.db import utcnow
from core.events import Audience
from core.settings import Settings
from signaling import calls, experts, queue
from signaling.events import ParticipantLeft
from signaling.models import CallParticipant, Ticket, TicketStatus, id_of
from signaling.outbox import Outbox


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
            await queue.ring_again(session=session, outbox=outbox, ticket=t, actor=None)
        else:
            await queue.no_show(session=session, outbox=outbox, ticket=t, now=now)
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
    ended = set()
    for row in rows:
        row.left_at = now
        session.add(row)
        outbox.emit(
            ParticipantLeft(call_id=row.call_id, participant_id=id_of(row), reconnecting=False),
            Audience.call(row.call_id),
        )
        outbox.left.append((row.call_id, id_of(row)))
        ended.add(row.call_id)
    for call_id in ended:
        await calls.end_if_empty(session=session, outbox=outbox, call_id=call_id)
    return len(rows) + await experts.expire_invites(session=session, now=now)
