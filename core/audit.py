"""The audit log: every view of personal data and every change of note."""

from __future__ import annotations

from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.access import Principal
from core.models import AuditEntry


def record(
    session: AsyncSession,
    *,
    actor: Principal | None,
    action: str,
    target_type: str = "",
    target_id: str | int = "",
    detail: dict[str, Any] | None = None,
    request_id: str = "",
    ip: str = "",
) -> AuditEntry:
    """Add an entry to the session; it is committed with the change it records."""
    detail = dict(detail or {})
    if actor is not None and actor.is_resident:
        # A resident on their own device is not staff: name them in the detail instead.
        detail.setdefault("resident_id", actor.resident_id)
    entry = AuditEntry(
        actor_id=actor.staff_fk if actor else None,
        actor_role=str(actor.role) if actor else "",
        action=action,
        target_type=target_type,
        target_id=str(target_id),
        detail=detail,
        request_id=request_id,
        ip=ip,
    )
    session.add(entry)
    return entry


async def list_entries(
    *,
    session: AsyncSession,
    action: str | None = None,
    target_type: str | None = None,
    target_id: str | None = None,
    actor_id: int | None = None,
    limit: int = 100,
    before_id: int | None = None,
) -> list[AuditEntry]:
    q = select(AuditEntry).order_by(col(AuditEntry.id).desc()).limit(limit)
    if action:
        q = q.where(AuditEntry.action == action)
    if target_type:
        q = q.where(AuditEntry.target_type == target_type)
    if target_id:
        q = q.where(AuditEntry.target_id == target_id)
    if actor_id is not None:
        q = q.where(AuditEntry.actor_id == actor_id)
    if before_id is not None:
        q = q.where(col(AuditEntry.id) < before_id)
    return list((await session.exec(q)).all())
