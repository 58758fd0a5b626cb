"""Residents sign in on their own device with their ID number, phone and an SMS code."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets

from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core import idnumber, residents
from core.access import Principal
from core.db import utcnow
from core.errors import RateLimited, Unauthenticated
from core.models import (
    CodeLogin,
    CodeRequest,
    Resident,
    ResidentLoginCode,
    ResidentMe,
    ResidentSession,
    Role,
)
from core.pii import PiiCipher
from core.settings import Settings
from core.sms import SmsGateway

RESIDENT_COOKIE = "cw_resident"
CODE_TTL = dt.timedelta(minutes=5)
CODE_ATTEMPTS = 5  # wrong guesses before a code is void: 5 in a million at worst
CODES_PER_HOUR = 5  # codes one resident can be sent per hour (SMS costs money and annoys)
SESSION_TTL = dt.timedelta(hours=2)


def _code_hash(resident_id: int, code: str, key: bytes) -> str:
    return hmac.new(key, f"{resident_id}:{code}".encode(), hashlib.sha256).hexdigest()


async def request_code(
    *, session: AsyncSession, cipher: PiiCipher, sms: SmsGateway, request: CodeRequest
) -> None:
    """Send a code if the ID number and phone belong to one resident; silent otherwise.

    The answer is the same either way, so the form cannot be used to learn who is registered.
    """
    parsed = idnumber.parse(request.id_number)
    phone = idnumber.normalize_phone(request.phone)
    try:
        resident = await residents.find_by_number(
            session=session, cipher=cipher, id_number=parsed.number
        )
    except Exception:  # unknown resident: same answer as success
        return
    if resident.phone != phone or resident.id is None:
        return
    await send_code(session=session, cipher=cipher, sms=sms, resident=resident)


async def send_code(
    *, session: AsyncSession, cipher: PiiCipher, sms: SmsGateway, resident: Resident
) -> None:
    """A fresh code to the resident's registered phone, within the hourly limit."""
    assert resident.id is not None
    phone = resident.phone
    now = utcnow()
    sent = (
        await session.exec(
            select(func.count())
            .select_from(ResidentLoginCode)
            .where(
                ResidentLoginCode.resident_id == resident.id,
                col(ResidentLoginCode.created_at) >= now - dt.timedelta(hours=1),
            )
        )
    ).one()
    if sent >= CODES_PER_HOUR:
        raise RateLimited(retry_after=3600)
    code = f"{secrets.randbelow(10**6):06d}"
    login_code = ResidentLoginCode(
        resident_id=resident.id,
        code_hash=_code_hash(resident.id, code, cipher.lookup_key),
        created_at=now,
        expires_at=now + CODE_TTL,
    )
    session.add(login_code)
    await session.flush()  # its id keys the message: one SMS per code
    await sms.send(
        session,
        phone=phone,
        kind="login.code",
        params={"code": code},
        key=f"login.code:{login_code.id}",
    )


async def login(
    *, session: AsyncSession, cipher: PiiCipher, request: CodeLogin
) -> tuple[str, ResidentMe]:
    """Check the code; open a resident session. Every failure looks the same."""
    try:
        resident = await residents.find_by_number(
            session=session, cipher=cipher, id_number=request.id_number
        )
    except Exception:
        raise Unauthenticated("bad_credentials") from None
    if resident.id is None or resident.phone != idnumber.normalize_phone(request.phone):
        raise Unauthenticated("bad_credentials")
    return await sign_in(session=session, cipher=cipher, resident=resident, code=request.code)


async def sign_in(
    *, session: AsyncSession, cipher: PiiCipher, resident: Resident, code: str
) -> tuple[str, ResidentMe]:
    """Check the resident's latest live code; open a session. A wrong code counts a guess."""
    assert resident.id is not None
    now = utcnow()
    row = (
        await session.exec(
            select(ResidentLoginCode)
            .where(
                ResidentLoginCode.resident_id == resident.id,
                col(ResidentLoginCode.used_at).is_(None),
                col(ResidentLoginCode.expires_at) > now,
                col(ResidentLoginCode.attempts) < CODE_ATTEMPTS,
            )
            .order_by(col(ResidentLoginCode.id).desc())
            .with_for_update()
        )
    ).first()
    if row is None:
        raise Unauthenticated("bad_credentials")
    row.attempts += 1
    expected = _code_hash(resident.id, code, cipher.lookup_key)
    if not hmac.compare_digest(row.code_hash, expected):
        session.add(row)
        raise Unauthenticated("bad_credentials").kept()
    row.used_at = now
    session.add(row)
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    session.add(
        ResidentSession(
            token_hash=hashlib.sha256(token.encode()).hexdigest(),
            resident_id=resident.id,
            csrf_token=csrf,
            created_at=now,
            last_seen_at=now,
            expires_at=now + SESSION_TTL,
        )
    )
    return token, me_of(resident, csrf)


def me_of(resident: Resident, csrf_token: str) -> ResidentMe:
    """The signed-in resident as their pages see them (age decides the default text size)."""
    assert resident.id is not None
    age = residents.age_of(resident.birth_date, dt.date.today())
    return ResidentMe(
        resident_id=resident.id,
        name=resident.name,
        id_masked=resident.id_masked,
        community_id=resident.community_id,
        csrf_token=csrf_token,
        age=age,
        elderly=age >= residents.ELDERLY_AGE,
        phone_masked=residents.mask_phone(resident.phone),
    )


async def authenticate(
    *, session: AsyncSession, settings: Settings, token: str
) -> tuple[Principal, ResidentSession]:
    """The resident behind a cw_resident cookie."""
    if not token or len(token) > 200:
        raise Unauthenticated()
    row = await session.get(ResidentSession, hashlib.sha256(token.encode()).hexdigest())
    now = utcnow()
    if row is None:
        raise Unauthenticated()
    idle = dt.timedelta(seconds=settings.session_idle_seconds)
    if row.expires_at <= now or row.last_seen_at + idle <= now:
        await session.delete(row)
        raise Unauthenticated("session_expired").kept()
    if now - row.last_seen_at >= dt.timedelta(seconds=60):
        row.last_seen_at = now
        session.add(row)
    resident = await residents.get(session=session, resident_id=row.resident_id)
    principal = Principal(
        staff_id=0,
        username=f"resident:{row.resident_id}",
        display_name=resident.name,
        role=Role.resident,
        site_ids=frozenset({resident.community_id} if resident.community_id else set()),
        session_id=row.token_hash,
        resident_id=row.resident_id,
    )
    return principal, row


async def logout(*, session: AsyncSession, session_id: str) -> None:
    row = await session.get(ResidentSession, session_id)
    if row is not None:
        await session.delete(row)
