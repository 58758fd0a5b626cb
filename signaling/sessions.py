"""Who is behind a connecting socket's staff cookie, checked for many sockets in one statement.

When a node dies its clients all arrive at the others at once. Through the ORM each connect
was a transaction of five statements and 3-5 ms of CPU. Here connects that arrive while a
lookup runs wait for the next one (`Batched`), and that one reads every waiting session, its
staff member and their sites and lines in one Core statement. The writes the batch needs go
in the same transaction: expired sessions deleted, `last_seen_at` touched.

The rules are core.staff's (`session_expired`, `touch_due`), which HTTP requests use too:
- an unknown session, or one of an inactive staff member, is `unauthenticated`;
- one past its expiry or idle limit is deleted and `session_expired`;
- `last_seen_at` is written at most once per touch interval.
"""

from __future__ import annotations

import asyncio
import contextvars
import datetime as dt
import itertools
import logging
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, Generic, TypeVar

from sqlalchemy import bindparam, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from core.access import Principal
from core.errors import AppError, Unauthenticated
from core.models import Role, Staff, StaffLine, StaffSession, StaffSite
from core.settings import Settings
from core.staff import session_expired, touch_due

log = logging.getLogger("cloudwindow.signaling")

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

# Sessions read by one statement at most. IN lists are padded to a power of two up to this,
# so the driver keeps a handful of prepared statements rather than one per batch size.
MAX_BATCH = 64
# Distinct site and line sets kept for sharing between principals (each costs ~200 bytes
# per socket otherwise); far more than a district has, a bound against unbounded growth.
MAX_SHARED_SETS = 10_000
NO_IDS: frozenset[int] = frozenset()

_session = StaffSession.__table__  # type: ignore[attr-defined]
_staff = Staff.__table__  # type: ignore[attr-defined]
_sites = StaffSite.__table__  # type: ignore[attr-defined]
_lines = StaffLine.__table__  # type: ignore[attr-defined]


def padded(keys: list[str]) -> list[str]:
    """The keys, the last repeated up to the next power of two (an IN list's length)."""
    size = 1
    while size < len(keys):
        size *= 2
    return keys + keys[-1:] * (size - len(keys))


class Batched(Generic[K, V]):
    """Calls made while a batch runs are answered together by the next one.

    Nothing waits on purpose: a lone call runs at once. Calls that arrive during a run queue
    up, and the next run takes up to `limit` of them. `run` answers each key with its value
    or the AppError to raise; if it fails, every caller of that batch gets its exception.
    """

    def __init__(
        self, run: Callable[[list[K]], Awaitable[dict[K, V | AppError]]], limit: int
    ) -> None:
        self._run = run
        self._limit = limit
        self._waiting: dict[K, list[asyncio.Future[V]]] = {}
        self._running: dict[K, list[asyncio.Future[V]]] = {}
        self._worker: asyncio.Task[None] | None = None

    async def get(self, key: K) -> V:
        fut: asyncio.Future[V] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(key, []).append(fut)
        if self._worker is None:
            self._start()
        return await fut

    def _start(self) -> None:
        # A context of its own: the batch works for many requests, not the first one's.
        self._worker = asyncio.create_task(self._work(), context=contextvars.Context())
        self._worker.add_done_callback(self._stopped)

    async def _work(self) -> None:
        while self._waiting:
            keys = list(itertools.islice(self._waiting, self._limit))
            self._running = {k: self._waiting.pop(k) for k in keys}
            try:
                results = await self._run(keys)
                answers: list[tuple[list[asyncio.Future[V]], Any]] = [
                    (futs, results[k]) for k, futs in self._running.items()
                ]
            except Exception as e:
                answers = [(futs, e) for futs in self._running.values()]
            self._running = {}
            for futs, answer in answers:
                for fut in futs:
                    if fut.done():
                        continue  # its caller went away
                    if isinstance(answer, BaseException):
                        fut.set_exception(answer)
                    else:
                        fut.set_result(answer)

    def _stopped(self, task: asyncio.Task[None]) -> None:
        self._worker = None
        failed = task.cancelled() or task.exception() is not None
        if failed:
            if not task.cancelled():
                log.error("batched lookups stopped", exc_info=task.exception())
            # Cancelled (the loop is closing) or broken: nobody may wait forever.
            for futs in [*self._running.values(), *self._waiting.values()]:
                for fut in futs:
                    fut.cancel()
            self._running, self._waiting = {}, {}
        elif self._waiting:
            self._start()  # calls made after the last batch and before this callback


class StaffSessions:
    """The session check of socket connects: token hashes in, principals (or refusals) out."""

    def __init__(self, settings: Settings, dialect: str) -> None:
        self.settings = settings
        # One value per session row: PostgreSQL aggregates into an array, SQLite into text.
        agg = func.array_agg if dialect == "postgresql" else func.group_concat
        site_ids = select(agg(_sites.c.site_id)).where(_sites.c.staff_id == _session.c.staff_id)
        line_ids = select(agg(_lines.c.line_id)).where(_lines.c.staff_id == _session.c.staff_id)
        hashes = bindparam("hashes", expanding=True)
        self._read = (
            select(
                _session.c.token_hash,
                _session.c.expires_at,
                _session.c.last_seen_at,
                _staff.c.id,
                _staff.c.username,
                _staff.c.display_name,
                _staff.c.role,
                _staff.c.skills,
                _staff.c.active,
                site_ids.scalar_subquery().label("site_ids"),
                line_ids.scalar_subquery().label("line_ids"),
            )
            .join_from(_session, _staff, _staff.c.id == _session.c.staff_id)
            .where(_session.c.token_hash.in_(hashes))
        )
        self._delete = delete(_session).where(_session.c.token_hash.in_(hashes))
        self._touch = (
            update(_session)
            .where(_session.c.token_hash.in_(hashes))
            .values(last_seen_at=bindparam("now"))
        )
        self._shared: dict[frozenset[int], frozenset[int]] = {}

    async def check(
        self, conn: AsyncConnection, hashes: list[str], now: dt.datetime
    ) -> dict[str, Principal | AppError]:
        """Each session's principal or refusal; writes the deletes and touches (caller commits)."""
        rows = (await conn.execute(self._read, {"hashes": padded(hashes)})).all()
        out: dict[str, Principal | AppError] = {h: Unauthenticated() for h in hashes}
        expired: list[str] = []
        due: list[str] = []
        for row in rows:
            h = row.token_hash
            if session_expired(
                self.settings, expires_at=row.expires_at, last_seen_at=row.last_seen_at, now=now
            ):
                expired.append(h)
                out[h] = Unauthenticated("session_expired")
                continue
            if not row.active:
                continue
            if touch_due(self.settings, last_seen_at=row.last_seen_at, now=now):
                due.append(h)
            out[h] = Principal(
                staff_id=row.id,
                username=row.username,
                display_name=row.display_name,
                role=Role(row.role),
                site_ids=self._ids(row.site_ids),
                line_ids=self._ids(row.line_ids),
                skills=tuple(row.skills or ()),
                session_id=h,
            )
        if expired:
            await conn.execute(self._delete, {"hashes": padded(sorted(expired))})
        if due:
            await conn.execute(self._touch, {"hashes": padded(sorted(due)), "now": now})
        return out

    def _ids(self, value: Any) -> frozenset[int]:
        """An aggregate of ids (a list, or comma-separated text) as a shared frozenset."""
        if not value:
            return NO_IDS
        ids = frozenset(int(x) for x in (value.split(",") if isinstance(value, str) else value))
        shared = self._shared.get(ids)
        if shared is None:
            if len(self._shared) >= MAX_SHARED_SETS:
                self._shared.clear()
            shared = self._shared[ids] = ids
        return shared
