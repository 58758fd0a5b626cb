"""Residents: registered once by ID number, found by keyed hash, shown masked."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core import audit, idnumber
from core.access import Principal
from core.db import utcnow
from core.errors import Conflict, NotFound, RateLimited
from core.models import (
    AuditEntry,
    Case,
    CaseStatus,
    IdNumberCheck,
    PastCase,
    Resident,
    ResidentCreate,
    ResidentFound,
    ResidentRead,
    ResidentSummary,
    ServiceItem,
    Site,
    SiteKind,
)
from core.pii import PiiCipher
from core.settings import Settings

# Audit actions of a lookup by ID number: counted together for the per-worker limit.
LOOKUP_ACTIONS = ("resident.lookup", "resident.lookup_miss")

# Residents this old or older, and disabled residents, are served first in the queue.
PRIORITY_AGE = 80
ELDERLY_AGE = 60


def age_of(birth: dt.date, today: dt.date) -> int:
    return today.year - birth.year - ((today.month, today.day) < (birth.month, birth.day))


def read(r: Resident, *, today: dt.date | None = None) -> ResidentRead:
    assert r.id is not None
    age = age_of(r.birth_date, today or dt.date.today())
    return ResidentRead(
        id=r.id,
        name=r.name,
        id_masked=r.id_masked,
        birth_date=r.birth_date,
        age=age,
        sex=r.sex,
        phone=r.phone,
        address=r.address,
        community_id=r.community_id,
        disabled=r.disabled,
        pregnant=r.pregnant,
        elderly=age >= ELDERLY_AGE,
        priority=age >= PRIORITY_AGE or r.disabled,
    )


def mask_phone(phone: str) -> str:
    return phone[:3] + "****" + phone[-4:] if len(phone) >= 7 else ""


def found(r: Resident, *, today: dt.date | None = None) -> ResidentFound:
    """The answer to a lookup: name and masks to confirm the person at the counter, the age
    and priority the queue needs; no address, no birth date, no health or disability."""
    full = read(r, today=today)
    return ResidentFound(
        id=full.id,
        name=full.name,
        id_masked=full.id_masked,
        age=full.age,
        phone_masked=mask_phone(r.phone),
        elderly=full.elderly,
        priority=full.priority,
    )


async def lookups_since(session: AsyncSession, actor_id: int, since: dt.datetime) -> int:
    """Lookups by ID number (found or not) one staff member made since a time."""
    q = select(func.count()).where(
        col(AuditEntry.action).in_(LOOKUP_ACTIONS),
        AuditEntry.actor_id == actor_id,
        col(AuditEntry.at) >= since,
    )
    return (await session.exec(q)).one()


def mask_address(address: str) -> str:
    """The street, never the door: enough to say where a resident lives, not to find them."""
    if not address:
        return ""
    keep = max(2, min(8, len(address) // 2))
    return address[:keep] + "****"


# Earlier cases shown beside a call: enough to spot a repeat visit, not a full history.
EARLIER_CASES = 10


async def summary(
    *, session: AsyncSession, resident: Resident, exclude_case_id: int | None, today: dt.date
) -> ResidentSummary:
    full = read(resident, today=today)
    community = await session.get(Site, resident.community_id) if resident.community_id else None
    rows = await session.exec(
        select(Case, ServiceItem)
        .join(ServiceItem, col(ServiceItem.id) == col(Case.item_id))
        .where(Case.resident_id == resident.id, col(Case.id) != (exclude_case_id or 0))
        .order_by(col(Case.created_at).desc(), col(Case.id).desc())
        .limit(EARLIER_CASES)
    )
    return ResidentSummary(
        id=full.id,
        name=full.name,
        id_masked=full.id_masked,
        age=full.age,
        sex=full.sex,
        phone_masked=mask_phone(resident.phone),
        address_masked=mask_address(resident.address),
        community_id=resident.community_id,
        community_name=community.name if community else None,
        elderly=full.elderly,
        priority=full.priority,
        disabled=resident.disabled,
        earlier_cases=[
            PastCase(
                id=c.id or 0,
                number=c.number,
                item_code=i.code,
                item_name=i.name,
                status=CaseStatus(c.status),
                created_at=c.created_at,
                closed_at=c.closed_at,
            )
            for c, i in rows.all()
        ],
    )


def _context(id_hash: str) -> str:
    # Binds each ciphertext to its row's lookup hash, so a ciphertext copied to another row fails.
    return f"resident:{id_hash}"


def seal_id(cipher: PiiCipher, number: str, id_hash: str) -> str:
    """The id_cipher of a resident row with this lookup hash (registering many at once)."""
    return cipher.encrypt(number, context=_context(id_hash))


async def create(
    *, session: AsyncSession, cipher: PiiCipher, resident_in: ResidentCreate, created_by: int | None
) -> Resident:
    """Register a resident; Conflict if the ID number is known.

    The conflict does not name the existing record: a caller who holds the ID card finds it
    with a lookup, which is audited and rate-limited."""
    parsed = idnumber.parse(resident_in.id_number)
    id_hash = cipher.lookup_hash(parsed.number)
    existing = (await session.exec(select(Resident.id).where(Resident.id_hash == id_hash))).first()
    if existing is not None:
        raise Conflict(
            what="该身份证号的居民",
            what_en="A resident with this ID number",
        )
    if resident_in.community_id is not None:
        site = await session.get(Site, resident_in.community_id)
        if site is None or site.kind != SiteKind.community:
            raise NotFound(
                f"社区 {resident_in.community_id}", f"Community {resident_in.community_id}"
            )
    resident = Resident(
        name=resident_in.name,
        id_cipher=cipher.encrypt(parsed.number, context=_context(id_hash)),
        id_hash=id_hash,
        id_masked=parsed.masked,
        birth_date=parsed.birth_date,
        sex=parsed.sex,
        phone=resident_in.phone,
        address=resident_in.address,
        community_id=resident_in.community_id,
        disabled=resident_in.disabled,
        pregnant=resident_in.pregnant,
        created_by=created_by,
    )
    session.add(resident)
    await session.flush()
    return resident


async def find_by_number(*, session: AsyncSession, cipher: PiiCipher, id_number: str) -> Resident:
    parsed = idnumber.parse(id_number)
    row = (
        await session.exec(
            select(Resident).where(Resident.id_hash == cipher.lookup_hash(parsed.number))
        )
    ).first()
    if row is None:
        raise NotFound("居民", "Resident")
    return row


async def lookup(
    *,
    session: AsyncSession,
    cipher: PiiCipher,
    settings: Settings,
    principal: Principal,
    id_number: str,
    request_id: str = "",
    ip: str = "",
) -> ResidentFound:
    """Find a resident by the ID number on the card in front of the caller.

    Every lookup is audited, found or not, and a staff member may make only so many an hour,
    so the register cannot be walked number by number."""
    now = utcnow()
    made = await lookups_since(session, principal.staff_id, now - dt.timedelta(hours=1))
    if made >= settings.resident_lookups_per_hour:
        raise RateLimited(retry_after=3600)
    kw: dict[str, Any] = {"actor": principal, "request_id": request_id, "ip": ip}
    try:
        row = await find_by_number(session=session, cipher=cipher, id_number=id_number)
    except NotFound as e:
        masked = idnumber.mask(idnumber.parse(id_number).number)
        audit.record(session, action="resident.lookup_miss", detail={"id_masked": masked}, **kw)
        raise e.kept() from None
    audit.record(
        session, action="resident.lookup", target_type="resident", target_id=row.id or 0, **kw
    )
    return found(row)


async def get(*, session: AsyncSession, resident_id: int) -> Resident:
    row = await session.get(Resident, resident_id)
    if row is None:
        raise NotFound(f"居民 {resident_id}", f"Resident {resident_id}")
    return row


def reveal(cipher: PiiCipher, resident: Resident) -> str:
    """The full ID number; callers must authorize and audit-log first."""
    return cipher.decrypt(resident.id_cipher, context=_context(resident.id_hash))


def check(raw: str) -> IdNumberCheck:
    """Live check for forms: raises Invalid with the reason, else what the number tells."""
    parsed = idnumber.parse(raw)
    return IdNumberCheck(
        valid=True,
        masked=parsed.masked,
        birth_date=parsed.birth_date,
        sex=parsed.sex,
        age=parsed.age_on(dt.date.today()),
    )
