"""Retention and clean-up of the object store: expired documents, abandoned uploads, orphans.

The sweep is a background job, so each of its batches is its own unit of work. Other domains
that keep objects in the same store (recordings) take part through two hooks handed in by the
composition root: their live keys, which are never orphans, and their own expiry.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core import audit, cases
from core.db import Database, utcnow
from core.models import Case, ServiceItem
from core.settings import Settings
from uploads.models import OPEN_SLOT, Material, MaterialStatus, SlotState, UploadSlot
from uploads.storage import ObjectStore, is_valid_key

log = logging.getLogger("cloudwindow.materials")

EXPIRED_BATCH = 200

# Keys another domain still refers to, read in the sweep's session.
LiveKeys = Callable[[AsyncSession], Awaitable[Iterable[str]]]
# Another domain's expiry at `now`: how many objects it deleted, and what went wrong.
Expiry = Callable[[dt.datetime], Awaitable[tuple[int, list[str]]]]


@dataclass
class SweepReport:
    expired: int = 0
    abandoned: int = 0
    orphans: int = 0
    errors: list[str] = field(default_factory=list)


class Sweeps:
    """The retention rules and the periodic sweep of one app's object store."""

    def __init__(
        self,
        settings: Settings,
        store: ObjectStore,
        db: Database,
        *,
        live_keys: Sequence[LiveKeys] = (),
        expiries: Sequence[Expiry] = (),
    ) -> None:
        self.settings = settings
        self.store = store
        self.db = db
        self.live_keys = list(live_keys)
        self.expiries = list(expiries)

    async def apply_retention_rules(self) -> bool:
        """Mirror the items' retention periods as bucket lifecycle rules (S3), best effort."""
        try:
            async with self.db.session() as session:
                days = list(
                    (await session.exec(select(ServiceItem.retention_days).distinct())).all()
                )
            return await self.store.set_retention(days)
        except Exception as e:  # the database may not be up yet; the sweep still runs later
            log.warning("retention rules not applied: %s", e)
            return False

    async def sweep(self, now: dt.datetime | None = None) -> SweepReport:
        """Delete expired documents, abandoned uploads' bytes, and objects nobody refers to."""
        now = now or utcnow()
        report = SweepReport()
        await self._expired(now, report)
        for expire in self.expiries:
            count, errors = await expire(now)
            report.expired += count
            report.errors += errors
        await self._slots(now, report)
        await self._orphans(now, report)
        return report

    async def _expired(self, now: dt.datetime, report: SweepReport) -> None:
        """Expired documents lose their bytes; the row stays as `deleted`, with its record."""
        while True:
            async with self.db.session() as session:
                batch = list(
                    (
                        await session.exec(
                            select(Material)
                            .where(
                                col(Material.expires_at) < now,
                                Material.status != MaterialStatus.deleted,
                            )
                            .order_by(col(Material.id))
                            .limit(EXPIRED_BATCH)
                        )
                    ).all()
                )
                if not batch:
                    return
                for m in batch:
                    try:
                        await self.store.delete(m.key)
                        if m.thumb_key:
                            await self.store.delete(m.thumb_key)
                    except Exception as e:  # the next sweep tries again
                        report.errors.append(f"material {m.id}: {e}")
                        return
                    m.status = MaterialStatus.deleted
                    m.deleted_at = now
                    session.add(m)
                    case = await session.get(Case, m.case_id)
                    if case is not None:
                        cases.add_event(
                            session,
                            case,
                            "material.deleted",
                            actor_id=None,
                            at=now,
                            data={"material_id": m.id, "name": m.name, "reason": "retention"},
                        )
                    audit.record(
                        session,
                        actor=None,
                        action="material.delete",
                        target_type="material",
                        target_id=m.id or 0,
                        detail={"case": m.case_id, "reason": "retention", "sha256": m.sha256},
                    )
                    report.expired += 1
                await session.commit()

    async def _slots(self, now: dt.datetime, report: SweepReport) -> None:
        """Slots not confirmed in time: their bytes go, multipart uploads are aborted."""
        async with self.db.session() as session:
            stale = list(
                (
                    await session.exec(
                        select(UploadSlot).where(
                            col(UploadSlot.state).in_([s.value for s in OPEN_SLOT]),
                            col(UploadSlot.expires_at) < now,
                        )
                    )
                ).all()
            )
            for slot in stale:
                try:
                    if slot.multipart_id:
                        await self.store.abort_multipart(slot.key, slot.multipart_id)
                    await self.store.delete(slot.key)
                except Exception as e:
                    report.errors.append(f"slot {slot.id}: {e}")
                    continue
                slot.state = SlotState.abandoned
                session.add(slot)
                report.abandoned += 1
            await session.commit()

    async def _known_keys(self, session: AsyncSession) -> set[str]:
        known: set[str] = set()
        rows = await session.exec(
            select(Material.key, Material.thumb_key).where(
                Material.status != MaterialStatus.deleted
            )
        )
        for key, thumb in rows.all():
            known.add(key)
            if thumb:
                known.add(thumb)
        open_slots = await session.exec(
            select(UploadSlot.key).where(col(UploadSlot.state).in_([s.value for s in OPEN_SLOT]))
        )
        known.update(open_slots.all())
        for live in self.live_keys:
            known.update(await live(session))
        return known

    async def _orphans(self, now: dt.datetime, report: SweepReport) -> None:
        """Objects nobody refers to, once older than the grace; never keys we did not write."""
        cutoff = now - dt.timedelta(seconds=self.settings.orphan_grace_seconds)
        objects = await self.store.list_objects()
        async with self.db.session() as session:
            known = await self._known_keys(session)
        for obj in objects:
            if obj.key in known or obj.modified > cutoff:
                continue
            if not is_valid_key(obj.key):
                continue  # not ours: never delete what CloudWindow did not write
            try:
                await self.store.delete(obj.key)
                report.orphans += 1
            except Exception as e:
                report.errors.append(f"orphan {obj.key}: {e}")
        stale_temp = getattr(self.store, "stale_temp", None)
        if stale_temp is not None:
            await stale_temp(cutoff)
