"""Home-service requests (上门服务): who qualifies, intake, reading, the SMS of each step,
and counts per community. The steps after intake are in home_steps.py.

One module on purpose (past 600 lines): who qualifies, what a request holds, who sees which
part of it and what the resident is told are one rule set, read together. Transport-free:
home_views.py parses, calls these functions and maps errors.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
from collections import Counter
from collections.abc import Iterable
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, or_
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core import audit, cases, catalog, eligibility, idnumber, residents, sites
from core.access import (
    Principal,
    can,
    may_see_home_private,
    require_home_request,
    require_resident,
    site_in_scope,
)
from core.db import utcnow
from core.errors import Conflict, Invalid, NotFound, RateLimited
from core.models import (
    Case,
    CaseStatus,
    Department,
    EligibilityProblem,
    Resident,
    ResidentFound,
    Role,
    ServiceItem,
    Site,
    SiteKind,
    Staff,
    WindowLine,
)
from core.pii import PiiCipher
from core.resident_links import issue_link
from core.settings import Settings
from core.sms import SmsGateway
from outreach.models import (
    HOME_CLOSED,
    HomeAlternative,
    HomeBasis,
    HomeChannel,
    HomeCheckIn,
    HomeCheckRead,
    HomeCounts,
    HomeFind,
    HomeItemRead,
    HomePrivate,
    HomeRequest,
    HomeRequestIn,
    HomeRequestRead,
    HomeStatus,
    HomeVisit,
    HomeVisitRead,
    PreferredTime,
    VisitStatus,
)

S = HomeStatus
ELDERLY_AGE = residents.ELDERLY_AGE  # 60: the age of the elderly in the deployed service
PREGNANCY_DAYS = 300  # an expected date further ahead than a pregnancy lasts is a typo
PREFERRED_DAYS = 60  # preferred half days are for the coming weeks, not next year
VISIT_DAYS = 90  # a visit set by hand further ahead is a typo
NOTES_MAX = 2000  # notes plus the answers to the coordinator's questions
FIND_LIMIT = 10  # residents who share one phone (a household) shown to the hotline
RESIDENT_PAGE = "/resident/home/{id}"  # the resident's status page of a request

# What the staff copy of each step's SMS says happened.
STEP_WORDS: dict[str, str] = {
    "requested": "已提交",
    "needs_info": "需要居民补充信息",
    "accepted": "已受理",
    "declined": "未受理",
    "scheduled": "已安排上门",
    "visited": "已上门",
    "handled": "已办结",
    "delivered": "结果已送达",
    "cancelled": "已取消",
}
CHANNEL_OF = {
    Role.operator: HomeChannel.hotline,
    Role.coordinator: HomeChannel.hotline,
    Role.admin: HomeChannel.hotline,
    Role.community_worker: HomeChannel.point,
    Role.resident: HomeChannel.resident,
}


def local_today(settings: Settings, now: dt.datetime | None = None) -> dt.date:
    return (now or utcnow()).astimezone(ZoneInfo(settings.timezone)).date()


def home_for(item: ServiceItem) -> list[HomeBasis]:
    """Whom the catalog lets the item be handled at home for (empty: not at home)."""
    if not item.home_visit:
        return []
    given = set(item.home_visit_for)
    return [b for b in HomeBasis if b.value in given]


def _item_read(item: ServiceItem, department: str) -> HomeItemRead:
    return HomeItemRead(
        code=item.code,
        name=item.name,
        name_en=item.name_en,
        department_name=department,
        remote_capable=item.remote_capable,
        home_for=home_for(item),
    )


async def list_items(*, session: AsyncSession) -> list[HomeItemRead]:
    """The items that can be handled at home, by department and code."""
    rows = await session.exec(
        select(ServiceItem, Department.name)
        .join(Department, col(Department.code) == col(ServiceItem.department))
        .where(col(ServiceItem.home_visit).is_(True), col(ServiceItem.active).is_(True))
        .order_by(col(ServiceItem.department), col(ServiceItem.code))
    )
    return [_item_read(item, dept) for item, dept in rows.all() if home_for(item)]


async def home_item(*, session: AsyncSession, code: str) -> ServiceItem:
    """The item, if it can be handled at home; a clear 422 if not."""
    item = await catalog.get_item(session=session, code=code)
    if not home_for(item):
        raise Invalid("home.not_at_home", item=item.name, item_en=item.name_en or item.name)
    return item


# -- eligibility


def _problem(code: str, zh: str, en: str) -> EligibilityProblem:
    return EligibilityProblem(code=code, message=zh, message_en=en)


def basis_of(
    item: ServiceItem, resident: Resident, *, today: dt.date, pregnant_due: dt.date | None
) -> tuple[HomeBasis | None, list[EligibilityProblem]]:
    """The first group of the item's the resident belongs to, or why they belong to none."""
    groups = home_for(item)
    age = residents.age_of(resident.birth_date, today)
    if HomeBasis.elderly in groups and age >= ELDERLY_AGE:
        return HomeBasis.elderly, []
    if HomeBasis.disabled in groups and resident.disabled:
        return HomeBasis.disabled, []
    if HomeBasis.pregnant in groups and pregnant_due is not None:
        return HomeBasis.pregnant, []
    out: list[EligibilityProblem] = []
    if HomeBasis.elderly in groups:
        out.append(
            _problem(
                "home.age",
                f"上门服务须年满 {ELDERLY_AGE} 周岁，该居民 {age} 岁",
                f"Home visits are for people aged {ELDERLY_AGE} or over; the resident is {age}",
            )
        )
    if HomeBasis.disabled in groups:
        out.append(
            _problem(
                "home.disability",
                "未登记残疾人证",
                "No disability certificate on file",
            )
        )
    if HomeBasis.pregnant in groups:
        out.append(
            _problem(
                "home.pregnancy",
                "未申报怀孕（孕妇请填写预产期）",
                "No pregnancy declared (a pregnant resident gives the expected date)",
            )
        )
    return None, out


def check_due(due: dt.date | None, today: dt.date) -> None:
    if due is not None and not today <= due <= today + dt.timedelta(days=PREGNANCY_DAYS):
        raise Invalid("home.due_date", days=PREGNANCY_DAYS)


async def _origin(session: AsyncSession, resident: Resident) -> Site | None:
    """Where distances are measured from: the resident's community point, else the district."""
    if resident.community_id is not None:
        site = await session.get(Site, resident.community_id)
        if site is not None:
            return site
    return (await session.exec(select(Site).where(Site.kind == SiteKind.district))).first()


async def alternatives(
    *, session: AsyncSession, item: ServiceItem, resident: Resident
) -> list[HomeAlternative]:
    """The nearest hall that handles the item (with its distance), remote assist at the
    resident's community point when the item allows it, and an appointment at that hall."""
    origin = await _origin(session, resident)
    out: list[HomeAlternative] = []
    if origin is None:
        return out
    kinds = (SiteKind.district,) if item.level == "district" else sites.HALL_KINDS
    rows = (
        await session.exec(
            select(Site, WindowLine)
            .join(WindowLine, col(WindowLine.site_id) == col(Site.id))
            .where(
                WindowLine.department == item.department,
                col(WindowLine.active).is_(True),
                col(Site.kind).in_(kinds),
            )
        )
    ).all()
    ranked = sorted(
        rows,
        key=lambda r: (sites.haversine_km(origin.lat, origin.lng, r[0].lat, r[0].lng), r[0].id),
    )
    hall = ranked[0] if ranked else None
    if hall is not None:
        site, line = hall
        km = round(sites.haversine_km(origin.lat, origin.lng, site.lat, site.lng), 1)
        base = {
            "site_id": site.id or 0,
            "site_name": site.name,
            "site_name_en": site.name_en,
            "address": site.address,
            "distance_km": km,
            "line_id": line.id,
            "line_name": line.name,
        }
        out.append(HomeAlternative(kind="hall", **base))
    if item.remote_capable and origin.kind == SiteKind.community:
        out.append(
            HomeAlternative(
                kind="remote_assist",
                site_id=origin.id or 0,
                site_name=origin.name,
                site_name_en=origin.name_en,
                address=origin.address,
            )
        )
    if hall is not None:
        out.append(HomeAlternative(kind="appointment", **base))
    return out


def _may_know_basis(principal: Principal, basis: HomeBasis | None) -> bool:
    """Age is shown wherever a resident is found; disability and pregnancy are not."""
    return basis is HomeBasis.elderly or principal.is_resident or can(principal, "home.private")


async def resident_for(
    *, session: AsyncSession, principal: Principal, resident_id: int | None
) -> Resident:
    """The resident a request is for: a resident signed in is always themself."""
    if principal.is_resident:
        wanted = resident_id or principal.resident_id
        if wanted != principal.resident_id or wanted is None:
            raise NotFound(f"居民 {resident_id}", f"Resident {resident_id}")
        return await residents.get(session=session, resident_id=wanted)
    if resident_id is None:
        raise Invalid("home.resident_required")
    resident = await residents.get(session=session, resident_id=resident_id)
    await require_resident(session, principal, resident)
    return resident


async def _open_request_id(session: AsyncSession, resident_id: int, item_id: int) -> int | None:
    return (
        await session.exec(
            select(HomeRequest.id).where(
                HomeRequest.resident_id == resident_id,
                HomeRequest.item_id == item_id,
                col(HomeRequest.status).not_in(HOME_CLOSED),
            )
        )
    ).first()


async def check(
    *,
    session: AsyncSession,
    principal: Principal,
    settings: Settings,
    check_in: HomeCheckIn,
    request_id: str = "",
    ip: str = "",
) -> HomeCheckRead:
    """Whether the resident can be served at home for the item, said at once (audited: it
    reads the resident's disability)."""
    resident = await resident_for(
        session=session, principal=principal, resident_id=check_in.resident_id
    )
    item = await home_item(session=session, code=check_in.item_code)
    today = local_today(settings)
    check_due(check_in.pregnant_due, today)
    basis, problems = basis_of(item, resident, today=today, pregnant_due=check_in.pregnant_due)
    community = await session.get(Site, resident.community_id) if resident.community_id else None
    audit.record(
        session,
        actor=principal,
        action="home.check",
        target_type="resident",
        target_id=resident.id or 0,
        detail={"item": item.code, "eligible": not problems},
        request_id=request_id,
        ip=ip,
    )
    return HomeCheckRead(
        item_code=item.code,
        resident_id=resident.id or 0,
        eligible=not problems,
        basis=basis if _may_know_basis(principal, basis) else None,
        problems=problems,
        item_problems=eligibility.problems(item, resident, today),
        alternatives=(
            await alternatives(session=session, item=item, resident=resident) if problems else []
        ),
        address_on_file=bool(resident.address),
        address_masked=residents.mask_address(resident.address),
        community_id=community.id if community else None,
        community_name=community.name if community else None,
        open_request_id=await _open_request_id(session, resident.id or 0, item.id or 0),
    )


# -- the hotline's lookup


async def find(
    *,
    session: AsyncSession,
    cipher: PiiCipher,
    settings: Settings,
    principal: Principal,
    find_in: HomeFind,
    request_id: str = "",
    ip: str = "",
) -> list[ResidentFound]:
    """The caller, by the ID number they read out or the phone they registered.

    Audited and counted like the tablet's lookups (found or not), so the register cannot be
    walked; a phone shared by a household may find several people."""
    if find_in.id_number:
        try:
            return [
                await residents.lookup(
                    session=session,
                    cipher=cipher,
                    settings=settings,
                    principal=principal,
                    id_number=find_in.id_number,
                    request_id=request_id,
                    ip=ip,
                )
            ]
        except NotFound:
            return []  # the miss is audited; the page offers to register the caller
    if not find_in.phone:
        raise Invalid("home.find_what")
    phone = idnumber.normalize_phone(find_in.phone)
    made = await residents.lookups_since(
        session, principal.staff_id, utcnow() - dt.timedelta(hours=1)
    )
    if made >= settings.resident_lookups_per_hour:
        raise RateLimited(retry_after=3600)
    rows = list(
        (
            await session.exec(
                select(Resident)
                .where(Resident.phone == phone)
                .order_by(col(Resident.id))
                .limit(FIND_LIMIT)
            )
        ).all()
    )
    kw: dict[str, Any] = {"actor": principal, "request_id": request_id, "ip": ip}
    if not rows:
        audit.record(
            session,
            action="resident.lookup_miss",
            detail={"phone_masked": residents.mask_phone(phone)},
            **kw,
        )
    for r in rows:
        audit.record(
            session,
            action="resident.lookup",
            target_type="resident",
            target_id=r.id or 0,
            detail={"by": "phone"},
            **kw,
        )
    return [residents.found(r) for r in rows]


# -- the sensitive part, sealed to its row


def _context(req: HomeRequest) -> str:
    return f"home_request:{req.id}"


def seal(cipher: PiiCipher, req: HomeRequest, private: HomePrivate) -> None:
    req.private_cipher = cipher.encrypt(private.model_dump_json(), context=_context(req))


def unseal(cipher: PiiCipher, req: HomeRequest) -> HomePrivate:
    return HomePrivate.model_validate(
        json.loads(cipher.decrypt(req.private_cipher, context=_context(req)))
    )


def preferred_days(given: Iterable[PreferredTime], today: dt.date) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    for p in given:
        if not today <= p.date <= today + dt.timedelta(days=PREFERRED_DAYS):
            raise Invalid("home.preferred", days=PREFERRED_DAYS)
        entry = {"date": p.date.isoformat(), "part": p.part}
        if entry not in out:
            out.append(entry)
    return sorted(out, key=lambda e: (e["date"], e["part"]))


# -- intake


async def _community(
    session: AsyncSession, principal: Principal, resident: Resident, given: int | None
) -> Site:
    site_id = resident.community_id or given
    if site_id is None:
        raise Invalid("home.no_community")
    site = await session.get(Site, site_id)
    if site is None or site.kind != SiteKind.community:
        raise NotFound(f"社区 {site_id}", f"Community {site_id}")
    if (
        resident.community_id is None
        and not principal.is_resident
        and not await site_in_scope(session, principal, site.id or 0)
    ):
        raise NotFound(f"社区 {site_id}", f"Community {site_id}")
    return site


async def _open_case(
    session: AsyncSession,
    *,
    item: ServiceItem,
    site: Site,
    resident_id: int,
    created_by: int | None,
    channel: HomeChannel,
) -> Case:
    """The case a request belongs to, routed to the window line that handles its item
    (numbered as core.cases numbers every case: the day plus the row id)."""
    line = await sites.route_line(session=session, item=item, site=site)
    now = utcnow()
    case = Case(
        number=f"pending-{secrets.token_hex(8)}",
        item_id=item.id or 0,
        resident_id=resident_id,
        site_id=site.id or 0,
        line_id=line.id if line else None,
        status=CaseStatus.open,
        created_by=created_by,
        created_at=now,
        updated_at=now,
    )
    session.add(case)
    await session.flush()
    case.number = f"{now:%Y%m%d}{case.id:06d}"
    cases.add_event(
        session,
        case,
        "created",
        actor_id=created_by,
        at=now,
        data={
            "item": item.code,
            "site": site.code,
            "line": line.code if line else None,
            "channel": channel,
        },
    )
    return case


async def create(
    *,
    session: AsyncSession,
    principal: Principal,
    cipher: PiiCipher,
    sms: SmsGateway,
    settings: Settings,
    request_in: HomeRequestIn,
    request_id: str = "",
    ip: str = "",
) -> HomeRequest:
    """Take a request: checked at once; an item not done at home, or a resident who does not
    qualify (told why and where else to go), is refused and nothing is written."""
    resident = await resident_for(
        session=session, principal=principal, resident_id=request_in.resident_id
    )
    item = await home_item(session=session, code=request_in.item_code)
    today = local_today(settings)
    check_due(request_in.pregnant_due, today)
    preferred = preferred_days(request_in.preferred, today)
    basis, problems = basis_of(item, resident, today=today, pregnant_due=request_in.pregnant_due)
    if basis is None:
        alts = await alternatives(session=session, item=item, resident=resident)
        raise Invalid(
            "home.not_eligible",
            reasons="；".join(p.message for p in problems),
            reasons_en="; ".join(p.message_en for p in problems),
            details=[{"type": "problem", **p.model_dump()} for p in problems]
            + [{"type": "alternative", **a.model_dump()} for a in alts],
        )
    address = request_in.address or resident.address
    if not address:
        raise Invalid("home.address_required")
    site = await _community(session, principal, resident, request_in.community_id)
    existing = await _open_request_id(session, resident.id or 0, item.id or 0)
    if existing is not None:
        raise Conflict("home.duplicate", id=existing)
    channel = CHANNEL_OF.get(principal.role, HomeChannel.hotline)
    case = await _open_case(
        session,
        item=item,
        site=site,
        resident_id=resident.id or 0,
        created_by=principal.staff_fk,
        channel=channel,
    )
    now = utcnow()
    req = HomeRequest(
        resident_id=resident.id or 0,
        item_id=item.id or 0,
        case_id=case.id or 0,
        site_id=site.id or 0,
        channel=channel,
        status=S.requested,
        created_by=principal.staff_fk,
        created_at=now,
        updated_at=now,
        preferred=preferred,
        address_masked=residents.mask_address(address),
    )
    try:
        # The same call taken twice at once: the partial unique index lets one through.
        async with session.begin_nested():
            session.add(req)
            await session.flush()
    except IntegrityError:
        raise Conflict(
            "home.duplicate", id=await _open_request_id(session, resident.id or 0, item.id or 0)
        ) from None
    seal(
        cipher,
        req,
        HomePrivate(
            basis=basis,
            pregnant_due=request_in.pregnant_due if basis is HomeBasis.pregnant else None,
            address=address,
            notes=request_in.notes,
        ),
    )
    session.add(req)
    cases.add_event(
        session,
        case,
        "home.requested",
        actor_id=principal.staff_fk,
        at=now,
        data={"request_id": req.id, "channel": channel, "preferred": len(preferred)},
    )
    audit.record(
        session,
        actor=principal,
        action="home.request.create",
        target_type="home_request",
        target_id=req.id or 0,
        detail={"resident_id": resident.id, "item": item.code, "channel": channel},
        request_id=request_id,
        ip=ip,
    )
    await notify(session, sms=sms, settings=settings, req=req, step="requested")
    return req


# -- reading


async def get(*, session: AsyncSession, request_id: int, lock: bool = False) -> HomeRequest:
    q = select(HomeRequest).where(HomeRequest.id == request_id)
    if lock:
        q = q.with_for_update()
    row = (await session.exec(q)).first()
    if row is None:
        raise NotFound(f"上门服务申请 {request_id}", f"Home-service request {request_id}")
    return row


async def visitors(session: AsyncSession, request_id: int) -> frozenset[int]:
    """Field staff sent (or to be sent) on the request's visits; not those rescheduled away."""
    rows = await session.exec(
        select(HomeVisit.staff_id).where(
            HomeVisit.request_id == request_id, HomeVisit.status != VisitStatus.cancelled
        )
    )
    return frozenset(rows.all())


async def visible(
    *, session: AsyncSession, principal: Principal, request_id: int, lock: bool = False
) -> HomeRequest:
    """The request if the caller may see it, else 404 (core.access decides)."""
    req = await get(session=session, request_id=request_id, lock=lock)
    await require_home_request(
        session, principal, req, visitors=await visitors(session, req.id or 0)
    )
    return req


async def _current_visits(
    session: AsyncSession, request_ids: list[int]
) -> dict[int, tuple[HomeVisit, str]]:
    """Each request's latest visit that was not called off, with its staff member's name."""
    out: dict[int, tuple[HomeVisit, str]] = {}
    if not request_ids:
        return out
    rows = await session.exec(
        select(HomeVisit, Staff.display_name)
        .join(Staff, col(Staff.id) == col(HomeVisit.staff_id))
        .where(
            col(HomeVisit.request_id).in_(request_ids),
            HomeVisit.status != VisitStatus.cancelled,
        )
        .order_by(col(HomeVisit.id))
    )
    for visit, name in rows.all():
        out[visit.request_id] = (visit, name)
    return out


async def _by_id(session: AsyncSession, model: Any, ids: set[int]) -> dict[int, Any]:
    """Rows of one table by id, in one query."""
    if not ids:
        return {}
    rows = await session.exec(select(model).where(col(model.id).in_(ids)))
    return {row.id: row for row in rows.all()}


async def reads(
    *,
    session: AsyncSession,
    rows: list[HomeRequest],
    settings: Settings,
    private: dict[int, HomePrivate] | None = None,
) -> list[HomeRequestRead]:
    """Requests as the pages show them: masked, with their current visit (a few reads for
    the whole list, not a few per row)."""
    if not rows:
        return []
    ids = [r.id or 0 for r in rows]
    people = await _by_id(session, Resident, {r.resident_id for r in rows})
    items = await _by_id(session, ServiceItem, {r.item_id for r in rows})
    places = await _by_id(session, Site, {r.site_id for r in rows})
    numbers = {
        i: c.number for i, c in (await _by_id(session, Case, {r.case_id for r in rows})).items()
    }
    makers = await _by_id(session, Staff, {r.created_by for r in rows if r.created_by})
    current = await _current_visits(session, ids)
    today = local_today(settings)
    out = []
    for r in rows:
        who, item, site = people[r.resident_id], items[r.item_id], places[r.site_id]
        visit = current.get(r.id or 0)
        out.append(
            HomeRequestRead(
                id=r.id or 0,
                case_id=r.case_id,
                case_number=numbers.get(r.case_id, ""),
                resident_id=r.resident_id,
                resident_name=who.name,
                resident_id_masked=who.id_masked,
                resident_age=residents.age_of(who.birth_date, today),
                resident_phone_masked=residents.mask_phone(who.phone),
                item_code=item.code,
                item_name=item.name,
                item_name_en=item.name_en,
                site_id=r.site_id,
                site_name=site.name,
                channel=HomeChannel(r.channel),
                status=HomeStatus(r.status),
                created_at=r.created_at,
                updated_at=r.updated_at,
                created_by_name=makers[r.created_by].display_name if r.created_by else None,
                preferred=[PreferredTime.model_validate(p) for p in r.preferred],
                address_masked=r.address_masked,
                info_question=r.info_question,
                decline_reason=r.decline_reason,
                visit=_visit_read(*visit) if visit else None,
                private=(private or {}).get(r.id or 0),
            )
        )
    return out


def _visit_read(v: HomeVisit, name: str) -> HomeVisitRead:
    return HomeVisitRead(
        id=v.id or 0,
        staff_id=v.staff_id,
        staff_name=name,
        starts_at=v.starts_at,
        ends_at=v.ends_at,
        status=VisitStatus(v.status),
        planned_by=v.planned_by,
        done_at=v.done_at,
    )


async def read_one(
    *,
    session: AsyncSession,
    principal: Principal,
    cipher: PiiCipher,
    settings: Settings,
    req: HomeRequest,
    request_id: str = "",
    ip: str = "",
) -> HomeRequestRead:
    """One request; its sensitive part for those who may see it, and that view audited."""
    private: dict[int, HomePrivate] = {}
    if may_see_home_private(principal, req):
        private[req.id or 0] = unseal(cipher, req)
        audit.record(
            session,
            actor=principal,
            action="home.request.view_private",
            target_type="home_request",
            target_id=req.id or 0,
            request_id=request_id,
            ip=ip,
        )
    return (await reads(session=session, rows=[req], settings=settings, private=private))[0]


async def list_requests(
    *,
    session: AsyncSession,
    principal: Principal,
    status: HomeStatus | None = None,
    open_only: bool = False,
    mine: bool = False,
    limit: int = 50,
    offset: int = 0,
) -> list[HomeRequest]:
    """The requests the caller may see, newest first: a resident's own, a field staff
    member's visits, the requests of a coordinator's (operator's, worker's) area."""
    q = (
        select(HomeRequest)
        .order_by(col(HomeRequest.created_at).desc(), col(HomeRequest.id).desc())
        .limit(limit)
        .offset(offset)
    )
    if status is not None:
        q = q.where(HomeRequest.status == status)
    if open_only:
        q = q.where(col(HomeRequest.status).not_in(HOME_CLOSED))
    if mine:
        q = q.where(HomeRequest.created_by == principal.staff_fk)
    if principal.is_resident:
        q = q.where(HomeRequest.resident_id == principal.resident_id)
    elif principal.role is Role.field_staff:
        mine = select(HomeVisit.request_id).where(
            HomeVisit.staff_id == principal.staff_id, HomeVisit.status != VisitStatus.cancelled
        )
        q = q.where(col(HomeRequest.id).in_(mine))
    elif not principal.is_admin:
        scope = await cases.scope_site_ids(session, principal)
        q = q.where(
            or_(col(HomeRequest.site_id).in_(scope), HomeRequest.created_by == principal.staff_id)
        )
    return list((await session.exec(q)).all())


# -- notices


async def notify(
    session: AsyncSession,
    *,
    sms: SmsGateway,
    settings: Settings,
    req: HomeRequest,
    step: str,
    suffix: str = "",
    extra: dict[str, str] | None = None,
) -> None:
    """The step's SMS: to the resident with a sign-in link to the request's status page, and
    a short copy to the staff member who took the request when they have a phone. The text
    names the item and the step, never the basis, the address or the notes; the key makes
    each one go out once."""
    resident = await session.get(Resident, req.resident_id)
    item = await session.get(ServiceItem, req.item_id)
    assert resident is not None and item is not None
    key = f"home:{req.id}:{step}{suffix}"
    if resident.phone:
        link = await issue_link(
            session,
            resident_id=resident.id or 0,
            path=RESIDENT_PAGE.format(id=req.id),
            settings=settings,
        )
        await sms.send(
            session,
            phone=resident.phone,
            kind=f"home.{step}",
            params={"item": item.name, "link": link, **(extra or {})},
            key=key,
        )
    if req.created_by is not None:
        staff = await session.get(Staff, req.created_by)
        if staff is not None and staff.active and staff.phone and staff.phone != resident.phone:
            await sms.send(
                session,
                phone=staff.phone,
                kind="home.staff",
                params={"number": str(req.id), "item": item.name, "step": STEP_WORDS[step]},
                key=f"{key}:staff",
            )


# -- counts for the statistics


async def counts(
    *, session: AsyncSession, principal: Principal, start: dt.datetime, end: dt.datetime
) -> list[HomeCounts]:
    """Requests made in [start, end) per community point of the caller's area, by outcome."""
    q = (
        select(HomeRequest.site_id, HomeRequest.status, func.count())
        .where(col(HomeRequest.created_at) >= start, col(HomeRequest.created_at) < end)
        .group_by(col(HomeRequest.site_id), col(HomeRequest.status))
    )
    if not principal.is_admin:
        q = q.where(col(HomeRequest.site_id).in_(await cases.scope_site_ids(session, principal)))
    by_site: dict[int, Counter[str]] = {}
    for site_id, status, n in (await session.exec(q)).all():
        by_site.setdefault(site_id, Counter())[status] += n
    if not by_site:
        return []
    names = dict(
        (await session.exec(select(Site.id, Site.name).where(col(Site.id).in_(by_site)))).all()
    )
    accepted = {S.accepted, S.scheduled, S.visited, S.handled, S.delivered}
    visited = {S.visited, S.handled, S.delivered}
    return sorted(
        (
            HomeCounts(
                site_id=site_id,
                site_name=names.get(site_id, ""),
                requested=sum(c.values()),
                accepted=sum(c[s] for s in accepted),
                declined=c[S.declined],
                visited=sum(c[s] for s in visited),
                delivered=c[S.delivered],
            )
            for site_id, c in by_site.items()
        ),
        key=lambda x: (-x.requested, x.site_name),
    )
