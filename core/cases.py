"""Cases (办件): a status plus a timeline of events."""

from __future__ import annotations

import datetime as dt
import secrets
from typing import Any

from sqlalchemy import or_, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core import catalog, sites
from core.access import Principal, require_case, require_resident, require_site
from core.db import utcnow
from core.errors import Conflict, Invalid, NotFound
from core.models import (
    BundleItem,
    Case,
    CaseCreate,
    CaseEvent,
    CaseEventRead,
    CaseRating,
    CaseRead,
    CaseStatus,
    RatingIn,
    RatingRead,
    Resident,
    ServiceItem,
    Site,
)

CLOSED = frozenset(
    {CaseStatus.completed, CaseStatus.accepted, CaseStatus.returned, CaseStatus.cancelled}
)


def add_event(
    session: AsyncSession,
    case: Case,
    kind: str,
    *,
    actor_id: int | None,
    data: dict[str, Any] | None = None,
    at: dt.datetime | None = None,
) -> CaseEvent:
    """Append to the case timeline (the caller commits with the change)."""
    assert case.id is not None
    ev = CaseEvent(
        case_id=case.id, kind=kind, actor_id=actor_id, data=data or {}, at=at or utcnow()
    )
    session.add(ev)
    return ev


async def update_status(
    session: AsyncSession,
    case_id: int,
    status: CaseStatus,
    *,
    previous: str,
    actor_id: int | None,
    data: dict[str, Any] | None = None,
    note: str | None = None,
    at: dt.datetime | None = None,
) -> None:
    """set_status without loading the case: one UPDATE (the queue's hot path uses it)."""
    now = at or utcnow()
    values: dict[str, Any] = {"status": status, "updated_at": now}
    if status in CLOSED:
        values["closed_at"] = now
    if note:
        values["note"] = note[:1000]
    await session.exec(update(Case).where(col(Case.id) == case_id).values(**values))  # type: ignore[call-overload]
    session.add(
        CaseEvent(
            case_id=case_id,
            kind=f"status.{status}",
            actor_id=actor_id,
            at=now,
            data={"from": previous, **(data or {})},
        )
    )


def set_status(
    session: AsyncSession,
    case: Case,
    status: CaseStatus,
    *,
    actor_id: int | None,
    data: dict[str, Any] | None = None,
) -> None:
    now = utcnow()
    previous = case.status
    case.status = status
    case.updated_at = now
    if status in CLOSED:
        case.closed_at = now
    session.add(case)
    add_event(
        session,
        case,
        f"status.{status}",
        actor_id=actor_id,
        at=now,
        data={"from": previous, **(data or {})},
    )


async def create(*, session: AsyncSession, principal: Principal, case_in: CaseCreate) -> Case:
    """Open a case for an item at a site, routed to the window line that serves it."""
    site = await sites.get(session=session, site_id=case_in.site_id)
    await require_site(session, principal, case_in.site_id)
    item = await catalog.get_item(session=session, code=case_in.item_code)
    bundle_id = None
    if case_in.bundle_code:
        bundle = await catalog.get_bundle(session=session, code=case_in.bundle_code)
        member = await session.get(BundleItem, (bundle.id, item.id))
        if member is None:
            raise Invalid("item.not_in_bundle", item=item.code)
        bundle_id = bundle.id
    if case_in.resident_id is not None:
        resident = await session.get(Resident, case_in.resident_id)
        if resident is None:
            raise NotFound(f"居民 {case_in.resident_id}", f"Resident {case_in.resident_id}")
        await require_resident(session, principal, resident)
    line = await sites.route_line(session=session, item=item, site=site)
    now = utcnow()
    case = Case(
        number=f"pending-{secrets.token_hex(8)}",
        item_id=item.id or 0,
        bundle_id=bundle_id,
        resident_id=case_in.resident_id,
        site_id=site.id or 0,
        line_id=line.id if line else None,
        status=CaseStatus.open,
        created_by=principal.staff_fk,
        created_at=now,
        updated_at=now,
        note=case_in.note,
    )
    session.add(case)
    await session.flush()
    # Readable, sortable and unique: the day plus the row id.
    case.number = f"{now:%Y%m%d}{case.id:06d}"
    add_event(
        session,
        case,
        "created",
        actor_id=principal.staff_fk,
        at=now,
        data={"item": item.code, "site": site.code, "line": line.code if line else None},
    )
    return case


async def get(*, session: AsyncSession, case_id: int) -> Case:
    case = await session.get(Case, case_id)
    if case is None:
        raise NotFound(f"办件 {case_id}", f"Case {case_id}")
    return case


async def read(*, session: AsyncSession, case: Case, timeline: bool = True) -> CaseRead:
    assert case.id is not None
    item = await session.get(ServiceItem, case.item_id)
    resident = await session.get(Resident, case.resident_id) if case.resident_id else None
    events: list[CaseEventRead] = []
    if timeline:
        rows = await session.exec(
            select(CaseEvent)
            .where(CaseEvent.case_id == case.id)
            .order_by(col(CaseEvent.at), col(CaseEvent.id))
        )
        events = [
            CaseEventRead(id=e.id or 0, at=e.at, kind=e.kind, actor_id=e.actor_id, data=e.data)
            for e in rows.all()
        ]
    return CaseRead(
        id=case.id,
        number=case.number,
        item_code=item.code if item else "",
        item_name=item.name if item else "",
        bundle_id=case.bundle_id,
        resident_id=case.resident_id,
        resident_name=resident.name if resident else None,
        resident_id_masked=resident.id_masked if resident else None,
        site_id=case.site_id,
        line_id=case.line_id,
        status=CaseStatus(case.status),
        created_at=case.created_at,
        updated_at=case.updated_at,
        closed_at=case.closed_at,
        note=case.note,
        rating=_rating_read(await session.get(CaseRating, case.id)) if timeline else None,
        timeline=events,
    )


def _rating_read(r: CaseRating | None) -> RatingRead | None:
    if r is None:
        return None
    return RatingRead(
        case_id=r.case_id,
        score=r.score,
        comment=r.comment,
        rated_at=r.rated_at,
        complaint=r.complaint,
    )


RATEABLE = frozenset({CaseStatus.completed, CaseStatus.accepted, CaseStatus.returned})


async def rate(
    *, session: AsyncSession, principal: Principal, case_id: int, rating_in: RatingIn
) -> RatingRead:
    """The resident's 好差评, once per finished case (on the worker's tablet or their phone)."""
    case = await get(session=session, case_id=case_id)
    await require_case(session, principal, case)
    if case.status not in RATEABLE:
        raise Conflict("case.not_finished")
    if await session.get(CaseRating, case_id) is not None:
        raise Conflict("case.rated")
    now = utcnow()
    row = CaseRating(
        case_id=case_id,
        score=rating_in.score,
        comment=rating_in.comment,
        complaint=rating_in.complaint,
        rated_at=now,
        recorded_by=principal.staff_fk,
        resident_id=case.resident_id,
        line_id=case.line_id,
    )
    session.add(row)
    add_event(
        session,
        case,
        "rating",
        actor_id=principal.staff_fk,
        at=now,
        data={
            "score": rating_in.score,
            "comment": bool(rating_in.comment),
            "complaint": rating_in.complaint,
        },
    )
    rated = _rating_read(row)
    assert rated is not None
    return rated


async def scope_site_ids(session: AsyncSession, principal: Principal) -> set[int]:
    """The principal's bound sites and everything below them (district > town > community)."""
    scope = set(principal.site_ids)
    frontier = set(scope)
    for _ in range(3):
        if not frontier:
            break
        rows = await session.exec(select(Site.id).where(col(Site.parent_id).in_(frontier)))
        frontier = {r for r in rows.all() if r is not None} - scope
        scope |= frontier
    return scope


async def list_cases(
    *,
    session: AsyncSession,
    principal: Principal,
    status: CaseStatus | None = None,
    site_id: int | None = None,
    limit: int = 50,
    offset: int = 0,
) -> list[Case]:
    q = select(Case).order_by(col(Case.id).desc()).limit(limit).offset(offset)
    if status is not None:
        q = q.where(Case.status == status)
    if site_id is not None:
        q = q.where(Case.site_id == site_id)
    if principal.is_resident:
        q = q.where(Case.resident_id == principal.resident_id)
    elif not principal.is_admin:
        scope = await scope_site_ids(session, principal)
        q = q.where(
            or_(
                col(Case.site_id).in_(scope),
                col(Case.line_id).in_(principal.line_ids),
                Case.created_by == principal.staff_id,
            )
        )
    return list((await session.exec(q)).all())
