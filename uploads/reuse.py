"""Reuse (材料少交免交): the resident's accepted documents from earlier cases, copied with
their consent."""

from __future__ import annotations

from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.access import Principal
from core.db import utcnow
from core.errors import Invalid
from core.events import Outbox
from core.models import Case
from uploads.checklist import specs_for
from uploads.common import (
    Unavailable,
    log,
    new_material,
    open_case,
    record,
    retention_days,
    spec_of,
    thumb_key_of,
)
from uploads.events import MaterialUploaded, tell_calls
from uploads.models import (
    Material,
    MaterialRead,
    MaterialSource,
    MaterialStatus,
    ReuseCandidate,
    ReuseIn,
    material_read,
)
from uploads.storage import ObjectStore, new_key

OFFERED = 50


class Reuse:
    """Offers and copies of earlier documents, within one app's object store."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store

    async def reusable(
        self, *, session: AsyncSession, me: Principal, case_id: int
    ) -> list[ReuseCandidate]:
        """The same resident's accepted, unexpired documents that fit a line of this checklist."""
        case = await open_case(session, me, case_id)
        if case.resident_id is None:
            return []
        specs = {s.name: s for s in await specs_for(session, case)}
        rows = await session.exec(
            select(Material, Case)
            .join(Case, col(Case.id) == col(Material.case_id))
            .where(
                Material.resident_id == case.resident_id,
                Material.case_id != case_id,
                Material.status == MaterialStatus.accepted,
                col(Material.expires_at) > utcnow(),
                col(Material.name).in_(list(specs)),
            )
            .order_by(col(Material.id).desc())
            .limit(OFFERED)
        )
        return [
            ReuseCandidate(
                spec_id=specs[m.name].id,
                name=m.name,
                material=material_read(m),
                from_case_number=c.number,
                from_case_at=c.created_at,
            )
            for m, c in rows.all()
        ]

    async def reuse(
        self,
        *,
        session: AsyncSession,
        outbox: Outbox,
        me: Principal,
        case_id: int,
        body: ReuseIn,
        audit_kw: dict[str, Any],
    ) -> MaterialRead:
        """Copy an earlier document to this case, with this item's retention; consent needed."""
        if not body.consent:
            raise Invalid("material.consent")
        case = await open_case(session, me, case_id)
        spec = await spec_of(session, case, body.spec_id)
        src = await session.get(Material, body.material_id)
        ok = (
            src is not None
            and case.resident_id is not None
            and src.resident_id == case.resident_id
            and src.case_id != case_id
            and src.status == MaterialStatus.accepted
            and src.expires_at > utcnow()
            and src.name == spec.name
        )
        if not ok or src is None:
            raise Invalid("material.not_reusable")
        retention = await retention_days(session, case)
        ext = src.key.rsplit(".", 1)[1]
        key = new_key(retention, case_id, ext)
        thumb = thumb_key_of(key) if src.thumb_key else ""
        try:
            await self.store.copy(src.key, key)
            if thumb:
                await self.store.copy(src.thumb_key, thumb)
        except Exception as e:
            log.warning("storage error while reusing material %s: %s", src.id, e)
            await self.store.delete(key)
            raise Unavailable() from None
        now = utcnow()
        material = new_material(
            me,
            now=now,
            retention=retention,
            case_id=case_id,
            spec_id=spec.id,
            name=spec.name,
            resident_id=case.resident_id,
            key=key,
            thumb_key=thumb,
            content_type=src.content_type,
            size=src.size,
            sha256=src.sha256,
            width=src.width,
            height=src.height,
            filename=src.filename,
            source=MaterialSource.reuse,
            reused_from=src.id,
            consent_at=now,
        )
        read = await record(session, me, material, audit_kw)
        await tell_calls(
            session,
            outbox,
            case_id,
            lambda call_id: MaterialUploaded(call_id=call_id, case_id=case_id, material=read),
        )
        return read
