"""Socket test helpers: a logged-in user's socket.io client that records what it hears."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import aiohttp
import socketio
from sqlmodel import select
from yarl import URL

from core.db import Database, utcnow
from core.models import Case, CaseStatus, Site, Staff, StaffLine, StaffSite, WindowLine
from signaling.models import Ticket, TicketStatus
from tests.conftest import User
from tests.factories import aged, site_by_code


class Sock:
    """A socket.io client with the session cookie of a logged-in User."""

    def __init__(self, user: User) -> None:
        self.user = user
        self.client = socketio.AsyncClient(reconnection=False)
        self.heard: dict[str, list[Any]] = defaultdict(list)
        self._waiters: list[tuple[str, Callable[[Any], bool], asyncio.Future[Any]]] = []
        self.client.on("*", self._on_any)

    async def _on_any(self, event: str, data: Any = None) -> None:
        self.heard[event].append(data)
        for waiter in list(self._waiters):
            name, pred, fut = waiter
            if name == event and not fut.done() and pred(data):
                fut.set_result(data)
                self._waiters.remove(waiter)

    async def connect(self, base: str | None = None) -> Sock:
        base = base or self.user.base
        jar = self.user.http.cookie_jar.filter_cookies(URL(base))
        cookie = "; ".join(f"{k}={v.value}" for k, v in jar.items())
        await self.client.connect(
            base, headers={"Cookie": cookie}, transports=["websocket"], wait_timeout=10
        )
        return self

    async def call(self, event: str, data: Any = None, within: float = 10) -> Any:
        return await self.client.call(event, data if data is not None else {}, timeout=within)

    async def ok(self, event: str, data: Any = None, within: float = 10) -> Any:
        ack = await self.call(event, data, within)
        assert ack["ok"], ack
        return ack["data"]

    async def err(self, event: str, data: Any = None) -> dict[str, Any]:
        ack = await self.call(event, data)
        assert not ack["ok"], ack
        return ack["error"]

    async def wait(
        self, event: str, pred: Callable[[Any], bool] = lambda _d: True, within: float = 10
    ) -> Any:
        for data in self.heard[event]:
            if pred(data):
                return data
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiters.append((event, pred, fut))
        return await asyncio.wait_for(fut, within)

    async def close(self) -> None:
        await self.client.disconnect()


async def gaoqiao_setup(worker: User) -> dict[str, Any]:
    """The worker's point, the 高桥镇·民政 line, the 高龄津贴 item and a resident of 84."""
    point = await site_by_code(worker, "T07-C01")
    lines = await (
        await worker.get("/api/v1/lines", params={"site_id": str(point["parent_id"])})
    ).json()
    line = next(ln for ln in lines if ln["department"] == "civil_affairs")
    item = (await (await worker.get("/api/v1/items", params={"q": "高龄津贴"})).json())[0]
    return {"point": point, "line": line, "item": item}


async def new_resident(worker: User, years: int = 84, seq: int = 123, **extra: Any) -> int:
    resp = await worker.post(
        "/api/v1/residents",
        json={"name": f"居民{seq}", "id_number": aged(years, seq), **extra},
    )
    assert resp.status == 201, await resp.text()
    return (await resp.json())["id"]


def take_payload(setup: dict[str, Any], resident_id: int | None, **kw: Any) -> dict[str, Any]:
    return {
        "line_id": setup["line"]["id"],
        "item_code": setup["item"]["code"],
        "site_id": setup["point"]["id"],
        "resident_id": resident_id,
        "consent": True,
        **kw,
    }


class RawSocket:
    """A bare websocket speaking socket.io's wire format: sends exactly the frames given."""

    def __init__(self, base: str, cookie: str = "") -> None:
        self.base = base
        self.cookie = cookie
        self.http = aiohttp.ClientSession()
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.next_id = 0

    async def open(self) -> RawSocket:
        """The engine.io handshake only: no socket.io namespace joined yet."""
        url = f"{self.base}/socket.io/?EIO=4&transport=websocket"
        headers = {"Cookie": self.cookie} if self.cookie else {}
        self.ws = await self.http.ws_connect(url, headers=headers)
        assert (await self.frame()).startswith("0")
        return self

    async def connect(self) -> RawSocket:
        """Open and join the default namespace, as a socket.io client does."""
        await self.open()
        await self.send("40")
        reply = await self.frame()
        assert reply.startswith("40"), reply
        return self

    async def send(self, frame: str) -> None:
        assert self.ws is not None
        await self.ws.send_str(frame)

    async def frame(self, within: float = 10) -> str:
        """The next text frame; answers the server's pings on the way."""
        assert self.ws is not None
        while True:
            msg = await self.ws.receive(timeout=within)
            if msg.type != aiohttp.WSMsgType.TEXT:
                return ""  # closed
            if msg.data == "2":
                await self.ws.send_str("3")
                continue
            return str(msg.data)

    async def call(self, event: str, *args: Any) -> Any:
        """Emit `event` with an ack id and return the ack's first argument."""
        self.next_id += 1
        ack_id = self.next_id
        await self.send(f"42{ack_id}" + json.dumps([event, *args], separators=(",", ":")))
        while True:
            frame = await self.frame()
            assert frame, "closed before the ack"
            if frame.startswith(f"43{ack_id}["):
                return json.loads(frame[len(f"43{ack_id}") :])[0]

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        await self.http.close()


def cookie_of(user: User) -> str:
    jar = user.http.cookie_jar.filter_cookies(URL(user.base))
    return "; ".join(f"{k}={v.value}" for k, v in jar.items())


async def fill_queue(
    db_url: str, *, clerks: int, tickets: int, prefix: str
) -> tuple[list[str], set[int]]:
    """Extra clerks on 高桥镇·民政 and waiting tickets there (every 7th a priority one).

    Returns the clerks' usernames (password: the demo one) and the waiting tickets' ids.
    """
    db = Database(db_url)
    try:
        async with db.session() as s:
            line = (
                await s.exec(select(WindowLine).where(WindowLine.code == "T07-civil_affairs"))
            ).one()
            town = (await s.exec(select(Site).where(Site.code == "T07"))).one()
            point = (await s.exec(select(Site).where(Site.code == "T07-C01"))).one()
            template = (await s.exec(select(Staff).where(Staff.username == "clerk"))).one()
            names = [f"{prefix}{i:02d}" for i in range(clerks)]
            staff = [
                Staff(
                    username=n, display_name=n, role="clerk", password_hash=template.password_hash
                )
                for n in names
            ]
            s.add_all(staff)
            await s.flush()
            for c in staff:
                s.add(StaffLine(staff_id=c.id or 0, line_id=line.id or 0))
                s.add(StaffSite(staff_id=c.id or 0, site_id=town.id or 0))
            now = utcnow()
            cases = [
                Case(
                    number=f"{prefix.upper()}{i:06d}",
                    item_id=1,
                    site_id=point.id or 0,
                    line_id=line.id,
                    status=CaseStatus.open,
                )
                for i in range(tickets)
            ]
            s.add_all(cases)
            await s.flush()
            s.add_all(
                Ticket(
                    line_id=line.id or 0,
                    case_id=c.id or 0,
                    day=now.date(),
                    seq=900 + i,
                    number=f"R{i:04d}",
                    status=TicketStatus.waiting,
                    priority=1 if i % 7 == 0 else 0,
                    item_id=1,
                    point_site_id=point.id or 0,
                    waiting_since=now - dt.timedelta(seconds=tickets - i),
                )
                for i, c in enumerate(cases)
            )
            await s.commit()
            ids = (
                await s.exec(select(Ticket.id).where(Ticket.status == TicketStatus.waiting))
            ).all()
            return names, {i for i in ids if i is not None}
    finally:
        await db.dispose()


async def measured_handling(
    db_url: str, *, seconds: int = 300, line_code: str = "T07-civil_affairs"
) -> None:
    """One ticket finished on the line `seconds` after it was answered: its handling time is
    measured, so waits can be estimated (until then they are unknown, never assumed)."""
    db = Database(db_url)
    try:
        async with db.session() as s:
            line = (await s.exec(select(WindowLine).where(WindowLine.code == line_code))).one()
            point = (await s.exec(select(Site).where(Site.parent_id == line.site_id))).first()
            assert point is not None
            case = Case(
                number=f"HT{line.id:04d}{seconds:06d}",
                item_id=1,
                site_id=point.id or 0,
                line_id=line.id,
                status=CaseStatus.completed,
            )
            s.add(case)
            await s.flush()
            now = utcnow() - dt.timedelta(hours=1)
            s.add(
                Ticket(
                    line_id=line.id or 0,
                    case_id=case.id or 0,
                    day=now.date(),
                    seq=999,
                    number="H999",
                    status=TicketStatus.done,
                    outcome="completed",
                    item_id=1,
                    point_site_id=point.id or 0,
                    waiting_since=now - dt.timedelta(seconds=seconds + 60),
                    created_at=now - dt.timedelta(seconds=seconds + 60),
                    called_at=now - dt.timedelta(seconds=seconds + 30),
                    answered_at=now - dt.timedelta(seconds=seconds),
                    finished_at=now,
                )
            )
            await s.commit()
    finally:
        await db.dispose()
