"""The licence register: licence types and their reminder policies, licences issued by completed
cases, renewals, the staff's view of the register, and residents stopping their reminders.

Imports of existing licences are in outreach/licence_import.py; the reminders themselves in
outreach/reminders.py. docs/reminders.md describes the whole.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Sequence
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy import delete, exists, func, or_, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core import audit, idnumber
from core.access import Principal, area_sites, require_licence
from core.db import utcnow
from core.errors import Invalid, NotFound
from core.models import Case, CaseEvent, CaseStatus, Resident, ServiceItem, Site
from core.pii import PiiCipher
from core.residents import mask_phone
from core.settings import Settings
from outreach.models import (
    Licence,
    LicencePage,
    LicenceRead,
    LicenceReminder,
    LicenceReminderOffset,
    LicenceSource,
    LicenceStatus,
    LicenceType,
    LicenceTypeRead,
    ReminderOptOut,
    ReminderRead,
    ReminderReason,
    ReminderStatus,
    RenewWays,
    ResidentLicenceRead,
    ResidentRemindersRead,
    SmsOutbox,
)

log = logging.getLogger("cloudwindow.licences")

# Licences made from completed cases per round of the job: a day's worth in a district.
CASE_BATCH = 500
MAX_PAGE = 200
# The predicates of the partial indexes, spelled as they are (PostgreSQL uses such an index
# only when the query states its predicate; a bound parameter would not do).
ACTIVE = sa.text("licence.status = 'active'")
SCHEDULED = sa.text("licence_reminder.status = 'scheduled'")


def _insert(session: AsyncSession, table: Any) -> Any:
    dialect = session.bind.dialect.name if session.bind else "sqlite"
    return (postgresql if dialect == "postgresql" else sqlite).insert(table)


def add_months(day: dt.date, months: int) -> dt.date:
    """The same day `months` later (the last day of a shorter month)."""
    y, m = divmod(day.month - 1 + months, 12)
    year, month = day.year + y, m + 1
    for d in (day.day, 30, 29, 28):
        try:
            return dt.date(year, month, d)
        except ValueError:
            continue
    raise ValueError(day)  # unreachable: every month has a 28th


def local_date(at: dt.datetime, settings: Settings) -> dt.date:
    return at.astimezone(ZoneInfo(settings.timezone)).date()


def _nf(licence_id: int) -> NotFound:
    return NotFound(f"证照 {licence_id}", f"Licence {licence_id}")


# -- types and policies


async def offsets_of(session: AsyncSession, type_ids: Iterable[int]) -> dict[int, list[int]]:
    """Each type's reminder offsets, earliest first."""
    ids = sorted(set(type_ids))
    out: dict[int, list[int]] = {i: [] for i in ids}
    if not ids:
        return out
    rows = await session.exec(
        select(LicenceReminderOffset)
        .where(col(LicenceReminderOffset.type_id).in_(ids))
        .order_by(col(LicenceReminderOffset.offset_days))
    )
    for r in rows.all():
        out[r.type_id].append(r.offset_days)
    return out


async def list_types(session: AsyncSession) -> list[LicenceTypeRead]:
    types = list((await session.exec(select(LicenceType).order_by(col(LicenceType.code)))).all())
    offsets = await offsets_of(session, [t.id or 0 for t in types])
    items: dict[int, list[str]] = {}
    rows = await session.exec(
        select(ServiceItem.licence_type_id, ServiceItem.code)
        .where(col(ServiceItem.licence_type_id).is_not(None))
        .order_by(col(ServiceItem.code))
    )
    for type_id, code in rows.all():
        items.setdefault(type_id or 0, []).append(code)
    return [
        LicenceTypeRead(
            id=t.id or 0,
            code=t.code,
            name=t.name,
            name_en=t.name_en,
            validity_months=t.validity_months,
            active=t.active,
            offsets=offsets.get(t.id or 0, []),
            items=items.get(t.id or 0, []),
        )
        for t in types
    ]


async def ensure_type(
    session: AsyncSession,
    *,
    code: str,
    name: str,
    validity_months: int,
    offsets: Sequence[int],
    name_en: str = "",
) -> LicenceType:
    """The type with this code, created with its policy if missing (demo data, tests)."""
    row = (await session.exec(select(LicenceType).where(LicenceType.code == code))).first()
    if row is not None:
        return row
    row = LicenceType(code=code, name=name, name_en=name_en, validity_months=validity_months)
    session.add(row)
    await session.flush()
    session.add_all(LicenceReminderOffset(type_id=row.id or 0, offset_days=d) for d in offsets)
    await session.flush()
    return row


async def set_policy(
    *,
    session: AsyncSession,
    principal: Principal,
    type_id: int,
    offsets: list[int],
    request_id: str = "",
    ip: str = "",
) -> LicenceTypeRead:
    """Replace a type's reminder offsets (audited). Reminders already due keep their rows."""
    row = await session.get(LicenceType, type_id)
    if row is None:
        raise NotFound(f"证照类型 {type_id}", f"Licence type {type_id}")
    before = (await offsets_of(session, [type_id]))[type_id]
    await session.exec(
        delete(LicenceReminderOffset).where(  # type: ignore[call-overload]
            col(LicenceReminderOffset.type_id) == type_id
        )
    )
    session.add_all(LicenceReminderOffset(type_id=type_id, offset_days=d) for d in offsets)
    audit.record(
        session,
        actor=principal,
        action="licence_type.policy",
        target_type="licence_type",
        target_id=type_id,
        detail={"before": before, "after": offsets},
        request_id=request_id,
        ip=ip,
    )
    await session.flush()
    return next(t for t in await list_types(session) if t.id == type_id)


# -- renewals, and licences issued by completed cases


async def renew_older(
    session: AsyncSession, *, pairs: set[tuple[int, int]], now: dt.datetime
) -> int:
    """For each (resident, type), keep the licence that expires last active; the others are
    renewed by it and their reminders not yet sent are cancelled. Returns how many."""
    if not pairs:
        return 0
    rows = await session.exec(
        select(Licence.id, Licence.resident_id, Licence.type_id)
        .where(
            ACTIVE,
            tuple_(col(Licence.resident_id), col(Licence.type_id)).in_(sorted(pairs)),
        )
        .order_by(col(Licence.expires_on).desc(), col(Licence.id).desc())
    )
    latest: dict[tuple[int, int], int] = {}
    renewed: dict[int, list[int]] = {}
    for licence_id, resident_id, type_id in rows.all():
        key = (resident_id, type_id)
        if key not in latest:
            latest[key] = licence_id or 0
        else:
            renewed.setdefault(latest[key], []).append(licence_id or 0)
    for newer, older in renewed.items():
        await session.exec(
            update(Licence)  # type: ignore[call-overload]
            .where(col(Licence.id).in_(older))
            .values(status=LicenceStatus.renewed, renewed_by=newer, renewed_at=now)
        )
    old = [i for ids in renewed.values() for i in ids]
    await cancel_scheduled(session, licence_ids=old, reason=ReminderReason.renewed)
    return len(old)


async def cancel_scheduled(
    session: AsyncSession,
    *,
    reason: ReminderReason,
    licence_ids: Sequence[int] | None = None,
    resident_ids: Sequence[int] | None = None,
    type_id: int | None = None,
) -> int:
    """Reminders not yet handed to the SMS outbox stop, with the reason."""
    of = select(Licence.id)
    if licence_ids is not None:
        if not licence_ids:
            return 0
        of = of.where(col(Licence.id).in_(licence_ids))
    if resident_ids is not None:
        if not resident_ids:
            return 0
        of = of.where(col(Licence.resident_id).in_(resident_ids))
    if type_id is not None:
        of = of.where(Licence.type_id == type_id)
    done = await session.exec(
        update(LicenceReminder)  # type: ignore[call-overload]
        .where(SCHEDULED, col(LicenceReminder.licence_id).in_(of))
        .values(status=ReminderStatus.cancelled, reason=reason)
        .execution_options(synchronize_session=False)
    )
    return int(done.rowcount or 0)


async def issue_from_cases(
    session: AsyncSession, *, settings: Settings, now: dt.datetime
) -> dict[str, int]:
    """Licences for completed cases whose item yields one and that have none yet.

    Idempotent (one licence per case: the unique case_id), so any node may run it any number
    of times. A case completed longer ago than the lookback is left alone.
    """
    since = now - dt.timedelta(days=settings.licence_case_lookback_days)
    has_licence = exists().where(col(Licence.case_id) == col(Case.id))
    rows = await session.exec(
        select(
            Case.id,
            Case.number,
            Case.resident_id,
            Case.site_id,
            Case.closed_at,
            LicenceType.id,
            LicenceType.validity_months,
        )
        .join(ServiceItem, col(ServiceItem.id) == col(Case.item_id))
        .join(LicenceType, col(LicenceType.id) == col(ServiceItem.licence_type_id))
        .where(
            Case.status == CaseStatus.completed,
            col(Case.resident_id).is_not(None),
            col(Case.closed_at) >= since,
            ~has_licence,
        )
        .order_by(col(Case.closed_at), col(Case.id))
        .limit(CASE_BATCH)
    )
    values = []
    for case_id, number, resident_id, site_id, closed_at, type_id, months in rows.all():
        issued = local_date(closed_at or now, settings)
        values.append(
            {
                "type_id": type_id,
                "number": number,
                "resident_id": resident_id,
                "site_id": site_id,
                "issued_on": issued,
                "expires_on": add_months(issued, months),
                "status": LicenceStatus.active,
                "source": LicenceSource.case,
                "case_id": case_id,
                "created_at": now,
            }
        )
    if not values:
        return {"issued": 0, "renewed": 0}
    stmt = (
        _insert(session, Licence)
        .values(values)
        .on_conflict_do_nothing()
        .returning(Licence.id, Licence.case_id, Licence.resident_id, Licence.type_id)
    )
    made = list((await session.exec(stmt)).all())  # type: ignore[call-overload]
    by_case = {v["case_id"]: v for v in values}
    for _licence_id, case_id, _resident_id, _type_id in made:
        v = by_case[case_id]
        session.add(
            CaseEvent(
                case_id=case_id,
                at=now,
                kind="licences.issued",
                data={"number": v["number"], "expires_on": v["expires_on"].isoformat()},
            )
        )
    renewed = await renew_older(session, pairs={(r[2], r[3]) for r in made}, now=now)
    return {"issued": len(made), "renewed": renewed}


# -- the register as staff see it


def _scope_filter(principal: Principal) -> Any:
    """Licences of the caller's area, as core.access.may_see_licence decides for one."""
    area = area_sites(principal)
    if area is None:
        return sa.true()
    return or_(col(Licence.site_id).in_(area), col(Resident.community_id).in_(area))


async def _delivery(
    session: AsyncSession, keys: Sequence[str]
) -> dict[str, tuple[str, str, dt.datetime | None]]:
    """The outbox's status, delivery report and delivery time of each message key."""
    keys = [k for k in keys if k]
    if not keys:
        return {}
    rows = await session.exec(
        select(SmsOutbox.key, SmsOutbox.status, SmsOutbox.delivery, SmsOutbox.delivered_at).where(
            col(SmsOutbox.key).in_(keys)
        )
    )
    return {k: (s, d, at) for k, s, d, at in rows.all()}


async def reminders_of(
    session: AsyncSession, licence_ids: Sequence[int]
) -> dict[int, list[ReminderRead]]:
    """Each licence's reminders, earliest first, with their delivery as the outbox knows it."""
    out: dict[int, list[ReminderRead]] = {i: [] for i in licence_ids}
    if not licence_ids:
        return out
    rows = list(
        (
            await session.exec(
                select(LicenceReminder)
                .where(col(LicenceReminder.licence_id).in_(licence_ids))
                .order_by(col(LicenceReminder.due_on), col(LicenceReminder.id))
            )
        ).all()
    )
    delivery = await _delivery(session, [r.sms_key for r in rows])
    for r in rows:
        sms_status, report, at = delivery.get(r.sms_key, (None, None, None))
        read = ReminderRead.model_validate(r, from_attributes=True)
        read.sms_status, read.delivery, read.delivered_at = sms_status, report or None, at
        out[r.licence_id].append(read)
    return out


def _read(
    licence: Licence, kind: LicenceType, resident: Resident, site: Site | None
) -> LicenceRead:
    return LicenceRead(
        id=licence.id or 0,
        type_id=kind.id or 0,
        type_code=kind.code,
        type_name=kind.name,
        type_name_en=kind.name_en,
        number=licence.number,
        resident_id=resident.id or 0,
        holder_name=resident.name,
        holder_id_masked=resident.id_masked,
        holder_phone_masked=mask_phone(resident.phone),
        site_id=licence.site_id,
        site_name=site.name if site else "",
        issued_on=licence.issued_on,
        expires_on=licence.expires_on,
        status=LicenceStatus(licence.status),
        source=LicenceSource(licence.source),
        case_id=licence.case_id,
        renewed_by=licence.renewed_by,
    )


async def list_licences(
    *,
    session: AsyncSession,
    principal: Principal,
    cipher: PiiCipher,
    today: dt.date,
    type_id: int | None = None,
    status: LicenceStatus | None = None,
    expiring_days: int | None = None,
    expired: bool = False,
    q: str = "",
    limit: int = 50,
    offset: int = 0,
    request_id: str = "",
    ip: str = "",
) -> LicencePage:
    """The register of the caller's area, soonest expiry first.

    `q` is a licence number, a holder's name, or an ID number (found by its keyed hash; such a
    search is audited, as a lookup of the resident is).
    """
    base = (
        select(Licence, LicenceType, Resident, Site)
        .join(LicenceType, col(LicenceType.id) == col(Licence.type_id))
        .join(Resident, col(Resident.id) == col(Licence.resident_id))
        .outerjoin(Site, col(Site.id) == col(Licence.site_id))
        .where(_scope_filter(principal))
    )
    if type_id is not None:
        base = base.where(Licence.type_id == type_id)
    if status is not None:
        base = base.where(Licence.status == status)
    if expiring_days is not None:
        base = base.where(
            col(Licence.expires_on) >= today,
            col(Licence.expires_on) <= today + dt.timedelta(days=expiring_days),
        )
    if expired:
        base = base.where(col(Licence.expires_on) < today)
    q = q.strip()
    if q:
        base = base.where(_search(q, cipher))
        if _looks_like_id(q):
            audit.record(
                session,
                actor=principal,
                action="licence.search_id",
                detail={"id_masked": idnumber.mask(q.upper())},
                request_id=request_id,
                ip=ip,
            )
    total = (await session.exec(select(func.count()).select_from(base.subquery()))).one()
    rows = await session.exec(
        base.order_by(col(Licence.expires_on), col(Licence.id))
        .limit(min(limit, MAX_PAGE))
        .offset(offset)
    )
    items = [_read(lic, kind, res, site) for lic, kind, res, site in rows.all()]
    return LicencePage(items=items, total=int(total))


def _looks_like_id(q: str) -> bool:
    return len(q) == 18 and q[:17].isdigit()


def _search(q: str, cipher: PiiCipher) -> Any:
    if _looks_like_id(q):
        try:
            number = idnumber.parse(q).number
        except Invalid:
            return sa.false()
        return Resident.id_hash == cipher.lookup_hash(number)
    like = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return or_(
        col(Licence.number).like(f"{like}%", escape="\\"),
        col(Resident.name).like(f"%{like}%", escape="\\"),
    )


async def get_licence(
    *, session: AsyncSession, principal: Principal, licence_id: int
) -> LicenceRead:
    """One licence with its reminders and their delivery, if it is in the caller's area."""
    licence = await session.get(Licence, licence_id)
    if licence is None:
        raise _nf(licence_id)
    await require_licence(session, principal, licence)
    kind = await session.get(LicenceType, licence.type_id)
    resident = await session.get(Resident, licence.resident_id)
    site = await session.get(Site, licence.site_id)
    assert kind is not None and resident is not None
    out = _read(licence, kind, resident, site)
    out.reminders = (await reminders_of(session, [licence_id]))[licence_id]
    return out


# -- residents stopping (and restarting) their reminders


async def stops_of(session: AsyncSession, resident_id: int) -> tuple[bool, list[int]]:
    """Whether every type is stopped, and the types stopped one by one."""
    rows = await session.exec(
        select(ReminderOptOut.type_id).where(ReminderOptOut.resident_id == resident_id)
    )
    types = list(rows.all())
    return None in types, sorted(t for t in types if t is not None)


async def stop(
    session: AsyncSession,
    *,
    resident_ids: Sequence[int],
    type_id: int | None,
    source: str,
    now: dt.datetime,
) -> int:
    """Stop reminders of one type (or of every type) for these residents; idempotent.

    Returns how many reminders not yet sent were cancelled."""
    if not resident_ids:
        return 0
    where = (
        col(ReminderOptOut.type_id).is_(None)
        if type_id is None
        else col(ReminderOptOut.type_id).is_not(None)
    )
    elements = ["resident_id"] if type_id is None else ["resident_id", "type_id"]
    await session.exec(
        _insert(session, ReminderOptOut)  # type: ignore[call-overload]
        .values(
            [
                {"resident_id": r, "type_id": type_id, "source": source, "created_at": now}
                for r in resident_ids
            ]
        )
        .on_conflict_do_nothing(index_elements=elements, index_where=where)
    )
    return await cancel_scheduled(
        session, resident_ids=resident_ids, type_id=type_id, reason=ReminderReason.opted_out
    )


async def restart(session: AsyncSession, *, resident_id: int, type_id: int | None) -> None:
    """Send reminders again: of one type, or (no type) lift the stop of every type."""
    which = (
        col(ReminderOptOut.type_id).is_(None)
        if type_id is None
        else col(ReminderOptOut.type_id) == type_id
    )
    await session.exec(
        delete(ReminderOptOut).where(  # type: ignore[call-overload]
            col(ReminderOptOut.resident_id) == resident_id, which
        )
    )


async def set_stopped(
    *,
    session: AsyncSession,
    principal: Principal,
    type_id: int | None,
    stopped: bool,
    now: dt.datetime,
    today: dt.date,
    request_id: str = "",
    ip: str = "",
) -> ResidentRemindersRead:
    """A resident, on their own page, stops or restarts reminders (audited)."""
    resident_id = principal.resident_id
    assert resident_id is not None
    if type_id is not None and await session.get(LicenceType, type_id) is None:
        raise NotFound(f"证照类型 {type_id}", f"Licence type {type_id}")
    if stopped:
        await stop(session, resident_ids=[resident_id], type_id=type_id, source="page", now=now)
    else:
        await restart(session, resident_id=resident_id, type_id=type_id)
    audit.record(
        session,
        actor=principal,
        action="reminder.stop" if stopped else "reminder.restart",
        target_type="licence_type",
        target_id=type_id if type_id is not None else "all",
        request_id=request_id,
        ip=ip,
    )
    return await resident_view(session=session, resident_id=resident_id, today=today)


def _phone(raw: str) -> str | None:
    digits = raw.strip()
    if digits.isdigit() and len(digits) == 13 and digits.startswith("86"):
        digits = digits[2:]  # as some carriers give the sender: 86 without the plus
    try:
        return idnumber.normalize_phone(digits)
    except Invalid:
        return None


async def opt_out_phone(session: AsyncSession, *, phone: str) -> int:
    """A reply with the carrier's unsubscribe keyword: every resident registered with this
    phone stops every reminder. Returns how many residents that was (0: unknown number)."""
    number = _phone(phone)
    if number is None:
        return 0
    rows = await session.exec(select(Resident.id).where(Resident.phone == number))
    ids = sorted(i for i in rows.all() if i is not None)
    if not ids:
        return 0
    cancelled = await stop(session, resident_ids=ids, type_id=None, source="sms", now=utcnow())
    for resident_id in ids:
        audit.record(
            session,
            actor=None,
            action="reminder.stop",
            target_type="resident",
            target_id=resident_id,
            detail={"source": "sms", "cancelled": cancelled},
        )
    return len(ids)


async def resident_view(
    *, session: AsyncSession, resident_id: int, today: dt.date
) -> ResidentRemindersRead:
    """A resident's own licences (in force, or expired and not renewed), with reminders."""
    all_stopped, types = await stops_of(session, resident_id)
    rows = list(
        (
            await session.exec(
                select(Licence, LicenceType)
                .join(LicenceType, col(LicenceType.id) == col(Licence.type_id))
                .where(Licence.resident_id == resident_id, ACTIVE)
                .order_by(col(Licence.expires_on), col(Licence.id))
            )
        ).all()
    )
    ids = [lic.id or 0 for lic, _ in rows]
    reminders = await reminders_of(session, ids)
    offsets = await offsets_of(session, [kind.id or 0 for _, kind in rows])
    ways = await renew_ways(session, [kind.id or 0 for _, kind in rows])
    out = []
    for lic, kind in rows:
        stopped = all_stopped or (kind.id in types)
        done = {r.offset_days for r in reminders.get(lic.id or 0, [])}
        upcoming = [
            lic.expires_on + dt.timedelta(days=d)
            for d in offsets.get(kind.id or 0, [])
            if d not in done and lic.expires_on + dt.timedelta(days=d) >= today
        ]
        out.append(
            ResidentLicenceRead(
                id=lic.id or 0,
                type_id=kind.id or 0,
                type_name=kind.name,
                type_name_en=kind.name_en,
                number_masked=_mask_number(lic.number),
                expires_on=lic.expires_on,
                status=LicenceStatus(lic.status),
                days_left=(lic.expires_on - today).days,
                stopped=stopped,
                next_reminder=None if stopped or not upcoming else min(upcoming),
                reminders=reminders.get(lic.id or 0, []),
                renew=ways.get(kind.id or 0),
            )
        )
    return ResidentRemindersRead(licences=out, all_stopped=all_stopped, stopped_types=types)


async def renew_ways(session: AsyncSession, type_ids: Sequence[int]) -> dict[int, RenewWays]:
    """For each type, the active item that issues it (the first by code)."""
    if not type_ids:
        return {}
    rows = await session.exec(
        select(ServiceItem)
        .where(col(ServiceItem.licence_type_id).in_(sorted(set(type_ids))), col(ServiceItem.active))
        .order_by(col(ServiceItem.code))
    )
    out: dict[int, RenewWays] = {}
    for item in rows.all():
        out.setdefault(
            item.licence_type_id or 0,
            RenewWays(
                item_code=item.code,
                item_name=item.name,
                item_name_en=item.name_en,
                remote=item.remote_capable,
                home_visit=item.home_visit,
            ),
        )
    return out


def _mask_number(number: str) -> str:
    """Enough of a licence number to recognise it, not to copy it."""
    if len(number) <= 4:
        return number
    return "*" * min(len(number) - 4, 8) + number[-4:]
