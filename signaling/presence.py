"""Clerks' and experts' availability, one row per (staff, node) kept fresh while connected."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import bindparam, delete, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.db import utcnow
from core.models import StaffLine
from signaling.models import Presence, PresenceStatus

_presence = Presence.__table__  # type: ignore[attr-defined]


# The same person on another node (a second screen) shows the same status.
_ELSEWHERE = (
    update(_presence)
    .where(_presence.c.staff_id == bindparam("id"), _presence.c.node_id != bindparam("node"))
    .values(status=bindparam("status"))
)


async def _set(
    conn: AsyncConnection, staff_ids: list[int], node_id: str, status: str, now: dt.datetime
) -> None:
    """Each staff member's row of this node upserted, and their rows elsewhere updated."""
    upsert = (postgresql if conn.dialect.name == "postgresql" else sqlite).insert(_presence)
    upsert = upsert.on_conflict_do_update(
        index_elements=[_presence.c.staff_id, _presence.c.node_id],
        set_={"status": upsert.excluded.status, "updated_at": upsert.excluded.updated_at},
    )
    rows = [
        {"staff_id": i, "node_id": node_id, "status": status, "updated_at": now} for i in staff_ids
    ]
    await conn.execute(upsert, rows)
    await conn.execute(
        _ELSEWHERE, [{"id": i, "node": node_id, "status": status} for i in staff_ids]
    )


async def set_presence(
    *, session: AsyncSession, staff_id: int, node_id: str, status: PresenceStatus
) -> None:
    """Set a staff member's status on this node, and on the others they are connected to."""
    await _set(await session.connection(), [staff_id], node_id, str(status), utcnow())


async def connected(
    *, conn: AsyncConnection, staff_ids: list[int], node_id: str, now: dt.datetime
) -> None:
    """Sockets of these staff members connected here: available on this node and their others.

    What set_presence does for one, for a batch of connects, on a Core connection.
    """
    if staff_ids:
        ids = sorted(set(staff_ids))  # one lock order for every node's batches
        await _set(conn, ids, node_id, PresenceStatus.available.value, now)


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
