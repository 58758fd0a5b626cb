"""Shared fast state: who is in which call, and a change counter per window line.

Call membership is checked by every SDP and ICE message (the relay's hot path); the line
counters tell every node which queues changed, so each can push fresh positions to the
clients connected to it. The database is the record; this is the fast copy, updated after
each commit. One node keeps it in memory; several nodes share it in Redis.
"""

from __future__ import annotations

from typing import Protocol

import redis.asyncio as aioredis

# A call's membership outlives any real call; the key expires if a node never cleaned it up.
REDIS_TTL_S = 24 * 3600


class CallRegistry(Protocol):
    async def add(self, call_id: int, pid: int) -> None: ...
    async def remove(self, call_id: int, pid: int) -> None: ...
    async def drop(self, call_id: int) -> None: ...
    async def has(self, call_id: int, pid: int) -> bool: ...
    async def bump_lines(self, line_ids: set[int]) -> None: ...
    async def line_versions(self, line_ids: list[int]) -> dict[int, int]: ...
    async def close(self) -> None: ...


class MemoryRegistry:
    def __init__(self) -> None:
        self._calls: dict[int, set[int]] = {}
        self._lines: dict[int, int] = {}

    async def add(self, call_id: int, pid: int) -> None:
        self._calls.setdefault(call_id, set()).add(pid)

    async def remove(self, call_id: int, pid: int) -> None:
        members = self._calls.get(call_id)
        if members is not None:
            members.discard(pid)
            if not members:
                del self._calls[call_id]

    async def drop(self, call_id: int) -> None:
        self._calls.pop(call_id, None)

    async def has(self, call_id: int, pid: int) -> bool:
        return pid in self._calls.get(call_id, ())

    async def bump_lines(self, line_ids: set[int]) -> None:
        for line_id in line_ids:
            self._lines[line_id] = self._lines.get(line_id, 0) + 1

    async def line_versions(self, line_ids: list[int]) -> dict[int, int]:
        return {line_id: self._lines.get(line_id, 0) for line_id in line_ids}

    async def close(self) -> None:
        self._calls.clear()


class RedisRegistry:
    def __init__(self, url: str, prefix: str = "cloudwindow") -> None:
        self._redis = aioredis.from_url(url)
        self._prefix = prefix

    def _key(self, call_id: int) -> str:
        return f"{self._prefix}:call:{call_id}:members"

    async def add(self, call_id: int, pid: int) -> None:
        key = self._key(call_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            await pipe.sadd(key, pid).expire(key, REDIS_TTL_S).execute()

    async def remove(self, call_id: int, pid: int) -> None:
        await self._redis.srem(self._key(call_id), pid)

    async def drop(self, call_id: int) -> None:
        await self._redis.delete(self._key(call_id))

    async def has(self, call_id: int, pid: int) -> bool:
        return bool(await self._redis.sismember(self._key(call_id), pid))

    async def bump_lines(self, line_ids: set[int]) -> None:
        if line_ids:
            async with self._redis.pipeline(transaction=False) as pipe:
                for line_id in line_ids:
                    pipe.incr(f"{self._prefix}:line:{line_id}:v")
                await pipe.execute()

    async def line_versions(self, line_ids: list[int]) -> dict[int, int]:
        if not line_ids:
            return {}
        values = await self._redis.mget([f"{self._prefix}:line:{i}:v" for i in line_ids])
        return {i: int(v or 0) for i, v in zip(line_ids, values, strict=True)}

    async def close(self) -> None:
        await self._redis.aclose()
