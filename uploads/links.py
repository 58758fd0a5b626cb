"""Short-lived links to stored objects, each one written to the audit log."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from sqlmodel.ext.asyncio.session import AsyncSession

from core import audit
from core.access import CaseUse, Principal, require_case
from core.db import utcnow
from core.errors import NotFound
from core.models import Case
from core.settings import Settings
from uploads.common import material_nf, storage
from uploads.models import LinkRead, Material, MaterialStatus
from uploads.storage import ObjectStore


class Links:
    """Viewing links of one app's object store."""

    def __init__(self, settings: Settings, store: ObjectStore) -> None:
        self.settings = settings
        self.store = store

    async def issue(
        self,
        *,
        session: AsyncSession,
        key: str,
        content_type: str,
        filename: str,
        action: str,
        target_type: str,
        target_id: int,
        detail: dict[str, Any],
        audit_kw: dict[str, Any],
    ) -> LinkRead:
        """A link to `key` for `download_url_seconds`, and the audit entry of this view."""
        seconds = self.settings.download_url_seconds
        url = await storage(
            self.store.download_url(
                key, expires=seconds, content_type=content_type, filename=filename
            )
        )
        audit.record(
            session,
            action=action,
            target_type=target_type,
            target_id=target_id,
            detail=detail,
            **audit_kw,
        )
        return LinkRead(url=url, expires_at=utcnow() + dt.timedelta(seconds=seconds))

    async def material(
        self,
        *,
        session: AsyncSession,
        me: Principal,
        material_id: int,
        variant: Literal["original", "thumbnail"],
        audit_kw: dict[str, Any],
    ) -> LinkRead:
        """A link to a document or its thumbnail, for whoever may view the case's materials."""
        m = await session.get(Material, material_id)
        case = await session.get(Case, m.case_id) if m else None
        if m is None or case is None or m.status == MaterialStatus.deleted:
            raise material_nf(material_id)
        await require_case(
            session, me, case, CaseUse.view_material, not_found=material_nf(material_id)
        )
        key = m.thumb_key if variant == "thumbnail" else m.key
        if not key:
            raise NotFound(f"材料 {material_id} 的缩略图", f"Thumbnail of material {material_id}")
        return await self.issue(
            session=session,
            key=key,
            content_type="image/jpeg" if variant == "thumbnail" else m.content_type,
            filename=m.filename or m.name,
            action="material.view",
            target_type="material",
            target_id=material_id,
            detail={"case": case.id, "variant": variant},
            audit_kw=audit_kw,
        )
