"""What the two fake carriers share: a loopback aiohttp server, outages, and the record."""

from __future__ import annotations

import asyncio
import itertools
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Received:
    """A message the fake took (its signature checked)."""

    phone: str
    sign: str
    template: str
    params: Any  # Aliyun: a name -> value object; Tencent: the list in template order
    out_id: str
    message_id: str


@dataclass
class FakeCarrier:
    """Base of the fakes: start(), stop(), url, and switches that make the next calls fail.

    `outage`: the next N calls answer 503 before looking at them; `hang`: the next N calls
    get no answer until stop() (the client's timeout ends them); `take_then_fail`: the next N
    messages are taken, then answered 503 (the carrier has it, the client cannot know).
    """

    credentials: dict[str, str]
    messages: list[Received] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # error codes answered, in order
    requests: int = 0
    outage: int = 0
    hang: int = 0
    take_then_fail: int = 0
    _runner: web.AppRunner | None = None
    _port: int = 0
    _release: asyncio.Event = field(default_factory=asyncio.Event)
    _ids: Any = field(default_factory=lambda: itertools.count(1))
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    async def start(self) -> FakeCarrier:
        app = web.Application()
        app.router.add_post("/", self._entry)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self._port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        self._release.set()
        if self._runner is not None:
            await self._runner.cleanup()

    def out_ids(self) -> list[str]:
        return [m.out_id for m in self.messages]

    async def wait_messages(self, count: int) -> None:
        """Until the fake has taken `count` messages (bound it with asyncio.timeout)."""
        async with self._changed:
            await self._changed.wait_for(lambda: len(self.messages) >= count)

    async def _entry(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        if self.outage > 0:
            self.outage -= 1
            return self.unavailable()
        if self.hang > 0:
            self.hang -= 1
            await self._release.wait()
            return self.unavailable()
        body = await request.read()
        taken = len(self.messages)
        answer = await self.handle(request, body)
        async with self._changed:
            self._changed.notify_all()
        if self.take_then_fail > 0 and len(self.messages) > taken:
            self.take_then_fail -= 1
            return self.unavailable()
        return answer

    def next_id(self) -> int:
        return next(self._ids)

    async def handle(self, request: web.Request, body: bytes) -> web.Response:
        raise NotImplementedError

    def unavailable(self) -> web.Response:
        raise NotImplementedError


def json_answer(data: Any, status: int = 200) -> web.Response:
    # Exactly "application/json": the Tencent SDK reads errors only under that content type.
    return web.Response(
        body=json.dumps(data, ensure_ascii=False).encode(),
        status=status,
        headers={"Content-Type": "application/json"},
    )
