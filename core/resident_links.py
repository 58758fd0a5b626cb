"""Sign-in links sent to residents by SMS: one page, opened once, still behind the SMS code.

A token is 16 random bytes and a 16-byte HMAC of them under a key derived from the master
secret, in URL-safe base64 (43 characters). The signature turns away a forged or mistyped
token before the database is asked; the table keeps only a SHA-256 of the random part, the
resident, the page and the expiry, and marks the link used when it signs someone in. Opening
the page or asking for the code changes nothing on the link, so a phone's link preview, or a
code that never arrived, does not use it up.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime as dt
import hashlib
import hmac
import re
import secrets

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from core import resident_auth, residents
from core.db import utcnow
from core.errors import AppError
from core.models import LinkRead, Resident, ResidentLink, ResidentMe
from core.pii import PiiCipher, derive_key
from core.settings import Settings
from core.sms import SmsGateway

LINK_PREFIX = "/resident/l/"
NONCE_BYTES = 16  # 128 random bits: not guessable, not enumerable
SIG_BYTES = 16  # HMAC-SHA256 cut to 128 bits, as much as a forger would have to guess
KEY_PURPOSE = "cloudwindow/resident-link/v1"
# A page of the resident app, with an optional plain query: never another site, never a link.
PAGE = re.compile(r"^/resident(/[A-Za-z0-9._~-]+)*/?(\?[A-Za-z0-9._~=&%-]*)?$")
MAX_PATH = 200


class LinkInvalid(AppError):
    """Forged, mistyped or unknown: the same answer for each, so nothing can be probed."""

    status = 400
    default_code = "resident_link.invalid"


class LinkGone(AppError):
    """A real link that no longer works (expired or already used)."""

    status = 410
    default_code = "resident_link.expired"


async def _key(settings: Settings) -> bytes:
    master = (
        settings.secret_key.encode()
        if settings.secret_key
        else await asyncio.to_thread(settings.load_secret_key)
    )
    return derive_key(master, KEY_PURPOSE)


def _sign(key: bytes, nonce: bytes) -> bytes:
    return hmac.new(key, nonce, hashlib.sha256).digest()[:SIG_BYTES]


def _hash(nonce: bytes) -> str:
    return hashlib.sha256(nonce).hexdigest()


def valid_path(path: str) -> bool:
    segments = path.partition("?")[0].split("/")
    return (
        len(path) <= MAX_PATH
        and bool(PAGE.match(path))
        and not path.startswith(LINK_PREFIX[:-1])
        and not any(s in (".", "..") for s in segments)
    )


async def issue_link(
    session: AsyncSession, *, resident_id: int, path: str, settings: Settings
) -> str:
    """A single-use link (`/resident/l/<token>`, after `public_url` when set) that opens
    `path` for this resident.

    `path` is a resident page such as `/resident/cases/12`. The link is written with the
    caller's transaction, so it works once that commits (send the SMS after commit, too).
    """
    if not valid_path(path):
        raise ValueError(f"not a resident page: {path!r}")
    if await session.get(Resident, resident_id) is None:
        raise ValueError(f"no resident {resident_id}")
    nonce = secrets.token_bytes(NONCE_BYTES)
    token = base64.urlsafe_b64encode(nonce + _sign(await _key(settings), nonce)).rstrip(b"=")
    now = utcnow()
    session.add(
        ResidentLink(
            token_hash=_hash(nonce),
            resident_id=resident_id,
            path=path,
            created_at=now,
            expires_at=now + dt.timedelta(seconds=settings.resident_link_ttl_seconds),
        )
    )
    return settings.public_url.rstrip("/") + LINK_PREFIX + token.decode()


async def _live(
    session: AsyncSession, *, token: str, settings: Settings, lock: bool = False
) -> tuple[ResidentLink, Resident]:
    """The unused, unexpired link behind a token, and its resident; refuses anything else."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        raise LinkInvalid() from None
    if len(raw) != NONCE_BYTES + SIG_BYTES or not token.isascii():
        raise LinkInvalid()
    nonce, sig = raw[:NONCE_BYTES], raw[NONCE_BYTES:]
    if not hmac.compare_digest(sig, _sign(await _key(settings), nonce)):
        raise LinkInvalid()
    query = select(ResidentLink).where(ResidentLink.token_hash == _hash(nonce))
    if lock:
        query = query.with_for_update()
    link = (await session.exec(query)).first()
    if link is None:
        raise LinkInvalid()
    if link.used_at is not None:
        raise LinkGone("resident_link.used")
    if link.expires_at <= utcnow():
        raise LinkGone("resident_link.expired")
    resident = await session.get(Resident, link.resident_id)
    if resident is None or not resident.phone:
        raise LinkInvalid()
    return link, resident


async def check(*, session: AsyncSession, token: str, settings: Settings) -> LinkRead:
    """Where a link leads and where its code will go; changes nothing."""
    link, resident = await _live(session, token=token, settings=settings)
    return LinkRead(
        path=link.path,
        phone_masked=residents.mask_phone(resident.phone),
        expires_at=link.expires_at,
    )


async def send_code(
    *,
    session: AsyncSession,
    token: str,
    settings: Settings,
    cipher: PiiCipher,
    sms: SmsGateway,
) -> LinkRead:
    """Send the sign-in code for a link to its resident's registered phone."""
    link, resident = await _live(session, token=token, settings=settings)
    await resident_auth.send_code(session=session, cipher=cipher, sms=sms, resident=resident)
    return LinkRead(
        path=link.path,
        phone_masked=residents.mask_phone(resident.phone),
        expires_at=link.expires_at,
    )


async def login(
    *,
    session: AsyncSession,
    token: str,
    code: str,
    settings: Settings,
    cipher: PiiCipher,
) -> tuple[str, ResidentMe, str]:
    """Sign in through a link with its code: (session token, me, page). Uses the link up.

    A wrong code counts a guess against the code (the limits of resident_auth) and leaves the
    link as it was; a refused link changes nothing at all.
    """
    link, resident = await _live(session, token=token, settings=settings, lock=True)
    session_token, me = await resident_auth.sign_in(
        session=session, cipher=cipher, resident=resident, code=code
    )
    link.used_at = utcnow()
    session.add(link)
    return session_token, me, link.path
