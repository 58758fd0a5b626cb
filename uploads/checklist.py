"""A case's material checklist, driven by its service item's material specs.

Store-free: the queue's finish step uses `require_complete` inside its own transaction.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum

from pydantic import BaseModel
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.errors import Invalid
from core.models import BundleItem, Case, MaterialSpec
from uploads.models import LIVE_MATERIAL, Material, MaterialRequest, MaterialStatus

DEFAULT_TYPES = ["image/jpeg", "image/png", "image/heic", "application/pdf"]


class ItemState(StrEnum):
    missing = "missing"
    requested = "requested"  # the clerk asked for it
    uploaded = "uploaded"  # something arrived; the clerk has not decided on all of it
    accepted = "accepted"
    rejected = "rejected"


class MaterialRead(BaseModel):
    id: int
    case_id: int
    spec_id: int | None
    name: str
    status: MaterialStatus
    source: str
    content_type: str
    size: int
    sha256: str
    width: int | None
    height: int | None
    filename: str
    has_thumbnail: bool
    reason: str
    uploaded_at: dt.datetime
    reviewed_at: dt.datetime | None
    reviewed_by: int | None
    reused_from: int | None
    expires_at: dt.datetime


class ChecklistItem(BaseModel):
    spec_id: int
    name: str
    required: bool
    accepted_types: list[str]
    note: str
    state: ItemState
    reason: str = ""
    request_note: str = ""
    materials: list[MaterialRead] = []


class Checklist(BaseModel):
    case_id: int
    complete: bool
    missing: list[str]
    items: list[ChecklistItem]
    extras: list[MaterialRead]


def material_read(m: Material) -> MaterialRead:
    return MaterialRead(
        id=m.id or 0,
        case_id=m.case_id,
        spec_id=m.spec_id,
        name=m.name,
        status=MaterialStatus(m.status),
        source=m.source,
        content_type=m.content_type,
        size=m.size,
        sha256=m.sha256,
        width=m.width,
        height=m.height,
        filename=m.filename,
        has_thumbnail=bool(m.thumb_key),
        reason=m.reason,
        uploaded_at=m.uploaded_at,
        reviewed_at=m.reviewed_at,
        reviewed_by=m.reviewed_by,
        reused_from=m.reused_from,
        expires_at=m.expires_at,
    )


@dataclass
class Spec:
    """A checklist line: a material spec, merged by name across a bundle's items."""

    id: int
    name: str
    required: bool
    accepted_types: list[str]
    note: str


async def specs_for(session: AsyncSession, case: Case) -> list[Spec]:
    """The item's specs, or for a bundle case (一事联办) every member item's, once per name."""
    item_ids = [case.item_id]
    if case.bundle_id is not None:
        rows = await session.exec(
            select(BundleItem.item_id)
            .where(BundleItem.bundle_id == case.bundle_id)
            .order_by(col(BundleItem.position))
        )
        item_ids += [i for i in rows.all() if i != case.item_id]
    specs = list(
        (
            await session.exec(select(MaterialSpec).where(col(MaterialSpec.item_id).in_(item_ids)))
        ).all()
    )
    order = {iid: n for n, iid in enumerate(item_ids)}
    specs.sort(key=lambda s: (order[s.item_id], s.position, s.id or 0))
    seen: dict[str, Spec] = {}
    for s in specs:
        if s.name not in seen:
            seen[s.name] = Spec(s.id or 0, s.name, s.required, accepted_types(s), s.note)
        elif s.required:
            seen[s.name].required = True  # required by any member item: required
    return list(seen.values())


def accepted_types(spec: MaterialSpec | None) -> list[str]:
    return list(spec.accepted_types) if spec and spec.accepted_types else list(DEFAULT_TYPES)


def item_state(materials: list[Material], requested: bool) -> tuple[ItemState, str]:
    live = [m for m in materials if m.status in LIVE_MATERIAL]
    if not live:
        return (ItemState.requested if requested else ItemState.missing), ""
    if any(m.status == MaterialStatus.pending for m in live):
        return ItemState.uploaded, ""
    rejected = [m for m in live if m.status == MaterialStatus.rejected]
    if rejected:
        return ItemState.rejected, rejected[-1].reason
    return ItemState.accepted, ""


async def build(session: AsyncSession, case: Case) -> Checklist:
    assert case.id is not None
    specs = await specs_for(session, case)
    materials = list(
        (
            await session.exec(
                select(Material)
                .where(
                    Material.case_id == case.id,
                    col(Material.status).in_([s.value for s in LIVE_MATERIAL]),
                )
                .order_by(col(Material.id))
            )
        ).all()
    )
    requests = list(
        (
            await session.exec(
                select(MaterialRequest)
                .where(
                    MaterialRequest.case_id == case.id, col(MaterialRequest.fulfilled_at).is_(None)
                )
                .order_by(col(MaterialRequest.id))
            )
        ).all()
    )
    open_requests = {r.spec_id: r.note for r in requests}
    by_spec: dict[int, list[Material]] = {}
    extras: list[Material] = []
    spec_ids = {s.id for s in specs}
    for m in materials:
        if m.spec_id is not None and m.spec_id in spec_ids:
            by_spec.setdefault(m.spec_id, []).append(m)
        else:
            extras.append(m)
    items = []
    for s in specs:
        mats = by_spec.get(s.id, [])
        state, reason = item_state(mats, s.id in open_requests)
        items.append(
            ChecklistItem(
                spec_id=s.id,
                name=s.name,
                required=s.required,
                accepted_types=s.accepted_types,
                note=s.note,
                state=state,
                reason=reason,
                request_note=open_requests.get(s.id, ""),
                materials=[material_read(m) for m in mats],
            )
        )
    missing = [i.name for i in items if i.required and i.state is not ItemState.accepted]
    return Checklist(
        case_id=case.id,
        complete=not missing,
        missing=missing,
        items=items,
        extras=[material_read(m) for m in extras],
    )


async def require_complete(session: AsyncSession, case: Case) -> None:
    """Refuse to complete a case while a required material is missing, unreviewed or rejected."""
    checklist = await build(session, case)
    if checklist.complete:
        return
    raise Invalid(
        "case.materials_incomplete",
        names="、".join(checklist.missing),
        details=[
            {"spec_id": i.spec_id, "name": i.name, "state": i.state}
            for i in checklist.items
            if i.required and i.state is not ItemState.accepted
        ],
    )
