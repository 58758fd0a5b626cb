"""The materials domain of one app, composed: it builds and holds the parts, nothing more.

intake (slots, uploads, confirm, snapshots), uploads.review (stateless: the clerk's side),
reuse, links (viewing, audited) and sweeps (retention and orphans).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from core.access import Principal
from core.db import Database
from core.events import Deliver, Outbox, deliver_nowhere
from core.settings import Settings
from uploads.intake import Intake
from uploads.links import Links
from uploads.models import MaterialRead
from uploads.reuse import Reuse
from uploads.storage import ObjectStore
from uploads.sweeps import Expiry, LiveKeys, SweepReport, Sweeps


class Materials:
    """One per app: the store and the parts that use it, for the composition root."""

    def __init__(
        self,
        settings: Settings,
        store: ObjectStore,
        db: Database,
        *,
        deliver: Deliver = deliver_nowhere,
        live_keys: Sequence[LiveKeys] = (),
        expiries: Sequence[Expiry] = (),
    ) -> None:
        self.settings = settings
        self.store = store
        self.db = db
        self.deliver = deliver
        self.intake = Intake(settings, store)
        self.reuse = Reuse(store)
        self.links = Links(settings, store)
        self.sweeps = Sweeps(settings, store, db, live_keys=live_keys, expiries=expiries)

    async def add_snapshot(
        self, me: Principal, case_id: int, jpeg: bytes, *, subject: str, **audit_kw: Any
    ) -> MaterialRead:
        """A call's snapshot as a material, in a unit of work of its own (commit, then deliver)."""
        outbox = Outbox()
        async with self.db.session() as session:
            read = await self.intake.add_snapshot(
                session=session,
                outbox=outbox,
                me=me,
                case_id=case_id,
                jpeg=jpeg,
                subject=subject,
                audit_kw={"actor": me, **audit_kw},
            )
            await session.commit()
        await self.deliver(outbox.take())
        return read

    async def sweep(self, now: dt.datetime | None = None) -> SweepReport:
        return await self.sweeps.sweep(now)

    async def apply_retention_rules(self) -> bool:
        return await self.sweeps.apply_retention_rules()
