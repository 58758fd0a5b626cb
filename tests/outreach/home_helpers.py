"""Shared pieces of the home-service tests: the app with an SMS spy, residents, requests."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from sqlalchemy import event, text
from sqlmodel.ext.asyncio.session import AsyncSession

from core.db import Database
from core.settings import Settings
from core.sms import SmsGateway
from httpapi import keys
from outreach import templates
from tests.conftest import User
from tests.factories import aged, site_by_code

PHONE = "13900139000"


@dataclass
class Sent:
    phone: str
    kind: str
    params: dict[str, str]
    key: str | None
    body: str = ""


@dataclass
class SmsSpy:
    """The app's own gateway, and a record of what it was given, kept once the unit of work
    commits (a rolled-back step sends nothing). Each kind must fit its registered template."""

    inner: SmsGateway
    sent: list[Sent] = field(default_factory=list)

    async def send(
        self,
        session: AsyncSession,
        *,
        phone: str,
        kind: str,
        body: str = "",
        params: Mapping[str, str] | None = None,
        key: str | None = None,
        not_before: dt.datetime | None = None,
    ) -> None:
        if kind.startswith("home."):
            templates.get(kind).check(params)  # the text names exactly these parameters
        await self.inner.send(
            session,
            phone=phone,
            kind=kind,
            body=body,
            params=params,
            key=key,
            not_before=not_before,
        )
        sync = session.sync_session
        pending: list[Sent] = sync.info.setdefault("sms_spy", [])
        if not pending:

            def committed(_: Any) -> None:
                self.sent.extend(pending)
                pending.clear()

            event.listen(sync, "after_commit", committed, once=True)
            event.listen(sync, "after_rollback", lambda _: pending.clear(), once=True)
        pending.append(Sent(phone, kind, dict(params or {}), key, body))

    def to(self, phone: str, prefix: str = "home.") -> list[str]:
        return [m.kind for m in self.sent if m.phone == phone and m.kind.startswith(prefix)]

    def login_code(self, phone: str) -> str:
        """The last sign-in code sent to a phone."""
        m = next(m for m in reversed(self.sent) if m.phone == phone and m.kind.startswith("login"))
        found = m.params.get("code") or re.search(r"\d{6}", m.body)
        return found if isinstance(found, str) else found.group(0)  # type: ignore[union-attr]


@pytest.fixture
def sms() -> list[SmsSpy]:
    return []


@pytest.fixture
async def resident_phone(
    as_user: Any, sms: list[SmsSpy]
) -> AsyncIterator[Callable[..., Coroutine[Any, Any, User]]]:
    """resident_phone(id_number) -> a phone browser signed in as that resident (SMS code)."""
    opened: list[aiohttp.ClientSession] = []
    base = (await as_user()).base

    async def make(id_number: str, phone: str = PHONE) -> User:
        http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        opened.append(http)
        user = User(http, base)
        who = {"id_number": id_number, "phone": phone}
        resp = await http.post(f"{base}/api/v1/resident-auth/code", json=who)
        assert resp.status == 202, await resp.text()
        resp = await http.post(
            f"{base}/api/v1/resident-auth/login", json={**who, "code": sms[0].login_code(phone)}
        )
        assert resp.status == 200, await resp.text()
        user.me = await resp.json()
        user.csrf = user.me["csrf_token"]
        return user

    yield make
    for h in opened:
        await h.close()


@pytest.fixture
async def client(aiohttp_client: Any, settings: Settings, sms: list[SmsSpy]) -> Any:
    """The app of the shared fixtures, its SMS gateway watched."""
    from web.app import create_app

    app = create_app(settings)
    spy = SmsSpy(app[keys.SMS])
    app[keys.SMS] = spy
    sms.append(spy)
    return await aiohttp_client(app)


async def sql(settings: Settings, statement: str, **params: Any) -> list[Any]:
    db = Database(settings.effective_database_url)
    try:
        async with db.engine.begin() as conn:
            result = await conn.execute(text(statement), params)
            return list(result.all()) if result.returns_rows else []
    finally:
        await db.dispose()


async def register(
    user: User,
    years: int,
    seq: int,
    *,
    community: str = "T07-C01",
    phone: str = PHONE,
    male: bool = True,
    **extra: Any,
) -> int:
    site = await site_by_code(user, community)
    body = {
        "name": f"居民{seq}",
        "id_number": aged(years, seq, male=male),
        "phone": phone,
        "address": f"高桥镇幸福路{seq}号3单元502室",
        "community_id": site["id"],
        **extra,
    }
    resp = await user.post("/api/v1/residents", json=body)
    assert resp.status == 201, await resp.text()
    return (await resp.json())["id"]


def soon(days: int = 1, hour: int = 9) -> dt.datetime:
    """A visit time a few days ahead, in the deployment's zone."""
    tz = ZoneInfo("Asia/Shanghai")
    day = dt.datetime.now(tz).date() + dt.timedelta(days=days)
    return dt.datetime.combine(day, dt.time(hour), tz)


def today() -> dt.date:
    return dt.datetime.now(ZoneInfo("Asia/Shanghai")).date()


async def request(user: User, resident_id: int | None, item: str = "RS-005", **extra: Any) -> Any:
    body: dict[str, Any] = {
        "item_code": item,
        "preferred": [{"date": (today() + dt.timedelta(days=2)).isoformat(), "part": "am"}],
        "notes": "腿脚不便，请先打电话",
        **extra,
    }
    if resident_id is not None:
        body["resident_id"] = resident_id
    return await user.post("/api/v1/home/requests", json=body)


async def created(user: User, resident_id: int | None, item: str = "RS-005", **extra: Any) -> Any:
    resp = await request(user, resident_id, item, **extra)
    assert resp.status == 201, await resp.text()
    return await resp.json()


async def step(user: User, request_id: int, name: str, body: Any, status: int = 200) -> Any:
    resp = await user.post(f"/api/v1/home/requests/{request_id}/{name}", json=body)
    assert resp.status == status, await resp.text()
    return await resp.json()


async def field_staff_id(user: User, request_id: int, username: str = "field.t07") -> int:
    resp = await user.get(f"/api/v1/home/requests/{request_id}/field-staff")
    assert resp.status == 200, await resp.text()
    people = await resp.json()
    town = {"field.t07": "高桥镇"}.get(username, username)
    return next(p["id"] for p in people if p["display_name"].startswith(town))
