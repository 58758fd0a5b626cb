"""The clerk's side of a checklist: accept or reject a document, or ask for a missing one."""

from __future__ import annotations

from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from core import audit, cases
from core.access import CaseUse, Principal, require_case
from core.db import utcnow
from core.errors import Conflict, Invalid
from core.events import Outbox
from core.models import Case
from uploads.checklist import build
from uploads.common import case_nf, material_nf, open_case, require_open, spec_of
from uploads.events import MaterialRequested, MaterialReviewed, tell_calls
from uploads.models import (
    LIVE_MATERIAL,
    Checklist,
    ChecklistItem,
    Material,
    MaterialRead,
    MaterialRequest,
    MaterialStatus,
    RequestIn,
    ReviewIn,
    material_read,
)


async def checklist(*, session: AsyncSession, me: Principal, case_id: int) -> Checklist:
    """The case's checklist, for whoever may read the case."""
    case = await session.get(Case, case_id)
    if case is None:
        raise case_nf(case_id)
    await require_case(session, me, case, CaseUse.read)
    return await build(session, case)


async def review(
    *,
    session: AsyncSession,
    outbox: Outbox,
    me: Principal,
    material_id: int,
    body: ReviewIn,
    audit_kw: dict[str, Any],
) -> MaterialRead:
    """Accept a document, or reject it with a reason (uploading again supersedes it)."""
    m = await session.get(Material, material_id)
    case = await session.get(Case, m.case_id) if m else None
    if m is None or case is None:
        raise material_nf(material_id)
    await require_case(session, me, case, CaseUse.review, not_found=material_nf(material_id))
    require_open(case)
    if m.status not in LIVE_MATERIAL:
        raise Conflict("material.reviewed", status=m.status)
    if body.decision == "reject" and not body.reason:
        raise Invalid("material.reason_required")
    now = utcnow()
    m.status = MaterialStatus.accepted if body.decision == "accept" else MaterialStatus.rejected
    m.reason = body.reason if body.decision == "reject" else ""
    m.reviewed_by = me.staff_id
    m.reviewed_at = now
    session.add(m)
    cases.add_event(
        session,
        case,
        f"material.{m.status}",
        actor_id=me.staff_id,
        at=now,
        data={"material_id": m.id, "name": m.name, "reason": m.reason},
    )
    audit.record(
        session,
        action=f"material.{body.decision}",
        target_type="material",
        target_id=material_id,
        detail={"case": case.id, "reason": m.reason},
        **audit_kw,
    )
    read = material_read(m)
    await tell_calls(
        session,
        outbox,
        m.case_id,
        lambda call_id: MaterialReviewed(call_id=call_id, case_id=read.case_id, material=read),
    )
    return read


async def request(
    *,
    session: AsyncSession,
    outbox: Outbox,
    me: Principal,
    case_id: int,
    spec_id: int,
    body: RequestIn,
    audit_kw: dict[str, Any],
) -> ChecklistItem:
    """Ask the service point for one material of the checklist (补正)."""
    case = await open_case(session, me, case_id)
    await require_case(session, me, case, CaseUse.review)
    spec = await spec_of(session, case, spec_id)
    now = utcnow()
    session.add(
        MaterialRequest(
            case_id=case_id,
            spec_id=spec_id,
            note=body.note,
            requested_by=me.staff_id,
            requested_at=now,
        )
    )
    cases.add_event(
        session,
        case,
        "material.requested",
        actor_id=me.staff_id,
        at=now,
        data={"spec_id": spec_id, "name": spec.name, "note": body.note},
    )
    audit.record(
        session,
        action="material.request",
        target_type="case",
        target_id=case_id,
        detail={"spec": spec_id},
        **audit_kw,
    )
    await tell_calls(
        session,
        outbox,
        case_id,
        lambda call_id: MaterialRequested(
            call_id=call_id, case_id=case_id, spec_id=spec_id, spec_name=spec.name, note=body.note
        ),
    )
    await session.flush()
    items = (await build(session, case)).items
    return next(i for i in items if i.spec_id == spec_id)
