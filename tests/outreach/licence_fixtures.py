"""Shared pieces of the licence and reminder tests: holders, licences, a clock in local time."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text
from sqlmodel import select

from core import idnumber
from core.db import Database
from core.models import Resident, Site, SiteKind
from core.pii import PiiCipher
from core.residents import seal_id
from core.settings import Settings
from outreach.licences import ensure_type
from outreach.models import Licence, LicenceSource, LicenceType
from outreach.sms import RecordingSmsGateway
from tests.factories import id_number

TZ = ZoneInfo("Asia/Shanghai")
PHONE = "13900139000"
_seq = itertools.count(100)


def local(day: dt.date, hour: int = 8, minute: int = 0) -> dt.datetime:
    """A moment of the district's wall clock, as UTC."""
    return dt.datetime.combine(day, dt.time(hour, minute), TZ).astimezone(dt.UTC)


# A fixed day, so every date the tests compute is the same whenever they run.
TODAY = dt.date(2026, 6, 10)
MORNING = local(TODAY, 9, 0)


@dataclass
class Env:
    db: Database
    settings: Settings
    cipher: PiiCipher
    sms: RecordingSmsGateway
    town_id: int
    community_id: int

    async def holder(
        self, *, phone: str = PHONE, name: str = "", community: bool = True
    ) -> Resident:
        seq = next(_seq)
        parsed = idnumber.parse(id_number(dt.date(1950, 1, 1) + dt.timedelta(days=seq), seq % 900))
        id_hash = self.cipher.lookup_hash(parsed.number)
        row = Resident(
            name=name or f"居民{seq}",
            id_cipher=seal_id(self.cipher, parsed.number, id_hash),
            id_hash=id_hash,
            id_masked=parsed.masked,
            birth_date=parsed.birth_date,
            sex=parsed.sex,
            phone=phone,
            community_id=self.community_id if community else None,
        )
        async with self.db.session() as session:
            session.add(row)
            await session.commit()
        return row

    async def kind(self, code: str = "TST", offsets: tuple[int, ...] = (-90, -30, -7, 1)) -> int:
        async with self.db.session() as session:
            found = (
                await session.exec(select(LicenceType).where(LicenceType.code == code))
            ).first()
            if found is not None:
                return found.id or 0
            row = await ensure_type(
                session, code=code, name=f"证照{code}", validity_months=60, offsets=offsets
            )
            await session.commit()
            return row.id or 0

    async def licence(
        self, holder: Resident, type_id: int, expires_on: dt.date, *, number: str = ""
    ) -> Licence:
        row = Licence(
            type_id=type_id,
            number=number or f"L{next(_seq)}",
            resident_id=holder.id or 0,
            site_id=self.town_id,
            issued_on=expires_on - dt.timedelta(days=5 * 365),
            expires_on=expires_on,
            source=LicenceSource.imported,
        )
        async with self.db.session() as session:
            session.add(row)
            await session.commit()
        return row

    async def rows(self, sql: str, **params: Any) -> list[Any]:
        async with self.db.engine.begin() as conn:
            result = await conn.execute(text(sql), params)
            return list(result.all()) if result.returns_rows else []


@pytest.fixture
async def env(settings: Settings) -> AsyncIterator[Env]:
    db = Database(settings.effective_database_url)
    async with db.session() as session:
        town = (await session.exec(select(Site).where(Site.code == "T07"))).one()
        community = (
            await session.exec(
                select(Site).where(Site.parent_id == town.id, Site.kind == SiteKind.community)
            )
        ).first()
    assert town.id is not None and community is not None and community.id is not None
    yield Env(
        db=db,
        settings=settings,
        cipher=PiiCipher(settings.load_secret_key()),
        sms=RecordingSmsGateway(),
        town_id=town.id,
        community_id=community.id,
    )
    await db.dispose()
