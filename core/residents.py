"""Residents: registered once by ID number, found by keyed hash, shown masked."""

from __future__ import annotations

import datetime as dt

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from core import idnumber
from core.errors import Conflict, NotFound
from core.models import (
    IdNumberCheck,
    Resident,
    ResidentCreate,
    ResidentRead,
    Site,
    SiteKind,
)
from core.pii import PiiCipher

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


def _context(id_hash: str) -> str:
    # Binds each ciphertext to its row's lookup hash, so a ciphertext copied to another row fails.
    return f"resident:{id_hash}"


async def create(
    *, session: AsyncSession, cipher: PiiCipher, resident_in: ResidentCreate, created_by: int | None
) -> Resident:
    """Register a resident; Conflict (with the existing id) if the ID number is known."""
    parsed = idnumber.parse(resident_in.id_number)
    id_hash = cipher.lookup_hash(parsed.number)
    existing = (await session.exec(select(Resident.id).where(Resident.id_hash == id_hash))).first()
    if existing is not None:
        raise Conflict(
            what="该身份证号的居民",
            what_en="A resident with this ID number",
            details=[{"resident_id": existing}],
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
