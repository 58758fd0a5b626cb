"""Whether a call is recorded: required by its item or its site, allowed, or stopped by a clerk."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy import update
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from core.access import Principal, site_ancestry_cte
from core.db import utcnow
from core.errors import AppError, Conflict, Forbidden
from core.models import Call, CallParticipant, CallStatus, Case, ServiceItem, Site
from core.settings import Settings
from media.models import RecordingPolicy

DEFAULT_RETENTION_DAYS = 3650  # a call without a case keeps its recording this long


@dataclass(frozen=True)
class Admission:
    """A participant the recorder may record, and what its rows need to know."""

    call_id: int
    pid: int
    case_id: int | None
    role: str
    staff_id: int | None
    resident_id: int | None
    retention_days: int


def _call_rules() -> Any:
    """Whether the call was stopped, and whether its item or a site above its case requires
    recording: one read."""
    case_site = (
        sa.select(Case.site_id)
        .join(Call, col(Call.case_id) == col(Case.id))
        .where(col(Call.id) == sa.bindparam("call_id"))
        .scalar_subquery()
    )
    up = site_ancestry_cte(case_site)
    site_requires = sa.exists(
        sa.select(Site.id).join(up, col(Site.id) == up.c.id).where(col(Site.recording_required))
    )
    return (
        sa.select(Call.recording_stopped_at, ServiceItem.recording_required, site_requires)
        .select_from(Call)
        .outerjoin(Case, col(Case.id) == col(Call.case_id))
        .outerjoin(ServiceItem, col(ServiceItem.id) == col(Case.item_id))
        .where(col(Call.id) == sa.bindparam("call_id"))
    )


_CALL_RULES = _call_rules()  # built once: it is read on every call join


@dataclass(frozen=True)
class Policy:
    """The recording rules of one node."""

    settings: Settings

    async def for_call(self, session: AsyncSession, call_id: int) -> RecordingPolicy:
        """What a joining participant is told."""
        row = (await session.exec(_CALL_RULES, params={"call_id": call_id})).first()
        stopped = row is not None and row[0] is not None
        required = row is not None and (bool(row[1]) or bool(row[2]))
        return RecordingPolicy(
            enabled=self.settings.recording_enabled and not stopped,
            required=required,
            stopped=stopped,
        )

    async def admit(self, session: AsyncSession, call_id: int, pid: int) -> Admission:
        """Refuse to record a participant of an ended or stopped call, or a stranger to it."""
        if not self.settings.recording_enabled:
            raise AppError("recording.disabled")
        call = await session.get(Call, call_id)
        if call is None or call.status == CallStatus.ended:
            raise Conflict("call.ended")
        if call.recording_stopped_at is not None:
            raise AppError("recording.stopped")
        part = await session.get(CallParticipant, pid)
        if part is None or part.call_id != call_id:
            raise Forbidden("call.not_participant")
        case = await session.get(Case, call.case_id) if call.case_id else None
        item = await session.get(ServiceItem, case.item_id) if case else None
        return Admission(
            call_id=call_id,
            pid=pid,
            case_id=call.case_id,
            role=part.role,
            staff_id=part.staff_id,
            resident_id=part.resident_id,
            retention_days=item.retention_days if item else DEFAULT_RETENTION_DAYS,
        )

    async def stop_call(self, session: AsyncSession, me: Principal, call_id: int) -> None:
        """A clerk may stop recording only where it is not required; the stop stays on the call."""
        if (await self.for_call(session, call_id)).required:
            raise Forbidden("recording.required")
        # Remembered on the call: a rejoin or a late joiner is not recorded either.
        await session.exec(
            update(Call)  # type: ignore[call-overload]
            .where(col(Call.id) == call_id, col(Call.recording_stopped_at).is_(None))
            .values(recording_stopped_at=utcnow(), recording_stopped_by=me.staff_fk)
        )
