"""What the materials services share: the case a request is about (access through
core.access), its checklist line and retention, storage errors, and adding a material."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Awaitable
from typing import Any, TypeVar

from sqlalchemy import update
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from core import audit, cases
from core.access import CaseUse, Principal, require_case
from core.errors import AppError, Conflict, Invalid, NotFound
from core.models import Case, ServiceItem
from uploads import inspect
from uploads.checklist import Spec, specs_for
from uploads.models import Material, MaterialRead, MaterialRequest, MaterialStatus, material_read

log = logging.getLogger("cloudwindow.materials")

ALLOWED_TYPES = frozenset(inspect.EXTENSIONS) - {"video/webm", "video/mp2t"}
DEFAULT_RETENTION_DAYS = 3650
T = TypeVar("T")


class Unavailable(AppError):
    status = 503
    default_code = "storage.unavailable"


def case_nf(case_id: int) -> NotFound:
    return NotFound(f"办件 {case_id}", f"Case {case_id}")


def material_nf(material_id: int) -> NotFound:
    return NotFound(f"材料 {material_id}", f"Material {material_id}")


def slot_nf(slot_id: int) -> NotFound:
    return NotFound(f"上传 {slot_id}", f"Upload {slot_id}")


async def open_case(
    session: AsyncSession,
    me: Principal,
    case_id: int,
    use: CaseUse = CaseUse.add_material,
    *,
    not_found: AppError | None = None,
) -> Case:
    """The case, if `me` may use it so (else 404) and it is still open (else 409)."""
    case = await session.get(Case, case_id)
    if case is None:
        raise not_found or case_nf(case_id)
    await require_case(session, me, case, use, not_found=not_found)
    require_open(case)
    return case


def require_open(case: Case) -> None:
    """Materials of a closed case no longer change."""
    if case.status in cases.CLOSED:
        raise Conflict("case.closed")


async def spec_of(session: AsyncSession, case: Case, spec_id: int) -> Spec:
    """The checklist line `spec_id` of the case (422 if it is not on the checklist)."""
    for s in await specs_for(session, case):
        if s.id == spec_id:
            return s
    raise Invalid("material.spec")


async def retention_days(session: AsyncSession, case: Case) -> int:
    item = await session.get(ServiceItem, case.item_id)
    return item.retention_days if item else DEFAULT_RETENTION_DAYS


def thumb_key_of(key: str) -> str:
    return key.rsplit(".", 1)[0] + ".thumb.jpg"


async def storage(aw: Awaitable[T]) -> T:
    """Await a store call; anything but an AppError becomes 503 storage.unavailable."""
    try:
        return await aw
    except AppError:
        raise
    except Exception as e:
        log.warning("storage error: %s", e)
        raise Unavailable() from None


def new_material(me: Principal, *, now: dt.datetime, retention: int, **fields: Any) -> Material:
    """A material waiting for the clerk, stored by `me` now, kept for the item's retention."""
    return Material(
        status=MaterialStatus.pending,
        uploaded_by=me.staff_fk,
        uploaded_by_resident=me.resident_id,
        uploaded_at=now,
        expires_at=now + dt.timedelta(days=retention),
        **fields,
    )


async def record(
    session: AsyncSession, me: Principal, material: Material, audit_kw: dict[str, Any]
) -> MaterialRead:
    """Add a new material (its object is stored and checked): earlier rejected ones of the
    same spec are superseded, open requests for it fulfilled, timeline and audit written."""
    now = material.uploaded_at
    if material.spec_id is not None:
        await session.exec(
            update(Material)  # type: ignore[call-overload]
            .where(
                col(Material.case_id) == material.case_id,
                col(Material.spec_id) == material.spec_id,
                col(Material.status) == MaterialStatus.rejected,
            )
            .values(status=MaterialStatus.superseded)
        )
        await session.exec(
            update(MaterialRequest)  # type: ignore[call-overload]
            .where(
                col(MaterialRequest.case_id) == material.case_id,
                col(MaterialRequest.spec_id) == material.spec_id,
                col(MaterialRequest.fulfilled_at).is_(None),
            )
            .values(fulfilled_at=now)
        )
    session.add(material)
    await session.flush()
    case = await session.get(Case, material.case_id)
    assert case is not None and material.id is not None
    cases.add_event(
        session,
        case,
        f"material.{material.source}",
        actor_id=me.staff_fk,
        at=now,
        data={
            "material_id": material.id,
            "name": material.name,
            "content_type": material.content_type,
            "size": material.size,
            "sha256": material.sha256,
            **({"reused_from": material.reused_from} if material.reused_from else {}),
        },
    )
    audit.record(
        session,
        action=f"material.{material.source}",
        target_type="material",
        target_id=material.id,
        detail={"case": material.case_id, "sha256": material.sha256},
        **audit_kw,
    )
    return material_read(material)
