"""Recording segments in the shared object store: which keys they own, and their expiry.

The materials sweep (uploads) owns the store's clean-up; it is handed these two hooks by
the composition root, so it neither deletes a segment as an orphan nor needs to import media.
"""

from __future__ import annotations

import datetime as dt

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core import audit
from core.db import Database
from media.models import RecordingSegment
from uploads.storage import ObjectStore
from uploads.sweeps import Expiry

# Segments expired per sweep round; the next round takes the rest.
EXPIRY_BATCH = 500


async def segment_keys(session: AsyncSession) -> set[str]:
    """Keys of stored recording segments: never orphans."""
    return set((await session.exec(select(RecordingSegment.key))).all())


def segment_expiry(db: Database, store: ObjectStore) -> Expiry:
    """Delete segments past their item's retention: object and row go, the audit entry stays."""

    async def expire(now: dt.datetime) -> tuple[int, list[str]]:
        count, errors = 0, list[str]()
        async with db.session() as session:
            rows = await session.exec(
                select(RecordingSegment)
                .where(col(RecordingSegment.expires_at) < now)
                .limit(EXPIRY_BATCH)
            )
            for seg in rows.all():
                try:
                    await store.delete(seg.key)
                except Exception as e:  # the store is outside: note it, try again next round
                    errors.append(f"segment {seg.id}: {e}")
                    continue
                audit.record(
                    session,
                    actor=None,
                    action="recording.delete",
                    target_type="recording",
                    target_id=seg.recording_id,
                    detail={"segment": seg.index, "sha256": seg.sha256, "reason": "retention"},
                )
                await session.delete(seg)
                count += 1
            await session.commit()
        return count, errors

    return expire
