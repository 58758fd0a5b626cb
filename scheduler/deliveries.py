"""Courier delivery of licences (证照速递): the order made from a completed case, the courier's
day in order, setting out (the resident's code by SMS), proof at the door, failed attempts and
re-attempts, the lock after wrong entries, and what staff and the resident see.

pending --dispatch--> dispatched --proof--> delivered
                      dispatched --fail--> pending (the next day, a new code at dispatch)
pending|dispatched --too many wrong last-4 digits or codes--> locked --release--> pending

Transport-free: delivery_views.py parses, calls these functions and maps errors. The files of
a proof (photo, signature) go to the object store the composition root hands in (`Files`).
docs/delivery.md describes the whole.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime as dt
import hmac
import io
import math
import secrets
import uuid
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from typing import Any, Protocol
from urllib.parse import quote
from zoneinfo import ZoneInfo

from PIL import Image
from sqlalchemy import exists, func, or_
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core import audit, cases, residents
from core.access import (
    CaseUse,
    Principal,
    area_sites,
    require_case,
    require_delivery,
    site_ancestry,
)
from core.db import utcnow
from core.errors import Conflict, Invalid, NotFound
from core.events import Audience, Outbox
from core.jobs import Every, Jobs, Run
from core.models import (
    Case,
    CaseEvent,
    CaseStatus,
    Resident,
    Role,
    ServiceItem,
    Site,
    SiteKind,
    Staff,
    StaffSite,
    WindowLine,
)
from core.pii import PiiCipher
from core.resident_links import issue_link
from core.settings import Settings
from core.sms import SmsGateway
from outreach.home import unseal
from outreach.models import HomeRequest, HomeStatus, Licence, LicenceType
from scheduler.delivery_events import DeliveryLocked
from scheduler.models import (
    OPEN_DELIVERY,
    AttemptRead,
    CourierDayRead,
    CourierStopRead,
    Delivery,
    DeliveryAttempt,
    DeliveryChoiceRead,
    DeliveryProof,
    DeliveryQuery,
    DeliveryRead,
    DeliveryStatus,
    FailIn,
    FailReason,
    ProofIn,
    ProofRead,
    ProofResult,
    Recipient,
    ResidentDeliveryRead,
)

S = DeliveryStatus
ORDERS_JOB = "deliveries.from_cases"
CASE_BATCH = 500  # orders made per round of the job: more than a district completes in a day
PROOF_LINK_SECONDS = 300  # a proof's photo and signature links: long enough to look, no more
STATUS_WORDS: dict[DeliveryStatus, tuple[str, str]] = {
    S.pending: ("待出发", "waiting to set out"),
    S.dispatched: ("配送中", "out for delivery"),
    S.delivered: ("已签收", "delivered"),
    S.locked: ("已锁定", "locked"),
}
REASON_WORDS: dict[FailReason, str] = {
    FailReason.not_home: "家中无人",
    FailReason.refused: "拒收",
    FailReason.wrong_address: "地址有误",
}
PNG = b"\x89PNG\r\n\x1a\n"
JPEG = b"\xff\xd8\xff"


class Files(Protocol):
    """What deliveries need of the object store (uploads.storage.ObjectStore fits)."""

    async def put_bytes(self, key: str, data: bytes, content_type: str) -> None: ...

    async def download_url(
        self, key: str, *, expires: int, content_type: str, filename: str
    ) -> str: ...


def today(settings: Settings, now: dt.datetime | None = None) -> dt.date:
    return (now or utcnow()).astimezone(ZoneInfo(settings.timezone)).date()


def _nf(delivery_id: int) -> NotFound:
    return NotFound(f"配送单 {delivery_id}", f"Delivery {delivery_id}")


def _state(d: Delivery) -> Conflict:
    zh, en = STATUS_WORDS[DeliveryStatus(d.status)]
    return Conflict("delivery.state", status=zh, status_en=en)


def _address_context(case_id: int) -> str:
    return f"delivery:{case_id}"


def _code_hash(cipher: PiiCipher, delivery_id: int, code: str) -> str:
    """Bound to the delivery: the code of another delivery never matches this one."""
    return cipher.lookup_hash(f"delivery-code:{delivery_id}:{code}")


def _event(
    session: AsyncSession, case_id: int, kind: str, actor: Principal | None, **data: Any
) -> None:
    """A step on the case's timeline: what happened, never the address or the GPS."""
    session.add(
        CaseEvent(
            case_id=case_id,
            kind=f"deliveries.{kind}",
            actor_id=actor.staff_fk if actor else None,
            data=data,
            at=utcnow(),
        )
    )


def status_path(delivery_id: int) -> str:
    return f"/resident/deliveries/{delivery_id}"


async def _licence_name(session: AsyncSession, d: Delivery) -> str:
    if d.licence_id is not None:
        lic = await session.get(Licence, d.licence_id)
        kind = await session.get(LicenceType, lic.type_id) if lic else None
        if kind is not None:
            return kind.name
    return "证照"


async def _tell(
    session: AsyncSession,
    sms: SmsGateway,
    settings: Settings,
    d: Delivery,
    kind: str,
    key: str,
    **params: str,
) -> None:
    """An SMS to the resident with a sign-in link to the delivery's page (after commit)."""
    who = await session.get(Resident, d.resident_id)
    if who is None or not who.phone:
        return
    link = await issue_link(
        session, resident_id=d.resident_id, path=status_path(d.id or 0), settings=settings
    )
    licence = await _licence_name(session, d)
    await sms.send(
        session,
        phone=who.phone,
        kind=kind,
        params={"licence": licence, **params, "link": link},
        key=key,
    )


# -- orders from completed cases


async def _courier(session: AsyncSession, site_ids: Iterable[int]) -> int | None:
    """The active courier bound to one of these sites with the fewest open deliveries."""
    up: set[int] = set()
    for site_id in site_ids:
        up |= {s.id or 0 for s in await site_ancestry(session, site_id)}
    open_count = (
        select(func.count())
        .select_from(Delivery)
        .where(col(Delivery.courier_id) == col(Staff.id), col(Delivery.status).in_(OPEN_DELIVERY))
        .scalar_subquery()
    )
    bound = select(StaffSite.staff_id).where(col(StaffSite.site_id).in_(up))
    row = (
        await session.exec(
            select(Staff.id)
            .where(Staff.role == Role.courier, col(Staff.active), col(Staff.id).in_(bound))
            .order_by(open_count, col(Staff.id))
            .limit(1)
        )
    ).first()
    return row


async def create_for_cases(
    session: AsyncSession,
    *,
    settings: Settings,
    cipher: PiiCipher,
    sms: SmsGateway,
    now: dt.datetime,
) -> dict[str, int]:
    """Orders for completed cases whose licence is to be brought home (the resident chose
    delivery, or a home-service case) and that have none yet.

    Idempotent (one order per case: the unique case_id), so any node may run it any number of
    times. The licence must be in the register first (outreach/licences.py enters it).
    """
    since = now - dt.timedelta(days=settings.delivery_lookback_days)
    home_case = exists().where(col(HomeRequest.case_id) == col(Case.id))
    has_order = exists().where(col(Delivery.case_id) == col(Case.id))
    rows = (
        await session.exec(
            select(Case, Licence.id)
            .join(Licence, col(Licence.case_id) == col(Case.id))
            .where(
                Case.status == CaseStatus.completed,
                col(Case.resident_id).is_not(None),
                col(Case.closed_at) >= since,
                or_(col(Case.licence_delivery), home_case),
                ~has_order,
            )
            .order_by(col(Case.closed_at), col(Case.id))
            .limit(CASE_BATCH)
        )
    ).all()
    made = skipped = 0
    day = today(settings, now)
    for case, licence_id in rows:
        assert case.id is not None and case.resident_id is not None
        who = await session.get(Resident, case.resident_id)
        assert who is not None
        home = (
            await session.exec(select(HomeRequest).where(HomeRequest.case_id == case.id))
        ).first()
        address = unseal(cipher, home).address if home and home.private_cipher else who.address
        if not address:
            skipped += 1  # nowhere to bring it: the resident collects it at the hall
            continue
        line = await session.get(WindowLine, case.line_id) if case.line_id else None
        hall = line.site_id if line else case.site_id
        to_site = home.site_id if home else (who.community_id or case.site_id)
        d = Delivery(
            case_id=case.id,
            licence_id=licence_id,
            resident_id=case.resident_id,
            from_site_id=hall,
            to_site_id=to_site,
            address_cipher=cipher.encrypt(address, context=_address_context(case.id)),
            address_masked=residents.mask_address(address),
            courier_id=await _courier(session, (hall, to_site)),
            day=day,
            status=S.pending,
            created_at=now,
            updated_at=now,
        )
        try:
            async with session.begin_nested():
                session.add(d)
                await session.flush()
        except IntegrityError:
            continue  # another node made it a moment ago
        made += 1
        _event(session, case.id, "created", None, delivery_id=d.id, day=day.isoformat())
        await _tell(
            session,
            sms,
            settings,
            d,
            "delivery.created",
            f"delivery:{d.id}:created",
            day=f"{day.month}月{day.day}日",
        )
    return {"created": made, "no_address": skipped}


async def _orders_job(
    run: Run,
    *,
    settings: Settings,
    cipher: Callable[[], PiiCipher],
    sms: Callable[[], SmsGateway],
) -> dict[str, int]:
    async with run.db.session() as session:
        made = await create_for_cases(
            session, settings=settings, cipher=cipher(), sms=sms(), now=run.now()
        )
        await session.commit()
    return made


def register_jobs(
    jobs: Jobs,
    *,
    settings: Settings,
    cipher: Callable[[], PiiCipher],
    sms: Callable[[], SmsGateway],
) -> None:
    """Orders from completed cases, on the node's runner. `cipher` and `sms` are asked for at
    each run: the app makes them once it starts."""
    jobs.add(
        ORDERS_JOB,
        Every(settings.delivery_interval_seconds),
        partial(_orders_job, settings=settings, cipher=cipher, sms=sms),
        lease=dt.timedelta(minutes=2),
    )


async def _choice(session: AsyncSession, case: Case) -> DeliveryChoiceRead:
    assert case.id is not None
    item = await session.get(ServiceItem, case.item_id)
    available = item is not None and item.licence_type_id is not None
    home = (
        await session.exec(select(HomeRequest.id).where(HomeRequest.case_id == case.id))
    ).first() is not None
    order = (await session.exec(select(Delivery.id).where(Delivery.case_id == case.id))).first()
    return DeliveryChoiceRead(
        case_id=case.id,
        deliver=available and (home or case.licence_delivery),
        available=available,
        fixed=home,
        delivery_id=order,
    )


async def choice(
    session: AsyncSession, *, principal: Principal, case_id: int
) -> DeliveryChoiceRead:
    """How the case's licence reaches the resident, for whoever may read the case."""
    case = await cases.get(session=session, case_id=case_id)
    await require_case(session, principal, case, CaseUse.read)
    return await _choice(session, case)


async def choose(
    session: AsyncSession, *, principal: Principal, case_id: int, deliver: bool, audit_kw: Any
) -> DeliveryChoiceRead:
    """The resident (or the staff serving them) chose whether the licence is brought home.

    Refused for an item that issues no licence, for a home-service case (always brought home)
    and once the order exists (the courier may be on the way)."""
    case = await cases.get(session=session, case_id=case_id)
    await require_case(session, principal, case, CaseUse.read)
    now = await _choice(session, case)
    if not now.available:
        raise Invalid("delivery.no_licence")
    if now.fixed:
        raise Conflict("delivery.choice_fixed")
    if now.delivery_id is not None:
        raise Conflict("delivery.already_ordered")
    if case.licence_delivery != deliver:
        case.licence_delivery = deliver
        session.add(case)
        _event(session, case_id, "chosen" if deliver else "unchosen", principal)
        audit.record(
            session,
            action="delivery.choose",
            target_type="case",
            target_id=case_id,
            detail={"deliver": deliver},
            **audit_kw,
        )
    return now.model_copy(update={"deliver": deliver})


# -- reading


async def _rows(session: AsyncSession, model: Any, ids: set[int]) -> dict[int, Any]:
    ids = {i for i in ids if i}
    if not ids:
        return {}
    rows = await session.exec(select(model).where(col(model.id).in_(ids)))
    return {r.id: r for r in rows.all()}


async def reads(session: AsyncSession, rows: Sequence[Delivery]) -> list[DeliveryRead]:
    """Staff's view of deliveries, a few queries for the whole list."""
    ids = [d.id or 0 for d in rows]
    the_cases = await _rows(session, Case, {d.case_id for d in rows})
    items = await _rows(session, ServiceItem, {c.item_id for c in the_cases.values()})
    people = await _rows(session, Resident, {d.resident_id for d in rows})
    sites = await _rows(session, Site, {d.from_site_id for d in rows})
    couriers = await _rows(session, Staff, {d.courier_id or 0 for d in rows})
    tries: dict[int, list[AttemptRead]] = {}
    proofs: set[int] = set()
    if ids:
        for a in (
            await session.exec(
                select(DeliveryAttempt)
                .where(col(DeliveryAttempt.delivery_id).in_(ids))
                .order_by(col(DeliveryAttempt.attempt))
            )
        ).all():
            tries.setdefault(a.delivery_id, []).append(
                AttemptRead(
                    attempt=a.attempt,
                    reason=FailReason(a.reason),
                    note=a.note,
                    at=a.at,
                    next_day=a.next_day,
                )
            )
        proofs = set(
            (
                await session.exec(
                    select(DeliveryProof.delivery_id).where(col(DeliveryProof.delivery_id).in_(ids))
                )
            ).all()
        )
    out = []
    for d in rows:
        case = the_cases[d.case_id]
        item = items[case.item_id]
        courier = couriers.get(d.courier_id or 0)
        out.append(
            DeliveryRead(
                id=d.id or 0,
                case_id=d.case_id,
                case_number=case.number,
                item_name=item.name,
                item_name_en=item.name_en,
                resident_name=people[d.resident_id].name,
                address_masked=d.address_masked,
                from_site=sites[d.from_site_id].name,
                courier_name=courier.display_name if courier else "",
                day=d.day,
                status=DeliveryStatus(d.status),
                attempt=d.attempt,
                attempts=tries.get(d.id or 0, []),
                locked_at=d.locked_at,
                delivered_at=d.delivered_at,
                has_proof=(d.id or 0) in proofs,
            )
        )
    return out


async def read_one(session: AsyncSession, d: Delivery) -> DeliveryRead:
    return (await reads(session, [d]))[0]


async def get(
    session: AsyncSession, *, principal: Principal, delivery_id: int, lock: bool = False
) -> Delivery:
    q = select(Delivery).where(Delivery.id == delivery_id)
    if lock:
        q = q.with_for_update()
    d = (await session.exec(q)).first()
    if d is None:
        raise _nf(delivery_id)
    await require_delivery(session, principal, d)
    return d


async def list_area(
    session: AsyncSession, *, principal: Principal, query: DeliveryQuery
) -> list[DeliveryRead]:
    """Deliveries of the caller's area (issuing hall or resident's community), newest first."""
    q = select(Delivery).order_by(col(Delivery.id).desc()).limit(query.limit)
    area = area_sites(principal)
    if area is not None:
        q = q.where(or_(col(Delivery.from_site_id).in_(area), col(Delivery.to_site_id).in_(area)))
    if query.status is not None:
        q = q.where(Delivery.status == query.status)
    return await reads(session, list((await session.exec(q)).all()))


# -- the courier's day


def nav_url(settings: Settings, lat: float, lng: float, name: str) -> str:
    """The link that opens navigation to a stop: the configured map app, or a geo: URI (the
    same setting as the visit day's)."""
    if settings.map_nav_url:
        return settings.map_nav_url.format(lat=f"{lat:.6f}", lng=f"{lng:.6f}", name=quote(name))
    return f"geo:{lat:.6f},{lng:.6f}?q={lat:.6f},{lng:.6f}({quote(name)})"


def _metres(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Great-circle distance (haversine), enough to order a handful of stops."""
    la1, lo1, la2, lo2 = map(math.radians, (*a, *b))
    h = (
        math.sin((la2 - la1) / 2) ** 2
        + math.cos(la1) * math.cos(la2) * math.sin((lo2 - lo1) / 2) ** 2
    )
    return 2 * 6_371_000 * math.asin(math.sqrt(h))


def order_stops(start: tuple[float, float], points: list[tuple[float, float]]) -> list[int]:
    """A short round through the points from `start`: nearest neighbour, then 2-opt.

    A courier's day is one vehicle, a few stops and no time windows: for that, 2-opt after
    nearest neighbour is at or next to the best order, and it takes microseconds here, where a
    solve in the planner's worker process would take a second or more (docs/delivery.md).
    """
    left = list(range(len(points)))
    route: list[int] = []
    here = start
    while left:
        nxt = min(left, key=lambda i: (_metres(here, points[i]), i))
        route.append(nxt)
        left.remove(nxt)
        here = points[nxt]

    def at(k: int) -> tuple[float, float]:
        return start if k < 0 else points[route[k]]

    better = True
    while better:
        better = False
        for i in range(len(route) - 1):
            for j in range(i + 1, len(route)):
                # reverse route[i..j]: edges (i-1, i) and (j, j+1) become (i-1, j) and (i, j+1)
                before = _metres(at(i - 1), at(i)) + (
                    _metres(at(j), at(j + 1)) if j + 1 < len(route) else 0
                )
                after = _metres(at(i - 1), at(j)) + (
                    _metres(at(i), at(j + 1)) if j + 1 < len(route) else 0
                )
                if after < before - 1e-6:
                    route[i : j + 1] = reversed(route[i : j + 1])
                    better = True
    return route


async def _start(session: AsyncSession, staff_id: int, fallback: int | None) -> Site | None:
    """Where the round starts: the courier's bound town (a hall), else any bound site."""
    rows = (
        await session.exec(
            select(Site)
            .join(StaffSite, col(StaffSite.site_id) == col(Site.id))
            .where(StaffSite.staff_id == staff_id)
            .order_by(col(Site.id))
        )
    ).all()
    town = next((s for s in rows if s.kind == SiteKind.town), None)
    if town is not None:
        return town
    if fallback is not None:
        return await session.get(Site, fallback)
    return rows[0] if rows else None


async def courier_day(
    session: AsyncSession,
    *,
    principal: Principal,
    settings: Settings,
    cipher: PiiCipher,
    audit_kw: dict[str, Any],
) -> CourierDayRead:
    """The caller's deliveries due today (and earlier ones still open) in planned order, then
    today's delivered ones; with the addresses and phone numbers (audited)."""
    day = today(settings)
    staff = await session.get(Staff, principal.staff_id)
    assert staff is not None
    local = ZoneInfo(settings.timezone)
    midnight = dt.datetime.combine(day, dt.time(), local)
    rows = list(
        (
            await session.exec(
                select(Delivery)
                .where(
                    Delivery.courier_id == principal.staff_id,
                    or_(
                        (col(Delivery.status).in_([*OPEN_DELIVERY, S.locked]))
                        & (col(Delivery.day) <= day),
                        (Delivery.status == S.delivered) & (col(Delivery.delivered_at) >= midnight),
                    ),
                )
                .order_by(col(Delivery.id))
            )
        ).all()
    )
    places = await _rows(session, Site, {d.to_site_id for d in rows})
    people = await _rows(session, Resident, {d.resident_id for d in rows})
    start = await _start(session, principal.staff_id, rows[0].from_site_id if rows else None)
    todo = [d for d in rows if d.status != S.delivered]
    done = [d for d in rows if d.status == S.delivered]
    if start is not None and todo:
        order = order_stops(
            (start.lat, start.lng),
            [(places[d.to_site_id].lat, places[d.to_site_id].lng) for d in todo],
        )
        todo = [todo[i] for i in order]
    shown = todo + done
    read = {r.id: r for r in await reads(session, shown)}
    stops = []
    for n, d in enumerate(shown, 1):
        place, who = places[d.to_site_id], people[d.resident_id]
        stops.append(
            CourierStopRead(
                order=n,
                delivery=read[d.id],
                address=cipher.decrypt(d.address_cipher, context=_address_context(d.case_id)),
                phone=who.phone,
                lat=place.lat,
                lng=place.lng,
                nav_url=nav_url(settings, place.lat, place.lng, who.name),
            )
        )
    if shown:
        audit.record(
            session,
            action="delivery.route.view",
            target_type="staff",
            target_id=principal.staff_id,
            detail={"day": day.isoformat(), "deliveries": [d.id for d in shown]},
            **audit_kw,
        )
    return CourierDayRead(
        day=day,
        courier_name=staff.display_name,
        start=start.name if start else "",
        stops=stops,
    )


# -- at the hall and at the door


async def dispatch(
    session: AsyncSession,
    *,
    principal: Principal,
    settings: Settings,
    cipher: PiiCipher,
    sms: SmsGateway,
    delivery_id: int,
    audit_kw: dict[str, Any],
) -> Delivery:
    """The courier sets out with it: a fresh 6-digit code goes to the resident by SMS (a code
    sent earlier, for an attempt that failed, stops counting)."""
    d = await get(session, principal=principal, delivery_id=delivery_id, lock=True)
    if d.status not in OPEN_DELIVERY:
        raise _state(d)
    if d.day > today(settings):
        raise Conflict("delivery.not_today", day=d.day.isoformat())
    now = utcnow()
    code = f"{secrets.randbelow(10**6):06d}"
    d.code_hash = _code_hash(cipher, d.id or 0, code)
    d.code_expires_at = now + dt.timedelta(hours=settings.delivery_code_hours)
    d.status = S.dispatched
    d.updated_at = now
    session.add(d)
    _event(session, d.case_id, "dispatched", principal, delivery_id=d.id, attempt=d.attempt)
    audit.record(
        session,
        action="delivery.dispatch",
        target_type="delivery",
        target_id=d.id or 0,
        detail={"attempt": d.attempt},
        **audit_kw,
    )
    staff = await session.get(Staff, principal.staff_id)
    await _tell(
        session,
        sms,
        settings,
        d,
        "delivery.code",
        f"delivery:{d.id}:code:{uuid.uuid4().hex}",
        courier=staff.display_name if staff else "",
        code=code,
    )
    return d


async def fail(
    session: AsyncSession,
    *,
    principal: Principal,
    settings: Settings,
    sms: SmsGateway,
    delivery_id: int,
    fail_in: FailIn,
    audit_kw: dict[str, Any],
) -> Delivery:
    """Not handed over: the reason is kept, the next attempt is set for a later day, and the
    code of this attempt stops counting."""
    d = await get(session, principal=principal, delivery_id=delivery_id, lock=True)
    if d.status != S.dispatched:
        raise _state(d)
    now = utcnow()
    next_day = today(settings, now) + dt.timedelta(days=settings.delivery_retry_days)
    session.add(
        DeliveryAttempt(
            delivery_id=d.id or 0,
            attempt=d.attempt,
            courier_id=principal.staff_id,
            reason=fail_in.reason,
            note=fail_in.note,
            at=now,
            lat=fail_in.lat,
            lng=fail_in.lng,
            next_day=next_day,
        )
    )
    _event(
        session,
        d.case_id,
        "failed",
        principal,
        delivery_id=d.id,
        attempt=d.attempt,
        reason=fail_in.reason.value,
        next_day=next_day.isoformat(),
    )
    audit.record(
        session,
        action="delivery.fail",
        target_type="delivery",
        target_id=d.id or 0,
        detail={
            "attempt": d.attempt,
            "reason": fail_in.reason.value,
            "gps": fail_in.lat is not None,
        },
        **audit_kw,
    )
    await _tell(
        session,
        sms,
        settings,
        d,
        "delivery.failed",
        f"delivery:{d.id}:failed:{d.attempt}",
        reason=REASON_WORDS[fail_in.reason],
        day=f"{next_day.month}月{next_day.day}日",
    )
    d.attempt += 1
    d.status = S.pending
    d.day = next_day
    d.code_hash = ""
    d.code_expires_at = None
    d.updated_at = now
    session.add(d)
    return d


async def _supervisors(session: AsyncSession, d: Delivery) -> list[int]:
    """Supervisors bound to the issuing hall, the resident's community, or a site above."""
    up: set[int] = set()
    for site_id in (d.from_site_id, d.to_site_id):
        up |= {s.id or 0 for s in await site_ancestry(session, site_id)}
    rows = await session.exec(
        select(Staff.id)
        .join(StaffSite, col(StaffSite.staff_id) == col(Staff.id))
        .where(Staff.role == Role.supervisor, col(Staff.active), col(StaffSite.site_id).in_(up))
        .distinct()
    )
    return sorted(i for i in rows.all() if i is not None)


async def _wrong(
    session: AsyncSession,
    d: Delivery,
    *,
    what: str,
    tries: int,
    principal: Principal,
    outbox: Outbox,
    audit_kw: dict[str, Any],
) -> Invalid | Conflict:
    """Count a wrong entry; the error to answer, kept (the count stands though the proof is
    refused). At the limit the delivery locks and the supervisors are told."""
    field = "wrong_last4" if what == "last4" else "wrong_codes"
    count = getattr(d, field) + 1
    setattr(d, field, count)
    now = utcnow()
    d.updated_at = now
    audit.record(
        session,
        action=f"delivery.wrong_{what}",
        target_type="delivery",
        target_id=d.id or 0,
        detail={"count": count},
        **audit_kw,
    )
    if count < tries:
        session.add(d)
        return Invalid(f"delivery.{what}", left=tries - count).kept()
    d.status = S.locked
    d.locked_at = now
    d.code_hash = ""
    session.add(d)
    _event(session, d.case_id, "locked", principal, delivery_id=d.id, why=what)
    read = await read_one(session, d)
    for staff_id in await _supervisors(session, d):
        outbox.emit(DeliveryLocked(delivery=read), Audience.staff(staff_id))
    return Conflict("delivery.locked").kept()


def _image(raw: str, *, kinds: tuple[bytes, ...], max_bytes: int, error: Invalid) -> bytes:
    try:
        data = base64.b64decode(raw.split(",", 1)[-1], validate=True)
    except (binascii.Error, ValueError):
        raise error from None
    if not data or len(data) > max_bytes or not data.startswith(kinds):
        raise error
    return data


def _check_image(data: bytes, error: Invalid) -> tuple[int, int]:
    """The picture decodes (not only its first bytes) and is not a speck."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            size = im.size
    except Exception:
        raise error from None
    if min(size) < 16:
        raise error
    return size


async def _result(session: AsyncSession, proof: DeliveryProof) -> ProofResult:
    d = await session.get(Delivery, proof.delivery_id)
    assert d is not None
    return ProofResult(
        delivery_id=proof.delivery_id,
        status=DeliveryStatus(d.status),
        delivered_at=d.delivered_at,
        recipient=Recipient(proof.recipient),
        key=proof.key,
    )


async def _by_key(session: AsyncSession, key: str) -> DeliveryProof | None:
    return (await session.exec(select(DeliveryProof).where(DeliveryProof.key == key))).first()


async def submit_proof(
    session: AsyncSession,
    *,
    principal: Principal,
    settings: Settings,
    cipher: PiiCipher,
    sms: SmsGateway,
    files: Files,
    outbox: Outbox,
    delivery_id: int,
    proof_in: ProofIn,
    audit_kw: dict[str, Any],
) -> ProofResult:
    """Handed over at the door: the recipient's identity, the resident's code, a photo, a
    signature, where and when. A proof sent again under its key answers as the first did."""
    first = await _by_key(session, proof_in.key)
    if first is not None:
        d = await get(session, principal=principal, delivery_id=first.delivery_id)
        if first.delivery_id != delivery_id:
            raise Conflict("conflict")
        return await _result(session, first)
    d = await get(session, principal=principal, delivery_id=delivery_id, lock=True)
    code_ok = bool(d.code_hash) and hmac.compare_digest(
        d.code_hash, _code_hash(cipher, d.id or 0, proof_in.code)
    )
    if d.status == S.delivered:
        raise Conflict("delivery.code_used") if code_ok else _state(d)
    if d.status == S.locked:
        raise Conflict("delivery.locked")
    if d.status != S.dispatched:
        raise _state(d)
    # The input first: a bad photo or a missing proxy name changes nothing, not even a count.
    proxy = proof_in.recipient is Recipient.proxy
    if proxy and not (proof_in.proxy_name and proof_in.proxy_relation):
        raise Invalid("delivery.proxy")
    max_b = settings.delivery_photo_max_bytes
    bad_photo = Invalid("delivery.photo", max_kb=max_b // 1000)
    bad_sign = Invalid("delivery.signature")
    photo = _image(proof_in.photo, kinds=(JPEG, PNG), max_bytes=max_b, error=bad_photo)
    signature = _image(proof_in.signature, kinds=(PNG,), max_bytes=400_000, error=bad_sign)
    await asyncio.to_thread(_check_image, photo, bad_photo)
    await asyncio.to_thread(_check_image, signature, bad_sign)
    kw = {"principal": principal, "outbox": outbox, "audit_kw": audit_kw}
    if not proxy:
        who = await session.get(Resident, d.resident_id)
        assert who is not None
        last4 = proof_in.last4.upper()
        if not hmac.compare_digest(who.id_masked[-4:].upper(), last4):
            raise await _wrong(session, d, what="last4", tries=settings.delivery_last4_tries, **kw)
    if not code_ok:
        raise await _wrong(session, d, what="code", tries=settings.delivery_code_tries, **kw)
    if d.code_expires_at is not None and d.code_expires_at < utcnow():
        raise Conflict("delivery.code_expired")
    days = settings.delivery_proof_retention_days
    photo_ext = "png" if photo.startswith(PNG) else "jpg"
    photo_key = f"r{days}/c{d.case_id}/{uuid.uuid4().hex}.{photo_ext}"
    signature_key = f"r{days}/c{d.case_id}/{uuid.uuid4().hex}.png"
    await files.put_bytes(photo_key, photo, "image/png" if photo_ext == "png" else "image/jpeg")
    await files.put_bytes(signature_key, signature, "image/png")
    now = utcnow()
    proof = DeliveryProof(
        key=proof_in.key,
        delivery_id=d.id or 0,
        courier_id=principal.staff_id,
        recipient=proof_in.recipient,
        proxy_name=proof_in.proxy_name if proxy else "",
        proxy_id_last4=proof_in.last4.upper() if proxy else "",
        proxy_relation=proof_in.proxy_relation if proxy else "",
        photo_key=photo_key,
        signature_key=signature_key,
        lat=proof_in.lat,
        lng=proof_in.lng,
        accuracy_m=proof_in.accuracy_m,
        captured_at=proof_in.captured_at.astimezone(dt.UTC),
        received_at=now,
    )
    try:
        async with session.begin_nested():
            session.add(proof)
            await session.flush()
    except IntegrityError:
        # The same proof arrived twice at once (the phone retried while the first was on its
        # way): the first one stands, and this answer is its answer. Its files are orphans the
        # store's sweep removes.
        again = await _by_key(session, proof_in.key)
        if again is None:
            raise _state(d) from None
        return await _result(session, again)
    d.status = S.delivered
    d.delivered_at = now
    d.updated_at = now
    session.add(d)
    _event(
        session,
        d.case_id,
        "delivered",
        principal,
        delivery_id=d.id,
        attempt=d.attempt,
        recipient=proof_in.recipient.value,
        relation=proof_in.proxy_relation if proxy else "",
    )
    audit.record(
        session,
        action="delivery.proof",
        target_type="delivery",
        target_id=d.id or 0,
        detail={"recipient": proof_in.recipient.value, "gps": True, "key": proof_in.key},
        **audit_kw,
    )
    await _home_delivered(session, d, principal)
    who_words = f"代收人{proof_in.proxy_name}（{proof_in.proxy_relation}）" if proxy else "您本人"
    await _tell(
        session, sms, settings, d, "delivery.delivered", f"delivery:{d.id}:delivered", who=who_words
    )
    return await _result(session, proof)


async def _home_delivered(session: AsyncSession, d: Delivery, principal: Principal) -> None:
    """A home-service request whose case was handled ends here: its result reached the
    resident (the coordinator no longer marks it by hand)."""
    req = (
        await session.exec(
            select(HomeRequest).where(
                HomeRequest.case_id == d.case_id, HomeRequest.status == HomeStatus.handled
            )
        )
    ).first()
    if req is None:
        return
    now = utcnow()
    req.status = HomeStatus.delivered
    req.updated_at = now
    req.closed_at = now
    session.add(req)
    session.add(
        CaseEvent(
            case_id=d.case_id,
            kind="home.delivered",
            actor_id=principal.staff_fk,
            data={"request_id": req.id, "delivery_id": d.id},
            at=now,
        )
    )


async def release(
    session: AsyncSession,
    *,
    principal: Principal,
    settings: Settings,
    delivery_id: int,
    audit_kw: dict[str, Any],
) -> Delivery:
    """A supervisor checked with the resident: the delivery goes out again (a new code at
    dispatch), its wrong entries forgotten."""
    d = await get(session, principal=principal, delivery_id=delivery_id, lock=True)
    if d.status != S.locked:
        raise _state(d)
    d.status = S.pending
    d.wrong_last4 = d.wrong_codes = 0
    d.locked_at = None
    d.day = max(d.day, today(settings))
    d.updated_at = utcnow()
    session.add(d)
    _event(session, d.case_id, "released", principal, delivery_id=d.id)
    audit.record(
        session, action="delivery.release", target_type="delivery", target_id=d.id or 0, **audit_kw
    )
    return d


# -- the proof, as the case record shows it


async def proof(
    session: AsyncSession,
    *,
    principal: Principal,
    files: Files,
    delivery_id: int,
    audit_kw: dict[str, Any],
) -> ProofRead:
    """The proof of a delivery with short-lived links to its photo and signature; every
    reading is audited."""
    d = await get(session, principal=principal, delivery_id=delivery_id)
    p = (
        await session.exec(select(DeliveryProof).where(DeliveryProof.delivery_id == delivery_id))
    ).first()
    if p is None:
        raise NotFound(f"配送单 {delivery_id} 的签收凭证", f"The proof of delivery {delivery_id}")
    courier = await session.get(Staff, p.courier_id)
    audit.record(
        session,
        action="delivery.proof.view",
        target_type="delivery",
        target_id=delivery_id,
        detail={"case_id": d.case_id},
        **audit_kw,
    )
    photo_type = "image/png" if p.photo_key.endswith(".png") else "image/jpeg"
    return ProofRead(
        delivery_id=delivery_id,
        case_id=d.case_id,
        recipient=Recipient(p.recipient),
        proxy_name=p.proxy_name,
        proxy_id_last4=p.proxy_id_last4,
        proxy_relation=p.proxy_relation,
        courier_name=courier.display_name if courier else "",
        lat=p.lat,
        lng=p.lng,
        accuracy_m=p.accuracy_m,
        captured_at=p.captured_at,
        received_at=p.received_at,
        photo_url=await files.download_url(
            p.photo_key,
            expires=PROOF_LINK_SECONDS,
            content_type=photo_type,
            filename=f"delivery-{delivery_id}-photo.{p.photo_key.rsplit('.', 1)[-1]}",
        ),
        signature_url=await files.download_url(
            p.signature_key,
            expires=PROOF_LINK_SECONDS,
            content_type="image/png",
            filename=f"delivery-{delivery_id}-signature.png",
        ),
    )


async def proof_keys(session: AsyncSession) -> set[str]:
    """Keys of stored proof files: never orphans for the object store's sweep."""
    rows = await session.exec(select(DeliveryProof.photo_key, DeliveryProof.signature_key))
    return {k for pair in rows.all() for k in pair}


# -- the resident's view


async def resident_list(
    session: AsyncSession, *, principal: Principal
) -> list[ResidentDeliveryRead]:
    rows = (
        await session.exec(
            select(Delivery)
            .where(Delivery.resident_id == principal.resident_id)
            .order_by(col(Delivery.id).desc())
            .limit(50)
        )
    ).all()
    return [await _resident_read(session, r) for r in rows]


async def resident_get(
    session: AsyncSession, *, principal: Principal, delivery_id: int
) -> ResidentDeliveryRead:
    d = await get(session, principal=principal, delivery_id=delivery_id)
    return await _resident_read(session, d)


async def _resident_read(session: AsyncSession, d: Delivery) -> ResidentDeliveryRead:
    r = await read_one(session, d)
    p = (
        await session.exec(select(DeliveryProof.recipient).where(DeliveryProof.delivery_id == d.id))
    ).first()
    return ResidentDeliveryRead(
        id=r.id,
        case_id=r.case_id,
        item_name=r.item_name,
        item_name_en=r.item_name_en,
        status=r.status,
        day=r.day,
        courier_name=r.courier_name,
        address_masked=r.address_masked,
        attempts=r.attempts,
        delivered_at=r.delivered_at,
        recipient=Recipient(p) if p else None,
    )
