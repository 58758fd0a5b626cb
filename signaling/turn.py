"""ICE servers for clients: STUN, and TURN with coturn's REST (use-auth-secret) credentials."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
from typing import Any

from core.settings import Settings


def _split(urls: str) -> list[str]:
    return [u.strip() for u in urls.split(",") if u.strip()]


def turn_credentials(secret: str, user: str, expires: int) -> tuple[str, str]:
    """coturn --use-auth-secret: username "<expiry unix seconds>:<user>", HMAC-SHA1 password."""
    username = f"{expires}:{user}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode()


def ice_servers(settings: Settings, user: str, now: dt.datetime) -> list[dict[str, Any]]:
    servers: list[dict[str, Any]] = []
    stun = _split(settings.stun_urls)
    if stun:
        servers.append({"urls": stun})
    turn = _split(settings.turn_urls)
    if turn and settings.turn_secret:
        expires = int(now.timestamp()) + settings.turn_ttl_seconds
        username, credential = turn_credentials(settings.turn_secret, user, expires)
        servers.append({"urls": turn, "username": username, "credential": credential})
    return servers
