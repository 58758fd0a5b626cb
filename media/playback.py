"""Playing recordings back: a case's recordings with their segments, and audited links."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.access import CaseUse, Principal, require_case
from core.errors import NotFound
from core.models import Case
from core.settings import Settings
from media.models import (
    Recording,
    RecordingRead,
    RecordingSegment,
    RecordingStatus,
    SegmentRead,
)
from uploads.links import Links
from uploads.models import LinkRead
from uploads.storage import ObjectStore


@dataclass(frozen=True)
class Playback:
    """Reads for whoever may play a case's recordings; the caller's unit of work commits."""

    settings: Settings
    store: ObjectStore

    async def list_for_case(
        self, session: AsyncSession, me: Principal, case_id: int
    ) -> list[RecordingRead]:
        case = await session.get(Case, case_id)
        if case is None:
            raise NotFound(f"办件 {case_id}", f"Case {case_id}")
        await require_case(session, me, case, CaseUse.play)
        rows = list(
            (
                await session.exec(
                    select(Recording)
                    .where(Recording.case_id == case_id)
                    .order_by(col(Recording.id))
                )
            ).all()
        )
        ids = [r.id for r in rows]
        segs = list(
            (
                await session.exec(
                    select(RecordingSegment)
                    .where(col(RecordingSegment.recording_id).in_(ids))
                    .order_by(col(RecordingSegment.recording_id), col(RecordingSegment.index))
                )
            ).all()
        )
        by_rec: dict[int, list[SegmentRead]] = {}
        for s in segs:
            by_rec.setdefault(s.recording_id, []).append(
                SegmentRead(
                    id=s.id or 0,
                    index=s.index,
                    content_type=s.content_type,
                    size=s.size,
                    sha256=s.sha256,
                    duration=s.duration,
                    started_at=s.started_at,
                    ended_at=s.ended_at,
                )
            )
        return [
            RecordingRead(
                id=r.id or 0,
                call_id=r.call_id,
                case_id=r.case_id,
                participant_id=r.participant_id,
                role=r.role,
                status=RecordingStatus(r.status),
                codecs=r.codecs,
                started_at=r.started_at,
                ended_at=r.ended_at,
                duration=r.duration,
                error=r.error,
                segments=by_rec.get(r.id or 0, []),
            )
            for r in rows
        ]

    async def link(
        self, session: AsyncSession, me: Principal, segment_id: int, **kw: Any
    ) -> LinkRead:
        """A short-lived link to one segment; the issue is audited as `recording.view`."""
        seg = await session.get(RecordingSegment, segment_id)
        rec = await session.get(Recording, seg.recording_id) if seg else None
        case = await session.get(Case, rec.case_id) if rec and rec.case_id else None
        nf = NotFound(f"录像 {segment_id}", f"Recording segment {segment_id}")
        if seg is None or case is None:
            raise nf
        await require_case(session, me, case, CaseUse.play, not_found=nf)
        return await Links(self.settings, self.store).issue(
            session=session,
            key=seg.key,
            content_type=seg.content_type,
            filename=f"{case.number}-{seg.recording_id}-{seg.index}.{seg.key.rsplit('.', 1)[1]}",
            action="recording.view",
            target_type="recording",
            target_id=seg.recording_id,
            detail={"case": case.id, "segment": seg.index},
            audit_kw=kw,
        )
