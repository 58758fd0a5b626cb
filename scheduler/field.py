"""The visit day of a field staff member: the day's route, check-in at the door, and the
number taken at the home, where the visitor is a mobile service point (docs/planning.md,
"The visit day").

The route shows each resident's full address and notes: sensitive (PIPL Art. 28), shown to
the visitor only, and every showing is audited, as is every check-in (time and GPS).
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core import audit, cases, residents
from core.access import Principal, require_own_visit
from core.db import utcnow
from core.errors import Conflict, NotFound
from core.models import Case, Resident, ServiceItem, Site, SiteKind, Staff, StaffSite
from core.pii import PiiCipher
from core.settings import Settings
from outreach.home import unseal
from outreach.home_steps import STATUS_WORDS
from outreach.models import HomeRequest, HomeStatus, HomeVisit, VisitStatus
from scheduler.models import (
    CheckInIn,
    CheckInRead,
    FieldRouteRead,
    FieldStopRead,
    PlanDepotRead,
    ServicePointRead,
    VisitCheckIn,
)
from scheduler.plans import at, today

# Where the visitor is a service point: the request is scheduled (or the visit just done, the
# case still being handled in the same call).
SERVABLE = (HomeStatus.scheduled, HomeStatus.visited)


def nav_url(settings: Settings, lat: float, lng: float, name: str) -> str:
    """The link that opens navigation to a stop: the configured map app, or a geo: URI."""
    if settings.map_nav_url:
        return settings.map_nav_url.format(lat=f"{lat:.6f}", lng=f"{lng:.6f}", name=quote(name))
    return f"geo:{lat:.6f},{lng:.6f}?q={lat:.6f},{lng:.6f}({quote(name)})"


async def _depot(session: AsyncSession, staff_id: int) -> Site | None:
    """The town centre the visitor starts from: their bound town, else any bound site."""
    rows = (
        await session.exec(
            select(Site)
            .join(StaffSite, col(StaffSite.site_id) == col(Site.id))
            .where(StaffSite.staff_id == staff_id)
            .order_by(col(Site.id))
        )
    ).all()
    return next((s for s in rows if s.kind == SiteKind.town), rows[0] if rows else None)


async def route(
    *,
    session: AsyncSession,
    principal: Principal,
    cipher: PiiCipher,
    settings: Settings,
    day: dt.date | None,
    audit_kw: dict[str, Any],
) -> FieldRouteRead:
    """The caller's visits of the day in order of time, with the addresses (audited)."""
    day = day or today(settings)
    staff = await session.get(Staff, principal.staff_id)
    assert staff is not None
    rows = (
        await session.exec(
            select(HomeVisit, HomeRequest)
            .join(HomeRequest, col(HomeRequest.id) == col(HomeVisit.request_id))
            .where(
                HomeVisit.staff_id == principal.staff_id,
                HomeVisit.status != VisitStatus.cancelled,
                col(HomeVisit.starts_at) >= at(settings, day, 0),
                col(HomeVisit.starts_at) < at(settings, day + dt.timedelta(days=1), 0),
            )
            .order_by(col(HomeVisit.starts_at), col(HomeVisit.id))
        )
    ).all()
    ids = {r.id or 0 for _, r in rows}
    people = await _rows(session, Resident, {r.resident_id for _, r in rows})
    items = await _rows(session, ServiceItem, {r.item_id for _, r in rows})
    places = await _rows(session, Site, {r.site_id for _, r in rows})
    numbers = await _rows(session, Case, {r.case_id for _, r in rows})
    arrived = await _arrivals(session, [v.id or 0 for v, _ in rows])
    stops = []
    for i, (v, r) in enumerate(rows):
        who, item, place = people[r.resident_id], items[r.item_id], places[r.site_id]
        private = unseal(cipher, r)
        stops.append(
            FieldStopRead(
                visit_id=v.id or 0,
                request_id=r.id or 0,
                case_id=r.case_id,
                case_number=numbers[r.case_id].number,
                order=i + 1,
                starts_at=v.starts_at,
                ends_at=v.ends_at,
                status=v.status,
                request_status=r.status,
                resident_name=who.name,
                resident_age=residents.age_of(who.birth_date, day),
                phone_masked=residents.mask_phone(who.phone),
                address=private.address,
                notes=private.notes,
                item_code=item.code,
                item_name=item.name,
                item_name_en=item.name_en,
                community=place.name,
                lat=place.lat,
                lng=place.lng,
                nav_url=nav_url(settings, place.lat, place.lng, who.name),
                checked_in_at=arrived.get(v.id or 0),
            )
        )
    if ids:
        audit.record(
            session,
            action="field.route.view",
            target_type="staff",
            target_id=principal.staff_id,
            detail={"day": day.isoformat(), "requests": sorted(ids)},
            **audit_kw,
        )
    depot = await _depot(session, principal.staff_id)
    return FieldRouteRead(
        day=day,
        staff_name=staff.display_name,
        depot=(
            PlanDepotRead(
                key=depot.code, name=depot.name, name_en=depot.name_en, lat=depot.lat, lng=depot.lng
            )
            if depot
            else None
        ),
        stops=stops,
        tile_url=settings.map_tile_url,
        tile_attribution=settings.map_tile_attribution,
    )


async def _rows(session: AsyncSession, model: Any, ids: set[int]) -> dict[int, Any]:
    if not ids:
        return {}
    rows = await session.exec(select(model).where(col(model.id).in_(ids)))
    return {row.id: row for row in rows.all()}


async def _arrivals(session: AsyncSession, visit_ids: list[int]) -> dict[int, dt.datetime]:
    if not visit_ids:
        return {}
    rows = await session.exec(
        select(VisitCheckIn.visit_id, VisitCheckIn.at).where(
            col(VisitCheckIn.visit_id).in_(visit_ids)
        )
    )
    return dict(rows.all())  # type: ignore[arg-type]


async def own_visit(session: AsyncSession, principal: Principal, visit_id: int) -> HomeVisit:
    visit = await session.get(HomeVisit, visit_id)
    if visit is None:
        raise NotFound(f"上门服务 {visit_id}", f"Home visit {visit_id}")
    require_own_visit(principal, visit)
    return visit


async def check_in(
    *,
    session: AsyncSession,
    principal: Principal,
    settings: Settings,
    visit_id: int,
    check_in_in: CheckInIn,
    audit_kw: dict[str, Any],
) -> CheckInRead:
    """Arrived at the door: the time and the tablet's GPS, once per visit, on its day;
    audited, and on the case's timeline (without the GPS, which the timeline's readers need
    not see)."""
    visit = await own_visit(session, principal, visit_id)
    if visit.status != VisitStatus.scheduled:
        zh, en = _visit_words(visit)
        raise Conflict("field.visit_state", status=zh, status_en=en)
    if visit.starts_at.astimezone(ZoneInfo(settings.timezone)).date() != today(settings):
        raise Conflict("field.not_today")
    existing = (
        await session.exec(select(VisitCheckIn).where(VisitCheckIn.visit_id == visit_id))
    ).first()
    if existing is not None:
        raise Conflict("field.checked_in")
    now = utcnow()
    row = VisitCheckIn(
        visit_id=visit_id,
        staff_id=principal.staff_id,
        at=now,
        lat=check_in_in.lat,
        lng=check_in_in.lng,
        accuracy_m=check_in_in.accuracy_m,
    )
    session.add(row)
    await session.flush()
    req = await session.get(HomeRequest, visit.request_id)
    assert req is not None
    case = await cases.get(session=session, case_id=req.case_id)
    cases.add_event(
        session,
        case,
        "home.visit_arrived",
        actor_id=principal.staff_fk,
        at=now,
        data={"request_id": req.id, "visit_id": visit_id},
    )
    audit.record(
        session,
        action="field.check_in",
        target_type="home_visit",
        target_id=visit_id,
        detail={"request_id": req.id, "gps": True, "accuracy_m": check_in_in.accuracy_m},
        **audit_kw,
    )
    return CheckInRead(visit_id=visit_id, at=now, accuracy_m=check_in_in.accuracy_m)


def _visit_words(visit: HomeVisit) -> tuple[str, str]:
    return {
        VisitStatus.done: ("已完成", "done"),
        VisitStatus.cancelled: ("已取消", "cancelled"),
    }.get(VisitStatus(visit.status), ("已安排", "scheduled"))


async def service_point(
    *, session: AsyncSession, principal: Principal, settings: Settings, visit_id: int
) -> ServicePointRead:
    """What the tablet needs to take a number at the home for the visit's case."""
    _, req, case = await visit_case(session, principal, visit_id, need_check_in=False)
    who = await session.get(Resident, req.resident_id)
    item = await session.get(ServiceItem, req.item_id)
    assert who is not None and item is not None
    arrived = await _arrivals(session, [visit_id])
    return ServicePointRead(
        visit_id=visit_id,
        case_id=case.id or 0,
        case_number=case.number,
        item_code=item.code,
        site_id=req.site_id,
        line_id=case.line_id,
        resident_id=req.resident_id,
        resident_name=who.name,
        resident_id_masked=who.id_masked,
        resident_age=residents.age_of(who.birth_date, today(settings)),
        checked_in=visit_id in arrived,
    )


async def visit_case(
    session: AsyncSession, principal: Principal, visit_id: int, *, need_check_in: bool = True
) -> tuple[HomeVisit, HomeRequest, Case]:
    """The caller's visit, its request and case, when a number may be taken for it at the
    home: the request is scheduled (or visited) and, for the number, checked in at the door."""
    visit = await own_visit(session, principal, visit_id)
    req = await session.get(HomeRequest, visit.request_id)
    assert req is not None
    if visit.status == VisitStatus.cancelled or req.status not in SERVABLE:
        zh, en = STATUS_WORDS[HomeStatus(req.status)]
        raise Conflict("field.visit_state", status=zh, status_en=en)
    if need_check_in and not await _arrivals(session, [visit_id]):
        raise Conflict("field.check_in_first")
    case = await cases.get(session=session, case_id=req.case_id)
    return visit, req, case
