"""What a recording leaves behind: its row, its segments in object storage, its timeline notes.

Each write is one unit of work of the recorder (media/units.py): a recording opened, a segment
stored, a segment that could not be, a recording closed, a gap when no slot was free.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import Any

from core.access import Principal
from core.db import utcnow
from media.events import RecordingState
from media.models import Recording, RecordingSegment, RecordingStatus
from media.policy import Admission
from media.recorder import Segment
from media.units import Work
from uploads.storage import ObjectStore, new_key

log = logging.getLogger("cloudwindow.recording")

CONTENT_TYPES = {"webm": "video/webm", "ts": "video/mp2t"}
UPLOAD_ATTEMPTS = 3


@dataclass
class Piece:
    """One participant's recording from offer to stop: its row and which segments are stored."""

    call_id: int
    pid: int
    recording_id: int
    case_id: int | None
    retention_days: int
    attempted: set[int] = field(default_factory=set)
    uploaded: set[int] = field(default_factory=set)

    def all_stored(self, segments: list[Segment]) -> bool:
        return all(s.index in self.uploaded for s in segments)


@dataclass(frozen=True)
class Segments:
    """Recording rows and segment uploads of one node."""

    work: Work
    store: ObjectStore
    node_id: str

    async def note_busy(self, admission: Admission) -> None:
        """No recording slot was free: the gap goes into the timeline."""
        async with self.work.unit() as u:
            data = {"participant_id": admission.pid, "reason": "busy"}
            await u.note(admission.case_id, "recording.gap", data)

    async def open(self, admission: Admission) -> Piece:
        """The recording row, and `recording.started` in the timeline."""
        a = admission
        async with self.work.unit() as u:
            row = Recording(
                call_id=a.call_id,
                case_id=a.case_id,
                participant_id=a.pid,
                staff_id=a.staff_id,
                resident_id=a.resident_id,
                role=a.role,
                node_id=self.node_id,
                status=RecordingStatus.recording,
            )
            u.session.add(row)
            await u.session.flush()
            assert row.id is not None
            data = {"participant_id": a.pid, "role": a.role, "recording_id": row.id}
            await u.note(a.case_id, "recording.started", data)
        return Piece(a.call_id, a.pid, row.id, a.case_id, a.retention_days)

    async def started(self, piece: Piece) -> None:
        """Tell the call this participant is being recorded (its row is committed)."""
        event = RecordingState(call_id=piece.call_id, participant_id=piece.pid, active=True)
        await self.work.tell_call(piece.call_id, event)

    async def upload(self, piece: Piece, seg: Segment) -> None:
        """Put one finished segment into object storage and record it (retrying a little)."""
        piece.attempted.add(seg.index)
        ext = seg.path.suffix.lstrip(".")
        key = new_key(piece.retention_days, piece.case_id or 0, ext)
        for attempt in range(1, UPLOAD_ATTEMPTS + 1):
            try:
                await self.store.put_file(key, seg.path, CONTENT_TYPES[ext])
                async with self.work.unit() as u:
                    u.session.add(_segment_row(piece, seg, key, CONTENT_TYPES[ext]))
                piece.uploaded.add(seg.index)
                await asyncio.to_thread(seg.path.unlink, missing_ok=True)
                return
            except Exception as e:
                log.warning("segment %s upload attempt %d failed: %s", seg.path, attempt, e)
                await asyncio.sleep(attempt)
        # The file stays on this node's disk (never lost); the timeline says where it is.
        async with self.work.unit() as u:
            data = {"participant_id": piece.pid, "segment": seg.index, "path": str(seg.path)}
            await u.note(piece.case_id, "recording.upload_failed", data)

    async def close(
        self,
        piece: Piece,
        segments: list[Segment],
        *,
        codecs: list[str],
        error: str,
        reason: str,
        actor: Principal | None,
    ) -> None:
        """Settle the row (finished, or failed with its error), note it, tell the call."""
        duration = round(sum(s.duration for s in segments), 3)
        async with self.work.unit() as u:
            row = await u.session.get(Recording, piece.recording_id)
            if row is not None:
                row.status = RecordingStatus.failed if error else RecordingStatus.finished
                row.ended_at = utcnow()
                row.duration = duration
                row.error = error
                row.codecs = codecs
                u.session.add(row)
            data: dict[str, Any] = {
                "participant_id": piece.pid,
                "recording_id": piece.recording_id,
                "segments": len(segments),
                "duration_s": duration,
                "reason": reason,
            }
            if error:
                data["error"] = error
            kind = "recording.gap" if error else "recording.finished"
            await u.note(piece.case_id, kind, data, actor=actor)
            u.tell_call(
                piece.call_id,
                RecordingState(
                    call_id=piece.call_id, participant_id=piece.pid, active=False, reason=reason
                ),
            )


def _segment_row(piece: Piece, seg: Segment, key: str, content_type: str) -> RecordingSegment:
    return RecordingSegment(
        recording_id=piece.recording_id,
        index=seg.index,
        key=key,
        content_type=content_type,
        size=seg.size,
        sha256=seg.sha256,
        duration=seg.duration,
        frames=dict(seg.frames),
        started_at=seg.started_at,
        ended_at=seg.ended_at,
        expires_at=utcnow() + dt.timedelta(days=piece.retention_days),
    )
