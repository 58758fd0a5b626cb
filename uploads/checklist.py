"""A case's material checklist, driven by its service item's material specs.

Store-free: the queue's finish step uses `require_complete` inside its own transaction.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.errors import Invalid
from core.models import BundleItem, Case, MaterialSpec
from uploads.models import (
    LIVE_MATERIAL,
    Checklist,
    ChecklistItem,
    ItemState,
    Material,
    MaterialRequest,
    MaterialStatus,
    material_read,
)

DEFAULT_TYPES = ["image/jpeg", "image/png", "image/heic", "application/pdf"]


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
