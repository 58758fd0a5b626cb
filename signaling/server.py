"""The socket.io server: authenticated connections, validated events, commit-then-deliver.

Every client event is declared once in signaling.handlers.EVENTS (payload type, policy
action, summary, handler): the same table dispatches, authorizes and documents.
Acks are {"ok": true, "data": ...} or {"ok": false, "error": {"code", "message", ...}}.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import socket
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from typing import Any

import socketio
from pydantic import BaseModel, ValidationError
from sqlmodel.ext.asyncio.session import AsyncSession

from core import resident_auth
from core import staff as staff_service
from core.access import Principal, authorize
from core.db import Database, keep_refusals, utcnow
from core.errors import AppError, Forbidden, Unauthenticated
from core.events import Audience, AudienceKind, Delivery, Event
from core.inputs import check
from core.models import Role
from core.settings import Settings
from signaling import calls, presence, queue, sweeps
from signaling.events import LineStatusChanged, ServerDraining, TicketUpdated
from signaling.handlers import EVENTS
from signaling.handlers.spec import EventSpec
from signaling.models import CallJoin
from signaling.outbox import Outbox
from signaling.payloads import MAX_SDP_BYTES
from signaling.ports import RecorderPort, SnapshotSink
from signaling.registry import CallRegistry, Held, MemoryRegistry, RedisRegistry
from signaling.sessions import MAX_BATCH, Batched, StaffSessions
from signaling.wire import WireServer

log = logging.getLogger("cloudwindow.signaling")

# Queue positions are pushed at most this often per line: a burst of "call next" on a long
# queue becomes one update per holder, not one per change.
PUSH_INTERVAL_S = 0.25
# A connection this far over its event budget is cut off rather than answered.
FLOOD_FACTOR = 4
ROLES_WITH_PRESENCE = (Role.clerk, Role.expert)


@dataclass(slots=True)
class Bucket:
    """Token bucket: `rate` events per second sustained, `burst` at once.

    `refused` counts refusals and drains at the same rate as tokens come back, so a client a
    little over the rate never piles up refusals, while a flood does even though a token
    trickles back between its events.
    """

    rate: float
    burst: float
    tokens: float = 0.0
    stamp: float = field(default_factory=time.monotonic)
    refused: float = 0.0

    def __post_init__(self) -> None:
        self.tokens = self.burst

    def take(self) -> bool:
        now = time.monotonic()
        gained = (now - self.stamp) * self.rate
        self.tokens = min(self.burst, self.tokens + gained)
        self.refused = max(0.0, self.refused - gained)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        self.refused += 1
        return False


@dataclass(slots=True)
class Conn:
    """One socket on this node. Its call maps are made on first use: most sockets join none."""

    principal: Principal
    bucket: Bucket
    cut: bool = False  # being disconnected for flooding
    _calls: dict[int, int] | None = None
    _generations: dict[int, int] | None = None

    @property
    def calls(self) -> dict[int, int]:
        """Call id -> my participant id."""
        if self._calls is None:
            self._calls = {}
        return self._calls

    @property
    def generations(self) -> dict[int, int]:
        """Call id -> my generation."""
        if self._generations is None:
            self._generations = {}
        return self._generations

    def held(self) -> list[tuple[int, int]]:
        """(call id, my participant id) of the calls this socket is in, a copy."""
        return list(self._calls.items()) if self._calls else []


def ok(data: Any = None) -> dict[str, Any]:
    if isinstance(data, BaseModel):
        data = data.model_dump(mode="json")
    return {"ok": True, "data": data}


def fail(err: AppError) -> dict[str, Any]:
    return {"ok": False, "error": err.to_dict("zh") | {"message_en": err.message("en")}}


def refusal(err: AppError) -> socketio.exceptions.ConnectionRefusedError:
    """A refused connection: a client sees err.message, and err.data as {code, message}."""
    data = err.to_dict("zh") | {"message_en": err.message("en")}
    return socketio.exceptions.ConnectionRefusedError(data["message"], data)


def default_node_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def _details(e: ValidationError) -> list[dict[str, Any]]:
    return [
        {"loc": [str(x) for x in err["loc"]], "msg": err["msg"], "type": err["type"]}
        for err in e.errors(include_url=False, include_input=False)
    ]


class Signaling:
    """One per app: the socket.io server plus this node's connections and background work."""

    def __init__(self, settings: Settings, db: Database) -> None:
        self.settings = settings
        self.db = db
        self.node_id = settings.node_id or default_node_id()
        manager = None
        if settings.redis_url:
            manager = socketio.AsyncRedisManager(
                settings.redis_url, channel=f"{settings.redis_namespace}:socketio"
            )
        self.sio = WireServer(
            refuse=lambda name: fail(AppError("socket.unknown_event", event=str(name)[:64])),
            async_mode="aiohttp",
            client_manager=manager,
            cors_allowed_origins=sorted(settings.origins) or None,
            # Scale-out nodes sit behind a load balancer without sticky sessions.
            transports=["websocket"] if settings.redis_url else ["polling", "websocket"],
            max_http_buffer_size=2 * MAX_SDP_BYTES + 16_384,
            # A long-polling POST may carry a whole burst, and more: what the rate limiter
            # judges before its flood cut-off disconnects (engine.io's default is 16 packets).
            packets_per_post=(FLOOD_FACTOR + 1) * settings.socket_event_burst,
            logger=False,
            engineio_logger=False,
        )
        self.registry: CallRegistry = (
            RedisRegistry(settings.redis_url, settings.redis_namespace)
            if settings.redis_url
            else MemoryRegistry()
        )
        self.conns: dict[str, Conn] = {}
        # Staff cookies of connecting sockets, checked many at a time (signaling/sessions.py).
        self.staff_sessions = StaffSessions(settings, db.dialect)
        self.connects: Batched[str, Principal] = Batched(self._connect_batch, MAX_BATCH)
        # staff id -> their sockets on this node (clerks and experts: presence rows are per node)
        self.presence_sockets: Counter[int] = Counter()
        # line -> change counter as last pushed from this node
        self.pushed_versions: dict[int, int] = {}
        # ticket -> (position, eta) as last pushed from this node
        self.last_pushed: dict[int, tuple[int, int | None]] = {}
        self.tasks: list[asyncio.Task[None]] = []
        # This node's recorder peers and the materials store (None in transport-only tests).
        self.recordings: RecorderPort | None = None
        self.materials: SnapshotSink | None = None
        # Handlers running now; shutdown waits for them so their writes are not lost.
        self.inflight: set[asyncio.Task[Any]] = set()
        self.drain_deadline: float | None = None  # loop time by which draining must end
        self.sio.on("connect", self.on_connect)
        self.sio.on("disconnect", self.on_disconnect)
        for spec in EVENTS.values():
            self.sio.on(spec.name, self._dispatcher(spec))
        self.sio.on("*", self.on_unknown)

    # -- lifecycle

    def attach(self, app: Any) -> None:
        self.sio.attach(app)

    def attach_media(
        self, *, recorder: RecorderPort | None, snapshots: SnapshotSink | None
    ) -> None:
        """Plug in this node's recorder peers and where snapshots go (None to detach)."""
        self.recordings, self.materials = recorder, snapshots

    async def start(self) -> None:
        await self.registry.renew_lease(self.node_id, self.settings.presence_ttl_seconds)
        self.tasks = [
            asyncio.create_task(self._loop(self.settings.sweep_interval_seconds, self.sweep)),
            asyncio.create_task(self._loop(PUSH_INTERVAL_S, self.push_changed_lines)),
            asyncio.create_task(
                self._loop(self.settings.presence_ttl_seconds / 3, self.refresh_presence)
            ),
        ]

    def track(self) -> None:
        task = asyncio.current_task()
        if task is not None:
            self.inflight.add(task)
            task.add_done_callback(self.inflight.discard)

    async def drain(self) -> None:
        """Within the drain bound: refuse new sockets, tell clients, finish events, close."""
        loop = asyncio.get_running_loop()
        self.drain_deadline = loop.time() + self.settings.shutdown_drain_seconds
        self.sio.accepting = False
        await self.sio.emit(ServerDraining.name, ServerDraining().payload(), ignore_queue=True)
        await self._wait_inflight()
        # Closing the engine.io session without a socket.io disconnect packet: a client takes
        # it as a lost connection and reconnects by itself, with its own backoff and jitter.
        # Each close runs the disconnect handler first (the grace period of its calls starts).
        eio_sids = [self.sio.manager.eio_sid_from_sid(sid, "/") for sid in list(self.conns)]
        eio_sids = [e for e in eio_sids if e]
        requests = [self.sio.environ.get(e, {}).get("aiohttp.request") for e in eio_sids]
        closing = [asyncio.ensure_future(self.sio.eio.disconnect(e)) for e in eio_sids]
        if closing:
            await asyncio.wait(closing, timeout=self._remaining())
        await self._wait_inflight()
        # A client that does not close its end (gone, or slow) would hold the shutdown until
        # its ping timeout: whatever is still open at the bound is cut.
        open_requests = [r for r in requests if r is not None and not r.task.done()]
        if open_requests:
            await asyncio.wait([r.task for r in open_requests], timeout=self._remaining())
        for r in open_requests:
            if not r.task.done() and r.transport is not None:
                r.transport.abort()

    def _remaining(self) -> float:
        if self.drain_deadline is None:
            return self.settings.shutdown_drain_seconds
        return max(0.0, self.drain_deadline - asyncio.get_running_loop().time())

    async def _wait_inflight(self) -> None:
        """Wait for the event handlers still writing, at most until the drain bound."""
        if self.inflight:
            await asyncio.wait(set(self.inflight), timeout=self._remaining())

    async def stop(self) -> None:
        for t in self.tasks:
            t.cancel()
        for t in self.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        await self._wait_inflight()
        for sid in list(self.conns):
            with contextlib.suppress(Exception):
                await self.sio.disconnect(sid)
        await self.registry.end_lease(self.node_id)
        await self.registry.close()
        manager = self.sio.manager
        if isinstance(manager, socketio.AsyncRedisManager):
            with contextlib.suppress(Exception):
                await manager.redis.aclose()

    async def _loop(self, interval: float, work: Callable[[], Awaitable[Any]]) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await work()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("background work failed: %s", getattr(work, "__name__", work))

    # -- delivery

    async def deliver(self, deliveries: list[Delivery]) -> None:
        """Send committed events to their audiences' rooms (every node's clients)."""
        for d in deliveries:
            await self.sio.emit(d.event.name, d.event.payload(), room=d.to.room)

    async def deliver_here(self, event: Event, to: Audience) -> None:
        """Send an event to this node's sockets in the audience only (no pub/sub fan-out)."""
        await self.sio.emit(event.name, event.payload(), room=to.room, ignore_queue=True)

    async def relay(self, event: Event, to: Audience, skip_sid: str) -> None:
        """Forward a peer's message to the audience, except the sender's own socket."""
        await self.sio.emit(event.name, event.payload(), room=to.room, skip_sid=skip_sid)

    async def enter(self, sid: str, *audiences: Audience) -> None:
        for audience in audiences:
            await self.sio.enter_room(sid, audience.room)

    async def leave(self, sid: str, *audiences: Audience) -> None:
        for audience in audiences:
            await self.sio.leave_room(sid, audience.room)

    async def follow_lines(self, sid: str, conn: Conn, line_ids: frozenset[int]) -> None:
        """The socket's principal and line rooms follow the lines the clerk has now; both
        lines' clerk counts are pushed if they changed."""
        me = conn.principal
        if line_ids == me.line_ids:
            return
        gone, new = me.line_ids - line_ids, line_ids - me.line_ids
        conn.principal = dataclasses.replace(me, line_ids=line_ids)
        await self.leave(sid, *map(Audience.line, gone))
        await self.enter(sid, *map(Audience.line, new))
        if me.role in ROLES_WITH_PRESENCE:
            await self.registry.bump_lines(gone | new)

    # -- connections

    async def _connect_batch(self, hashes: list[str]) -> dict[str, Principal | AppError]:
        """One transaction for a batch of staff connects: sessions checked, presence set."""
        now = utcnow()
        async with self.db.engine.begin() as conn:
            out = await self.staff_sessions.check(conn, hashes, now)
            here = [
                p.staff_id
                for p in out.values()
                if isinstance(p, Principal) and p.role in ROLES_WITH_PRESENCE
            ]
            await presence.connected(conn=conn, staff_ids=here, node_id=self.node_id, now=now)
        return out

    async def _resident(self, token: str) -> Principal:
        async with self.db.session() as session:
            async with keep_refusals(session):
                principal, _row = await resident_auth.authenticate(
                    session=session, settings=self.settings, token=token
                )
            await session.commit()
        return principal

    async def on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> bool:
        cookie = SimpleCookie(environ.get("HTTP_COOKIE", ""))
        staff_cookie = cookie.get(self.settings.session_cookie_name)
        resident_cookie = cookie.get(resident_auth.RESIDENT_COOKIE)
        try:
            if staff_cookie is not None:
                token = staff_cookie.value
                if not token or len(token) > 200:
                    raise Unauthenticated()
                principal = await self.connects.get(staff_service.token_hash(token))
            elif resident_cookie is not None:
                principal = await self._resident(resident_cookie.value)
            else:
                raise Unauthenticated()
        except Unauthenticated as e:
            raise refusal(e) from None
        rate, burst = self.settings.socket_events_per_second, self.settings.socket_event_burst
        self.conns[sid] = Conn(principal, Bucket(rate, burst))
        present = principal.role in ROLES_WITH_PRESENCE
        if present:
            self.presence_sockets[principal.staff_id] += 1
        rooms = [Audience.staff(principal.staff_id), *map(Audience.line, principal.line_ids)]
        if principal.role is Role.expert:
            rooms += map(Audience.skill, principal.skills)
        await self.enter(sid, *rooms)
        if present:
            await self.registry.bump_lines(set(principal.line_ids))
        return True

    async def on_disconnect(self, sid: str, *_args: Any) -> None:
        self.track()
        conn = self.conns.pop(sid, None)
        if conn is None:
            return
        me = conn.principal
        gone = False
        if me.role in ROLES_WITH_PRESENCE:
            self.presence_sockets[me.staff_id] -= 1
            gone = self.presence_sockets[me.staff_id] <= 0
            if gone:
                del self.presence_sockets[me.staff_id]
        if not conn.held() and not gone:
            return  # nothing to record: no database work for an idle socket going away
        outbox = Outbox()
        async with self.db.session() as session:
            # A handler still running for this socket may join or leave a call meanwhile.
            for call_id, pid in conn.held():
                await calls.disconnected(
                    session=session,
                    outbox=outbox,
                    call_id=call_id,
                    pid=pid,
                    generation=conn.generations.get(call_id, 0),
                )
            if gone:
                await presence.drop_presence(
                    session=session, staff_id=me.staff_id, node_id=self.node_id
                )
                outbox.lines.update(me.line_ids)
            await session.commit()
        await self.flush(outbox)
        for call_id, pid in conn.held():
            await self.registry.release(self.node_id, call_id, pid)

    async def on_unknown(self, event: str, sid: str, *_args: Any) -> dict[str, Any]:
        return fail(AppError("socket.unknown_event", event=str(event)[:64]))

    # -- dispatch

    def _dispatcher(self, spec: EventSpec) -> Callable[..., Awaitable[dict[str, Any]]]:
        async def dispatch(sid: str, data: Any = None, *_extra: Any) -> dict[str, Any]:
            self.track()
            conn = self.conns.get(sid)
            if conn is None:
                return fail(Unauthenticated())
            if not conn.bucket.take():
                flooding = conn.bucket.refused > FLOOD_FACTOR * self.settings.socket_event_burst
                if flooding and not conn.cut:
                    conn.cut = True
                    log.warning(
                        "disconnecting a flooding socket of staff %s", conn.principal.staff_id
                    )
                    asyncio.get_running_loop().call_soon(
                        lambda: asyncio.ensure_future(self.sio.disconnect(sid))
                    )
                return fail(AppError("rate_limited", retry_after=1))
            try:
                check(data)
                payload = spec.payload.model_validate(data if data is not None else {})
            except AppError as e:
                return fail(e)
            except ValidationError as e:
                return fail(AppError("validation", details=_details(e)))
            try:
                if spec.action is not None:
                    authorize(conn.principal, spec.action)
                return ok(await spec.handler(self, sid, conn, payload))
            except AppError as e:
                return fail(e)
            except Exception:
                log.exception("socket event %s failed", spec.name)
                return fail(AppError("internal"))

        return dispatch

    async def run(
        self,
        work: Callable[[AsyncSession, Outbox], Awaitable[Any]],
        before_flush: Callable[[Any], Awaitable[Any]] | None = None,
    ) -> Any:
        """Run service work in one transaction; deliver its events only after the commit.

        `before_flush` runs between the two, e.g. to join a room that the flush will push to.
        """
        outbox = Outbox()
        async with self.db.session() as session:
            result = await work(session, outbox)
            await session.commit()
        if before_flush is not None:
            await before_flush(result)
        await self.flush(outbox)
        return result

    async def flush(self, outbox: Outbox) -> None:
        """After a commit: update the fast state, deliver the events, stop what ended."""
        for call_id, pid, _staff in outbox.joined:
            await self.registry.add(call_id, pid)
        for call_id, pid in outbox.left:
            await self.registry.remove(call_id, pid)
        for call_id in outbox.ended:
            await self.registry.drop(call_id)
        await self.deliver(outbox.take())
        await self.registry.bump_lines(outbox.lines)
        if self.recordings is not None:
            # Recording ends with the participant or the call; this node's recorders only.
            for call_id, pid in outbox.left:
                await self.recordings.stop(call_id, pid, reason="left")
            for call_id in outbox.ended:
                await self.recordings.stop(call_id, reason="call_ended")

    async def recording_notice(self, session: AsyncSession, join: CallJoin) -> None:
        """Tell the joiner whether the call is recorded (join_rooms reads it if not done yet)."""
        if self.recordings is not None:
            policy = await self.recordings.policy(session, join.call_id)
            join.recording = policy.model_dump()

    async def join_rooms(self, sid: str, conn: Conn, join: CallJoin) -> None:
        if self.recordings is not None and join.recording is None:
            async with self.db.session() as session:
                await self.recording_notice(session, join)
        conn.calls[join.call_id] = join.participant_id
        conn.generations[join.call_id] = join.generation
        await self.registry.hold(self.node_id, join.call_id, join.participant_id, join.generation)
        await self.enter(
            sid, Audience.call(join.call_id), Audience.participant(join.participant_id)
        )

    async def forget_call(self, conn: Conn, call_id: int) -> None:
        """This socket is no longer in the call (it left, or the call is gone)."""
        pid = conn.calls.pop(call_id, None)
        if pid is not None:
            await self.registry.release(self.node_id, call_id, pid)

    async def my_pid(self, conn: Conn, call_id: int) -> int:
        pid = conn.calls.get(call_id)
        if pid is None or not await self.registry.has(call_id, pid):
            await self.forget_call(conn, call_id)
            raise Forbidden("call.not_participant")
        return pid

    # -- background work

    def local_rooms(self, kind: AudienceKind) -> dict[int, int]:
        """This node's rooms of one audience kind (lines, tickets) -> their id and member count."""
        prefix = Audience(kind, "").room
        rooms = self.sio.manager.rooms.get("/", {})
        out = {}
        for name, members in rooms.items():
            if isinstance(name, str) and name.startswith(prefix) and members:
                with contextlib.suppress(ValueError):
                    out[int(name[len(prefix) :])] = len(members)
        return out

    async def push_changed_lines(self) -> None:
        """Push fresh line status and queue positions to the clients connected to this node.

        Each node serves only its own sockets (ignore_queue=True: no pub/sub fan-out), and only
        for lines whose change counter moved since its last push, so the cost follows the
        number of watchers here, not the length of the queue or the number of nodes.
        """
        line_rooms = self.local_rooms(AudienceKind.line)
        ticket_rooms = self.local_rooms(AudienceKind.ticket)
        ticket_lines: dict[int, int] = {}
        if ticket_rooms:
            async with self.db.session() as session:
                ticket_lines = await queue.waiting_ticket_lines(
                    session=session, ticket_ids=list(ticket_rooms)
                )
        lines = sorted(set(line_rooms) | set(ticket_lines.values()))
        versions = await self.registry.line_versions(lines)
        # Read the ticket rooms again now that the versions are read: a holder who joined in
        # between (its take bumped a version we just read) is pushed now; one who joins later
        # bumps the version again and is pushed next round. Never a change with no push.
        joined = set(self.local_rooms(AudienceKind.ticket)) - set(ticket_rooms)
        if joined:
            async with self.db.session() as session:
                ticket_lines.update(
                    await queue.waiting_ticket_lines(session=session, ticket_ids=list(joined))
                )
        for line_id in lines:
            if self.pushed_versions.get(line_id) == versions[line_id]:
                continue
            self.pushed_versions[line_id] = versions[line_id]
            watched = {t for t, ln in ticket_lines.items() if ln == line_id}
            await self.push_line(line_id, watched)

    async def push_line(self, line_id: int, watched: set[int]) -> None:
        async with self.db.session() as session:
            status, positions = await queue.line_snapshot(
                session=session, settings=self.settings, line_id=line_id
            )
            changed = [
                tid
                for tid in watched
                if tid in positions and self.last_pushed.get(tid) != positions[tid]
            ]
            reads = (
                await queue.read_tickets(
                    session=session,
                    tickets=await queue.tickets_by_id(session=session, ids=changed),
                    positions=positions,
                )
                if changed
                else []
            )
        await self.deliver_here(LineStatusChanged(**status.model_dump()), Audience.line(line_id))
        for read in reads:
            self.last_pushed[read.id] = positions[read.id]
            await self.deliver_here(TicketUpdated(ticket=read), Audience.ticket(read.id))
        for tid in watched - positions.keys():
            self.last_pushed.pop(tid, None)

    async def sweep(self) -> None:
        await self.sweep_dead_nodes()
        await self.run(
            lambda s, o: sweeps.sweep_unanswered(session=s, settings=self.settings, outbox=o)
        )
        await self.run(
            lambda s, o: sweeps.sweep_dropped(session=s, settings=self.settings, outbox=o)
        )

    async def sweep_dead_nodes(self) -> None:
        """Nodes whose lease expired: their participants drop (then leave), presence goes."""
        for node, held in (await self.registry.claim_dead(self.node_id)).items():
            log.warning("node %s stopped renewing its lease; %d participants", node, len(held))

            async def work(
                session: AsyncSession, outbox: Outbox, node: str = node, held: list[Held] = held
            ) -> None:
                for call_id, pid, generation in held:
                    await calls.disconnected(
                        session=session,
                        outbox=outbox,
                        call_id=call_id,
                        pid=pid,
                        generation=generation,
                    )
                outbox.lines.update(await presence.drop_node(session=session, node_id=node))

            await self.run(work)

    async def refresh_presence(self) -> None:
        await self.registry.renew_lease(self.node_id, self.settings.presence_ttl_seconds)
        here = set(self.presence_sockets)
        if here:
            async with self.db.session() as session:
                await presence.refresh_presence(
                    session=session, node_id=self.node_id, staff_ids=here
                )
                await session.commit()
