"""The recorder's own units of work: one session, one commit, then the events it caused.

A recorder runs beside the call, not inside a request: a segment that finishes, a recording
that starts or ends, a gap when a recorder fails. Each of those is its own unit of work,
opened here so that every commit of media is one `async with work.unit()` block.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from core import cases
from core.access import Principal
from core.db import Database
from core.events import Audience, Deliver, Delivery, Event, Outbox
from core.models import Case


@dataclass
class Unit:
    """One open unit of work: its session and the events to send once it has committed."""

    session: AsyncSession
    outbox: Outbox = field(default_factory=Outbox)

    async def note(
        self,
        case_id: int | None,
        kind: str,
        data: dict[str, Any],
        actor: Principal | None = None,
    ) -> None:
        """Write to the case timeline (nothing when the call has no case)."""
        case = await self.session.get(Case, case_id) if case_id else None
        if case is not None:
            actor_id = actor.staff_fk if actor else None
            cases.add_event(self.session, case, kind, actor_id=actor_id, data=data)

    def tell_call(self, call_id: int, event: Event) -> None:
        self.outbox.emit(event, Audience.call(call_id))


@dataclass(frozen=True)
class Work:
    """Opens units of work on the database and delivers their events after the commit."""

    db: Database
    deliver: Deliver

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """A session for reads only: nothing in it is committed."""
        async with self.db.session() as session:
            yield session

    @asynccontextmanager
    async def unit(self) -> AsyncIterator[Unit]:
        """A session committed once at the end; its events are delivered after the commit."""
        async with self.db.session() as session:
            unit = Unit(session)
            yield unit
            await session.commit()
        deliveries = unit.outbox.take()
        if deliveries:
            await self.deliver(deliveries)

    async def tell_call(self, call_id: int, event: Event) -> None:
        """Send an event about a change already committed."""
        await self.deliver([Delivery(event, Audience.call(call_id))])
