"""Staff accounts: argon2 passwords, login with rate limits, server-side sessions."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.access import Principal
from core.db import utcnow
from core.errors import Conflict, Invalid, NotFound, RateLimited, Unauthenticated
from core.models import (
    LoginFailure,
    Role,
    Site,
    Staff,
    StaffCreate,
    StaffLine,
    StaffRead,
    StaffSession,
    StaffSite,
    WindowLine,
)
from core.settings import Settings

# A session's last_seen_at is written at most this often (or a tenth of the idle limit, if
# shorter), so reads don't turn into writes. Expiry allows for that lag: a session used within
# the idle limit is never ended; an unused one ends at most one touch interval late.
TOUCH_INTERVAL = dt.timedelta(seconds=60)


def touch_interval(settings: Settings) -> dt.timedelta:
    return min(TOUCH_INTERVAL, dt.timedelta(seconds=settings.session_idle_seconds / 10))


def session_expired(
    settings: Settings, *, expires_at: dt.datetime, last_seen_at: dt.datetime, now: dt.datetime
) -> bool:
    """Past its expiry, or idle too long (last_seen_at is written at most once per touch)."""
    idle = dt.timedelta(seconds=settings.session_idle_seconds)
    return expires_at <= now or last_seen_at + idle + touch_interval(settings) <= now


def touch_due(settings: Settings, *, last_seen_at: dt.datetime, now: dt.datetime) -> bool:
    """Whether a use of the session now should write last_seen_at."""
    return now - last_seen_at >= touch_interval(settings)


class Passwords:
    """Argon2id hashing, always off the event loop (a hash takes tens of milliseconds)."""

    def __init__(self, settings: Settings) -> None:
        self._hasher = PasswordHasher(
            time_cost=settings.password_hash_time_cost,
            memory_cost=settings.password_hash_memory_kib,
            parallelism=1,
        )
        self.min_length = settings.password_min_length
        # Verified when the username is unknown, so both paths cost the same time.
        self._dummy = self._hasher.hash(secrets.token_urlsafe(16))

    def check_policy(self, password: str) -> None:
        if len(password) < self.min_length:
            raise Invalid("password.too_short", min=self.min_length)

    async def hash(self, password: str) -> str:
        return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        def run() -> bool:
            try:
                return self._hasher.verify(password_hash or self._dummy, password) and bool(
                    password_hash
                )
            except (VerificationError, InvalidHashError):
                return False

        return await asyncio.to_thread(run)

    def needs_rehash(self, password_hash: str) -> bool:
        return self._hasher.check_needs_rehash(password_hash)


@dataclass(frozen=True)
class LoginResult:
    token: str
    csrf_token: str
    principal: Principal
    expires_at: dt.datetime


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def create(*, session: AsyncSession, passwords: Passwords, staff_in: StaffCreate) -> Staff:
    """Add a staff member bound to sites and lines (by code); the caller commits."""
    passwords.check_policy(staff_in.password)
    exists = await session.exec(select(Staff.id).where(Staff.username == staff_in.username))
    if exists.first() is not None:
        raise Conflict(what=f"用户名 {staff_in.username}", what_en=f"Username {staff_in.username}")
    site_ids = await _ids_by_code(session, Site, staff_in.site_codes, "站点", "Site")
    line_ids = await _ids_by_code(session, WindowLine, staff_in.line_codes, "窗口", "Window line")
    staff = Staff(
        username=staff_in.username,
        display_name=staff_in.display_name,
        role=staff_in.role,
        password_hash=await passwords.hash(staff_in.password),
        skills=staff_in.skills,
        phone=staff_in.phone,
    )
    session.add(staff)
    await session.flush()
    await bind(session=session, staff_id=_id(staff), site_ids=site_ids, line_ids=line_ids)
    return staff


async def bind(
    *, session: AsyncSession, staff_id: int, site_ids: list[int], line_ids: list[int]
) -> None:
    session.add_all([StaffSite(staff_id=staff_id, site_id=s) for s in site_ids])
    session.add_all([StaffLine(staff_id=staff_id, line_id=ln) for ln in line_ids])


async def _ids_by_code(
    session: AsyncSession, table: type[Site] | type[WindowLine], codes: list[str], zh: str, en: str
) -> list[int]:
    if not codes:
        return []
    rows = (
        await session.exec(select(table.code, table.id).where(col(table.code).in_(codes)))
    ).all()
    found = {code: id_ for code, id_ in rows}
    for code in codes:
        if code not in found:
            raise NotFound(f"{zh} {code}", f"{en} {code}")
    return [found[c] for c in codes]


def _id(row: Staff) -> int:
    assert row.id is not None
    return row.id


async def principal_for(session: AsyncSession, staff: Staff, session_id: str = "") -> Principal:
    sid = _id(staff)
    sites = (await session.exec(select(StaffSite.site_id).where(StaffSite.staff_id == sid))).all()
    lines = (await session.exec(select(StaffLine.line_id).where(StaffLine.staff_id == sid))).all()
    return Principal(
        staff_id=sid,
        username=staff.username,
        display_name=staff.display_name,
        role=Role(staff.role),
        site_ids=frozenset(sites),
        line_ids=frozenset(lines),
        skills=tuple(staff.skills),
        session_id=session_id,
    )


async def _failures_since(
    session: AsyncSession, since: dt.datetime, *, username: str | None = None, ip: str | None = None
) -> tuple[int, dt.datetime | None]:
    q = select(func.count(), func.min(LoginFailure.at)).where(col(LoginFailure.at) >= since)
    if username is not None:
        q = q.where(LoginFailure.username == username)
    if ip is not None:
        q = q.where(LoginFailure.ip == ip)
    count, oldest = (await session.exec(q)).one()
    return int(count), oldest


# Failures on one account, from any addresses, beyond which each attempt waits (4 times the
# per-address limit is beyond what people mistyping at a few counters do); the wait starts at
# 4 s and doubles with every further failure up to the cap, so the owner is slowed, not locked.
ACCOUNT_FREE_FAILURES_FACTOR = 4
ACCOUNT_MAX_DELAY_SECONDS = 60


async def _account_delay(
    session: AsyncSession, since: dt.datetime, now: dt.datetime, username: str, settings: Settings
) -> int:
    """Seconds to wait before the next attempt on an account guessed at from many addresses."""
    free = settings.login_max_failures * ACCOUNT_FREE_FAILURES_FACTOR
    q = select(func.count(), func.max(LoginFailure.at)).where(
        col(LoginFailure.at) >= since, LoginFailure.username == username
    )
    count, latest = (await session.exec(q)).one()
    if int(count) < free or latest is None:
        return 0
    delay = min(ACCOUNT_MAX_DELAY_SECONDS, 2 ** min(int(count) - free + 2, 6))
    left = delay - (now - latest).total_seconds()
    return max(0, int(left + 0.999))


async def login(
    *,
    session: AsyncSession,
    passwords: Passwords,
    settings: Settings,
    username: str,
    password: str,
    ip: str,
    user_agent: str = "",
) -> LoginResult:
    """Check the password and open a session; failures count toward per-user and per-IP limits."""
    now = utcnow()
    window = dt.timedelta(seconds=settings.login_window_seconds)
    since = now - window
    username = username.strip().lower()
    # Guessing from one address is stopped for that account at that address, and for every
    # account once the address has failed too often. Failures on one account from elsewhere
    # never lock its owner out: many addresses guessing one account only slow it down.
    for limit, key in (
        (settings.login_max_failures, {"username": username, "ip": ip}),
        (settings.login_max_failures_per_ip, {"ip": ip}),
    ):
        count, oldest = await _failures_since(session, since, **key)
        if count >= limit and oldest is not None:
            raise RateLimited(retry_after=max(1, int((oldest + window - now).total_seconds()) + 1))
    wait = await _account_delay(session, since, now, username, settings)
    if wait > 0:
        raise RateLimited(retry_after=wait)

    staff = (await session.exec(select(Staff).where(Staff.username == username))).first()
    usable = staff is not None and staff.active
    ok = await passwords.verify(staff.password_hash if usable and staff else None, password)
    if not ok or staff is None:
        session.add(LoginFailure(username=username[:64], ip=ip[:64], at=now))
        raise Unauthenticated("bad_credentials").kept()

    if passwords.needs_rehash(staff.password_hash):
        staff.password_hash = await passwords.hash(password)
        session.add(staff)
    await session.exec(delete(LoginFailure).where(col(LoginFailure.username) == username))  # type: ignore[call-overload]
    token = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    expires = now + dt.timedelta(seconds=settings.session_max_age_seconds)
    row = StaffSession(
        token_hash=token_hash(token),
        staff_id=_id(staff),
        csrf_token=csrf,
        created_at=now,
        last_seen_at=now,
        expires_at=expires,
        ip=ip[:64],
        user_agent=user_agent[:300],
    )
    session.add(row)
    principal = await principal_for(session, staff, row.token_hash)
    return LoginResult(token=token, csrf_token=csrf, principal=principal, expires_at=expires)


async def authenticate(
    *, session: AsyncSession, settings: Settings, token: str
) -> tuple[Principal, StaffSession]:
    """The principal behind a session cookie; Unauthenticated if unknown, expired or idle."""
    if not token or len(token) > 200:
        raise Unauthenticated()
    now = utcnow()
    row = await session.get(StaffSession, token_hash(token))
    if row is None:
        raise Unauthenticated()
    if session_expired(settings, expires_at=row.expires_at, last_seen_at=row.last_seen_at, now=now):
        await session.delete(row)
        raise Unauthenticated("session_expired").kept()
    staff = await session.get(Staff, row.staff_id)
    if staff is None or not staff.active:
        raise Unauthenticated()
    if touch_due(settings, last_seen_at=row.last_seen_at, now=now):
        row.last_seen_at = now
        session.add(row)
    return await principal_for(session, staff, row.token_hash), row


async def logout(*, session: AsyncSession, session_id: str) -> None:
    await session.exec(delete(StaffSession).where(col(StaffSession.token_hash) == session_id))  # type: ignore[call-overload]


async def read(*, session: AsyncSession, staff: Staff) -> StaffRead:
    p = await principal_for(session, staff)
    return StaffRead(
        id=p.staff_id,
        username=staff.username,
        display_name=staff.display_name,
        role=p.role,
        skills=list(staff.skills),
        active=staff.active,
        site_ids=sorted(p.site_ids),
        line_ids=sorted(p.line_ids),
    )


async def list_staff(
    *, session: AsyncSession, role: Role | None = None, limit: int = 200, offset: int = 0
) -> list[Staff]:
    q = select(Staff).order_by(col(Staff.id)).limit(limit).offset(offset)
    if role is not None:
        q = q.where(Staff.role == role)
    return list((await session.exec(q)).all())
