"""Shared fast state: who is in which call, and a change counter per window line.

Call membership is checked by every SDP and ICE message (the relay's hot path); the line
counters tell every node which queues changed, so each can push fresh positions to the
clients connected to it. The database is the record; this is the fast copy, updated after
each commit. One node keeps it in memory; several nodes share it in Redis.

Across nodes each node also keeps a lease (a key that expires unless renewed) and the
participants whose sockets it holds, so that when a node dies another one can hand those
participants to the normal drop → grace → left path (exactly one node claims a dead node).
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
    async def renew_lease(self, node_id: str, ttl_s: float) -> None: ...
    async def end_lease(self, node_id: str) -> None: ...
    async def hold(self, node_id: str, call_id: int, pid: int, generation: int) -> None: ...
    async def release(self, node_id: str, call_id: int, pid: int) -> None: ...
    async def claim_dead(self, me: str) -> dict[str, list[Held]]: ...
    async def close(self) -> None: ...


# A participant whose socket a node holds: (call id, participant id, generation).
Held = tuple[int, int, int]


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

    # One node has no other node to outlive it: leases are only kept across nodes.
    async def renew_lease(self, node_id: str, ttl_s: float) -> None:
        return None

    async def end_lease(self, node_id: str) -> None:
        return None

    async def hold(self, node_id: str, call_id: int, pid: int, generation: int) -> None:
        return None

    async def release(self, node_id: str, call_id: int, pid: int) -> None:
        return None

    async def claim_dead(self, me: str) -> dict[str, list[Held]]:
        return {}

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

    def _nodes(self) -> str:
        return f"{self._prefix}:nodes"

    def _lease(self, node_id: str) -> str:
        return f"{self._prefix}:node:{node_id}:lease"

    def _held(self, node_id: str) -> str:
        return f"{self._prefix}:node:{node_id}:held"

    async def renew_lease(self, node_id: str, ttl_s: float) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(self._lease(node_id), 1, px=int(ttl_s * 1000))
            pipe.sadd(self._nodes(), node_id)
            await pipe.execute()

    async def end_lease(self, node_id: str) -> None:
        """A clean stop: its sockets were closed (and their drops recorded) before this."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.srem(self._nodes(), node_id)
            pipe.delete(self._lease(node_id), self._held(node_id))
            await pipe.execute()

    async def hold(self, node_id: str, call_id: int, pid: int, generation: int) -> None:
        await self._redis.hset(self._held(node_id), f"{call_id}:{pid}", generation)

    async def release(self, node_id: str, call_id: int, pid: int) -> None:
        await self._redis.hdel(self._held(node_id), f"{call_id}:{pid}")

    async def claim_dead(self, me: str) -> dict[str, list[Held]]:
        """Nodes whose lease expired, each claimed by one caller only (SREM answers 1 once)."""
        out: dict[str, list[Held]] = {}
        for raw in await self._redis.smembers(self._nodes()):
            node = raw.decode() if isinstance(raw, bytes) else str(raw)
            if node == me or await self._redis.exists(self._lease(node)):
                continue
            if not await self._redis.srem(self._nodes(), node):
                continue  # another node claimed it first
            held = await self._redis.hgetall(self._held(node))
            await self._redis.delete(self._held(node))
            out[node] = [
                (int(k.split(b":")[0]), int(k.split(b":")[1]), int(v)) for k, v in held.items()
            ]
        return out

    async def close(self) -> None:
        await self._redis.aclose()
