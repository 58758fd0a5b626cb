"""Clerks' and experts' availability, one row per (staff, node) kept fresh while connected."""

from __future__ import annotations

from sqlalchemy import delete, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.db import utcnow
from core.models import StaffLine
from signaling.models import Presence, PresenceStatus


async def set_presence(
    *, session: AsyncSession, staff_id: int, node_id: str, status: PresenceStatus
) -> None:
    """Set a staff member's status on this node, and on the others they are connected to."""
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


async def drop_node(*, session: AsyncSession, node_id: str) -> set[int]:
    """Forget every presence row of a node that is gone; the lines whose counts changed."""
    staff = set(
        (await session.exec(select(Presence.staff_id).where(Presence.node_id == node_id))).all()
    )
    if not staff:
        return set()
    await session.exec(delete(Presence).where(col(Presence.node_id) == node_id))  # type: ignore[call-overload]
    lines = await session.exec(select(StaffLine.line_id).where(col(StaffLine.staff_id).in_(staff)))
    return set(lines.all())
