"""Typed keys for the resources an app holds; each is created in a cleanup context."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from core.access import Principal
    from core.db import Database
    from core.events import Deliver
    from core.pii import PiiCipher
    from core.settings import Settings
    from core.sms import SmsGateway
    from core.staff import Passwords
    from httpapi.api import Api
    from httpapi.observability import Metrics

SETTINGS: web.AppKey[Settings] = web.AppKey("settings")
DB: web.AppKey[Database] = web.AppKey("db")
CIPHER: web.AppKey[PiiCipher] = web.AppKey("cipher")
PASSWORDS: web.AppKey[Passwords] = web.AppKey("passwords")
METRICS: web.AppKey[Metrics] = web.AppKey("metrics")
API: web.AppKey[Api] = web.AppKey("api")
SMS: web.AppKey[SmsGateway] = web.AppKey("sms")
# How events reach clients once a unit of work has committed (socket.io rooms).
DELIVER: web.AppKey[Deliver] = web.AppKey("deliver")

REQUEST_ID: web.RequestKey[str] = web.RequestKey("request_id")
PRINCIPAL: web.RequestKey[Principal] = web.RequestKey("principal")
