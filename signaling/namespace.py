"""The socket.io server: authenticated connections, validated events, commit-then-emit.

Every client event is declared once in EVENTS (payload type, policy action, summary): the
same table dispatches, authorizes and documents (docs/protocol.md is checked against it).
Acks are {"ok": true, "data": ...} or {"ok": false, "error": {"code", "message", ...}}.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from typing import TYPE_CHECKING, Any

import socketio
from pydantic import BaseModel, ValidationError
from sqlmodel.ext.asyncio.session import AsyncSession

from core import resident_auth
from core import staff as staff_service
from core.access import Principal, authorize, require_ticket
from core.db import Database, keep_refusals
from core.events import Delivery
from core.errors import AppError, Forbidden, Unauthenticated
from core.models import Role
from core.settings import Settings
from signaling import events as ev
from signaling import service as svc
from signaling.models import Call, CallParticipant, PresenceStatus
from signaling.registry import CallRegistry, MemoryRegistry, RedisRegistry

if TYPE_CHECKING:
    from media.service import Recordings
    from uploads.service import Materials

log = logging.getLogger("cloudwindow.signaling")

# Queue positions are pushed at most this often per line: a burst of "call next" on a long
# queue becomes one update per holder, not one per change.
PUSH_INTERVAL_S = 0.25
# Shutdown waits this long for event handlers that are still writing.
SHUTDOWN_WAIT_S = 5.0
# A connection this far over its event budget is cut off rather than answered.
FLOOD_FACTOR = 4
ROLES_WITH_PRESENCE = (Role.clerk, Role.expert)


@dataclass
class Bucket:
    """Token bucket: `rate` events per second sustained, `burst` at once."""

    rate: float
    burst: float
    tokens: float = 0.0
    stamp: float = field(default_factory=time.monotonic)
    refused: int = 0

    def __post_init__(self) -> None:
        self.tokens = self.burst

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            self.refused = 0
            return True
        self.refused += 1
        return False


@dataclass
class Conn:
    principal: Principal
    bucket: Bucket
    calls: dict[int, int] = field(default_factory=dict)  # call id -> my participant id
    generations: dict[int, int] = field(default_factory=dict)  # call id -> my generation


Handler = Callable[["Signaling", str, Conn, Any], Awaitable[Any]]


@dataclass(frozen=True)
class EventSpec:
    name: str
    payload: type[BaseModel]
    action: str | None  # policy action; None = any logged-in staff
    summary: str
    handler: Handler
    ack: str = "null"
    errors: tuple[str, ...] = ()


def ok(data: Any = None) -> dict[str, Any]:
    if isinstance(data, BaseModel):
        data = data.model_dump(mode="json")
    return {"ok": True, "data": data}


def fail(err: AppError) -> dict[str, Any]:
    return {"ok": False, "error": err.to_dict("zh") | {"message_en": err.message("en")}}


def default_node_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


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
        self.sio = socketio.AsyncServer(
            async_mode="aiohttp",
            client_manager=manager,
            cors_allowed_origins=sorted(settings.origins) or None,
            # Scale-out nodes sit behind a load balancer without sticky sessions.
            transports=["websocket"] if settings.redis_url else ["polling", "websocket"],
            max_http_buffer_size=2 * ev.MAX_SDP_BYTES + 16_384,
            logger=False,
            engineio_logger=False,
        )
        self.registry: CallRegistry = (
            RedisRegistry(settings.redis_url, settings.redis_namespace)
            if settings.redis_url
            else MemoryRegistry()
        )
        self.conns: dict[str, Conn] = {}
        # staff id -> their sockets on this node (clerks and experts: presence rows are per node)
        self.presence_sockets: Counter[int] = Counter()
        # line -> change counter as last pushed from this node
        self.pushed_versions: dict[int, int] = {}
        # ticket -> (position, eta) as last pushed from this node
        self.last_pushed: dict[int, tuple[int, int | None]] = {}
        self.tasks: list[asyncio.Task[None]] = []
        # This node's recorder peers (set by the app; None in transport-only tests).
        self.recordings: Recordings | None = None
        self.materials: Materials | None = None
        # Handlers running now; shutdown waits for them so their writes are not lost.
        self.inflight: set[asyncio.Task[Any]] = set()
        self.sio.on("connect", self.on_connect)
        self.sio.on("disconnect", self.on_disconnect)
        for spec in EVENTS.values():
            self.sio.on(spec.name, self._dispatcher(spec))
        self.sio.on("*", self.on_unknown)

    # -- lifecycle

    def attach(self, app: Any) -> None:
        self.sio.attach(app)

    async def start(self) -> None:
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

    async def stop(self) -> None:
        for t in self.tasks:
            t.cancel()
        for t in self.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        if self.inflight:
            await asyncio.wait(set(self.inflight), timeout=SHUTDOWN_WAIT_S)
        for sid in list(self.conns):
            with contextlib.suppress(Exception):
                await self.sio.disconnect(sid)
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

    async def deliver(self, deliveries: list[Delivery]) -> None:
        """Send committed events to their audiences' rooms (every node's clients)."""
        for d in deliveries:
            await self.sio.emit(d.event.name, d.event.payload(), room=d.to.room)

    # -- connections

    async def _authenticate(
        self, session: AsyncSession, staff_cookie: Any, resident_cookie: Any
    ) -> Principal:
        if staff_cookie is not None:
            principal, _row = await staff_service.authenticate(
                session=session, settings=self.settings, token=staff_cookie.value
            )
        else:
            principal, _row = await resident_auth.authenticate(
                session=session, settings=self.settings, token=resident_cookie.value
            )
        return principal

    async def on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> bool:
        cookie = SimpleCookie(environ.get("HTTP_COOKIE", ""))
        staff_cookie = cookie.get(self.settings.session_cookie_name)
        resident_cookie = cookie.get(resident_auth.RESIDENT_COOKIE)
        if staff_cookie is None and resident_cookie is None:
            raise socketio.exceptions.ConnectionRefusedError(Unauthenticated().to_dict())
        async with self.db.session() as session:
            try:
                async with keep_refusals(session):
                    principal = await self._authenticate(session, staff_cookie, resident_cookie)
            except Unauthenticated as e:
                raise socketio.exceptions.ConnectionRefusedError(e.to_dict()) from None
            if principal.role in ROLES_WITH_PRESENCE:
                await svc.set_presence(
                    session=session,
                    staff_id=principal.staff_id,
                    node_id=self.node_id,
                    status=PresenceStatus.available,
                )
            await session.commit()
        rate = self.settings.socket_events_per_second
        self.conns[sid] = Conn(principal, Bucket(rate, self.settings.socket_event_burst))
        if principal.role in ROLES_WITH_PRESENCE:
            self.presence_sockets[principal.staff_id] += 1
        await self.sio.enter_room(sid, svc.room_staff(principal.staff_id))
        for skill in principal.skills if principal.role == Role.expert else ():
            await self.sio.enter_room(sid, svc.room_skill(skill))
        for line_id in principal.line_ids:
            await self.sio.enter_room(sid, svc.room_line(line_id))
        if principal.role in ROLES_WITH_PRESENCE:
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
        if not conn.calls and not gone:
            return  # nothing to record: no database work for an idle socket going away
        outbox = svc.Outbox()
        async with self.db.session() as session:
            for call_id, pid in conn.calls.items():
                await svc.disconnected(
                    session=session,
                    outbox=outbox,
                    call_id=call_id,
                    pid=pid,
                    generation=conn.generations.get(call_id, 0),
                )
            if gone:
                await svc.drop_presence(session=session, staff_id=me.staff_id, node_id=self.node_id)
                outbox.lines.update(me.line_ids)
            await session.commit()
        await self.flush(outbox)

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
                if conn.bucket.refused > FLOOD_FACTOR * self.settings.socket_event_burst:
                    log.warning(
                        "disconnecting a flooding socket of staff %s", conn.principal.staff_id
                    )
                    asyncio.get_running_loop().call_soon(
                        lambda: asyncio.ensure_future(self.sio.disconnect(sid))
                    )
                return fail(AppError("rate_limited", retry_after=1))
            try:
                payload = spec.payload.model_validate(data if data is not None else {})
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
        work: Callable[[Any, svc.Outbox], Awaitable[Any]],
        before_flush: Callable[[Any], Awaitable[Any]] | None = None,
    ) -> Any:
        """Run service work in one transaction; emit its events only after the commit.

        `before_flush` runs between the two, e.g. to join a room that the flush will push to.
        """
        outbox = svc.Outbox()
        async with self.db.session() as session:
            result = await work(session, outbox)
            await session.commit()
        if before_flush is not None:
            await before_flush(result)
        await self.flush(outbox)
        return result

    async def flush(self, outbox: svc.Outbox) -> None:
        for call_id, pid, _staff in outbox.joined:
            await self.registry.add(call_id, pid)
        for call_id, pid in outbox.left:
            await self.registry.remove(call_id, pid)
        for call_id in outbox.ended:
            await self.registry.drop(call_id)
        for e in outbox.emits:
            await self.sio.emit(e.event, e.data, room=e.room)
        await self.registry.bump_lines(outbox.lines)
        if self.recordings is not None:
            # Recording ends with the participant or the call; this node's recorders only.
            for call_id, pid in outbox.left:
                await self.recordings.stop(call_id, pid, reason="left")
            for call_id in outbox.ended:
                await self.recordings.stop(call_id, reason="call_ended")

    async def join_rooms(self, sid: str, conn: Conn, join: svc.CallJoin) -> None:
        if self.recordings is not None:
            async with self.db.session() as session:
                policy = await self.recordings.policy(session, join.call_id)
            join.recording = policy.model_dump()
        conn.calls[join.call_id] = join.participant_id
        conn.generations[join.call_id] = join.generation
        await self.sio.enter_room(sid, svc.room_call(join.call_id))
        await self.sio.enter_room(sid, svc.room_participant(join.participant_id))

    async def my_pid(self, conn: Conn, call_id: int) -> int:
        pid = conn.calls.get(call_id)
        if pid is None or not await self.registry.has(call_id, pid):
            conn.calls.pop(call_id, None)
            raise Forbidden("call.not_participant")
        return pid

    # -- background work

    def local_rooms(self, prefix: str) -> dict[int, int]:
        """Rooms of this node with a prefix ("line:", "ticket:") -> their id and member count."""
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
        line_rooms = self.local_rooms("line:")
        ticket_rooms = self.local_rooms("ticket:")
        ticket_lines: dict[int, int] = {}
        if ticket_rooms:
            async with self.db.session() as session:
                ticket_lines = await svc.waiting_ticket_lines(session, list(ticket_rooms))
        lines = sorted(set(line_rooms) | set(ticket_lines.values()))
        versions = await self.registry.line_versions(lines)
        # Read the ticket rooms again now that the versions are read: a holder who joined in
        # between (its take bumped a version we just read) is pushed now; one who joins later
        # bumps the version again and is pushed next round. Never a change with no push.
        joined = set(self.local_rooms("ticket:")) - set(ticket_rooms)
        if joined:
            async with self.db.session() as session:
                ticket_lines.update(await svc.waiting_ticket_lines(session, list(joined)))
        for line_id in lines:
            if self.pushed_versions.get(line_id) == versions[line_id]:
                continue
            self.pushed_versions[line_id] = versions[line_id]
            watched = {t for t, ln in ticket_lines.items() if ln == line_id}
            await self.push_line(line_id, watched)

    async def push_line(self, line_id: int, watched: set[int]) -> None:
        async with self.db.session() as session:
            status, positions = await svc.line_snapshot(session, self.settings, line_id)
            changed = [
                tid
                for tid in watched
                if tid in positions and self.last_pushed.get(tid) != positions[tid]
            ]
            reads = (
                await svc.read_tickets(
                    session, await svc.tickets_by_id(session, changed), positions
                )
                if changed
                else []
            )
        await self.sio.emit(
            "line:status",
            status.model_dump(mode="json"),
            room=svc.room_line(line_id),
            ignore_queue=True,
        )
        for read in reads:
            self.last_pushed[read.id] = positions[read.id]
            await self.sio.emit(
                "ticket:update",
                {"ticket": read.model_dump(mode="json")},
                room=svc.room_ticket(read.id),
                ignore_queue=True,
            )
        for tid in watched - positions.keys():
            self.last_pushed.pop(tid, None)

    async def sweep(self) -> None:
        await self.run(
            lambda s, o: svc.sweep_unanswered(session=s, settings=self.settings, outbox=o)
        )
        await self.run(lambda s, o: svc.sweep_dropped(session=s, settings=self.settings, outbox=o))

    async def refresh_presence(self) -> None:
        here = set(self.presence_sockets)
        if here:
            async with self.db.session() as session:
                await svc.refresh_presence(session=session, node_id=self.node_id, staff_ids=here)
                await session.commit()


def _details(e: ValidationError) -> list[dict[str, Any]]:
    return [
        {"loc": [str(x) for x in err["loc"]], "msg": err["msg"], "type": err["type"]}
        for err in e.errors(include_url=False, include_input=False)
    ]


# -- handlers: parse done, authorize done; call the service, shape the ack


async def h_presence(sg: Signaling, sid: str, conn: Conn, p: ev.PresenceSet) -> dict[str, Any]:
    async def work(session: Any, outbox: svc.Outbox) -> None:
        await svc.set_presence(
            session=session, staff_id=conn.principal.staff_id, node_id=sg.node_id, status=p.status
        )
        outbox.lines.update(conn.principal.line_ids)

    await sg.run(work)
    return {"status": p.status}


async def h_line_watch(sg: Signaling, sid: str, conn: Conn, p: ev.LineWatch) -> list[Any]:
    out = []
    async with sg.db.session() as session:
        for line_id in p.line_ids:
            status, _ = await svc.line_snapshot(session, sg.settings, line_id)
            out.append(status.model_dump(mode="json"))
    for line_id in p.line_ids:
        await sg.sio.enter_room(sid, svc.room_line(line_id))
    return out


async def h_take(sg: Signaling, sid: str, conn: Conn, p: ev.TicketTake) -> Any:
    async def work(session: Any, outbox: svc.Outbox) -> Any:
        t = await svc.take_ticket(
            session=session,
            settings=sg.settings,
            principal=conn.principal,
            outbox=outbox,
            line_id=p.line_id,
            item_code=p.item_code,
            site_id=p.site_id,
            resident_id=p.resident_id,
            consent=p.consent,
            bundle_code=p.bundle_code,
            appointment_id=p.appointment_id,
            note=p.note,
        )
        return t

    async def watch(ticket: Any) -> None:
        # Join the ticket's room before the line's change is announced, so the first push
        # about this ticket cannot run before its holder is listening.
        await sg.sio.enter_room(sid, svc.room_ticket(ticket.id))

    ticket = await sg.run(work, before_flush=watch)
    async with sg.db.session() as session:
        return await svc.ticket_view(session, sg.settings, ticket)


async def h_ticket_watch(sg: Signaling, sid: str, conn: Conn, p: ev.TicketRef) -> Any:
    async with sg.db.session() as session:
        t = await svc.get_ticket(session=session, ticket_id=p.ticket_id)
        await require_ticket(session, conn.principal, t)
        view = await svc.ticket_view(session, sg.settings, t)
    await sg.sio.enter_room(sid, svc.room_ticket(p.ticket_id))
    return view


async def h_cancel(sg: Signaling, sid: str, conn: Conn, p: ev.TicketRef) -> Any:
    t = await sg.run(
        lambda s, o: svc.cancel_ticket(
            session=s, principal=conn.principal, outbox=o, ticket_id=p.ticket_id
        )
    )
    async with sg.db.session() as session:
        view = await svc.ticket_view(session, sg.settings, t)
    await sg.sio.emit(
        "ticket:update", {"ticket": view.model_dump(mode="json")}, room=svc.room_ticket(p.ticket_id)
    )
    return view


async def h_call_next(sg: Signaling, sid: str, conn: Conn, p: ev.Empty) -> Any:
    result = await sg.run(
        lambda s, o: svc.call_next(
            session=s, settings=sg.settings, principal=conn.principal, outbox=o
        )
    )
    if result is None:
        return {"ticket": None, "call": None}
    view, join = result
    await sg.join_rooms(sid, conn, join)
    return {"ticket": view.model_dump(mode="json"), "call": join.model_dump(mode="json")}


async def h_recall(sg: Signaling, sid: str, conn: Conn, p: ev.TicketRef) -> Any:
    t = await sg.run(
        lambda s, o: svc.recall(
            session=s, principal=conn.principal, outbox=o, ticket_id=p.ticket_id
        )
    )
    return {"ticket_id": t.id, "recalls": t.recalls}


async def h_answer(sg: Signaling, sid: str, conn: Conn, p: ev.TicketRef) -> Any:
    ticket, join = await sg.run(
        lambda s, o: svc.answer(
            session=s,
            settings=sg.settings,
            principal=conn.principal,
            outbox=o,
            ticket_id=p.ticket_id,
        )
    )
    await sg.join_rooms(sid, conn, join)
    return {"ticket_id": ticket.id, "call": join.model_dump(mode="json")}


async def h_transfer(sg: Signaling, sid: str, conn: Conn, p: ev.TicketTransfer) -> Any:
    t = await sg.run(
        lambda s, o: svc.transfer(
            session=s,
            settings=sg.settings,
            principal=conn.principal,
            outbox=o,
            ticket_id=p.ticket_id,
            line_id=p.line_id,
            reason=p.reason,
        )
    )
    async with sg.db.session() as session:
        view = await svc.ticket_view(session, sg.settings, t)
    await sg.sio.emit(
        "ticket:update",
        {"ticket": view.model_dump(mode="json"), "transferred": True},
        room=svc.room_ticket(p.ticket_id),
    )
    return view


async def h_finish(sg: Signaling, sid: str, conn: Conn, p: ev.TicketFinish) -> Any:
    t = await sg.run(
        lambda s, o: svc.finish(
            session=s,
            principal=conn.principal,
            outbox=o,
            ticket_id=p.ticket_id,
            outcome=p.outcome,
            reason=p.reason,
            note=p.note,
        )
    )
    return {"ticket_id": t.id, "status": t.status, "outcome": t.outcome}


async def h_rejoin(sg: Signaling, sid: str, conn: Conn, p: ev.CallRejoin) -> Any:
    join = await sg.run(
        lambda s, o: svc.rejoin(
            session=s,
            settings=sg.settings,
            principal=conn.principal,
            outbox=o,
            call_id=p.call_id,
            resume_token=p.resume_token,
        )
    )
    await sg.join_rooms(sid, conn, join)
    return join


async def h_leave(sg: Signaling, sid: str, conn: Conn, p: ev.CallRef) -> Any:
    pid = await sg.my_pid(conn, p.call_id)
    await sg.run(lambda s, o: svc.leave(session=s, outbox=o, call_id=p.call_id, pid=pid))
    conn.calls.pop(p.call_id, None)
    await sg.sio.leave_room(sid, svc.room_call(p.call_id))
    await sg.sio.leave_room(sid, svc.room_participant(pid))
    return {"call_id": p.call_id}


async def h_signal(sg: Signaling, sid: str, conn: Conn, p: ev.CallSignal) -> Any:
    """The relay's hot path: two membership checks and one emit, no database."""
    pid = await sg.my_pid(conn, p.call_id)
    if p.to == pid or not await sg.registry.has(p.call_id, p.to):
        raise Forbidden("call.target")
    if p.kind in ("offer", "answer") and not p.sdp:
        raise AppError("validation", details=[{"loc": ["sdp"], "msg": "required for " + p.kind}])
    if p.kind == "candidate" and p.candidate is None:
        raise AppError("validation", details=[{"loc": ["candidate"], "msg": "required"}])
    message = {"call_id": p.call_id, "from": pid, "kind": p.kind, "ice_restart": p.ice_restart}
    if p.sdp is not None:
        message["sdp"] = p.sdp
    if p.candidate is not None:
        message["candidate"] = p.candidate.model_dump(exclude_none=True)
    await sg.sio.emit("call:signal", message, room=svc.room_participant(p.to))
    return None


async def h_state(sg: Signaling, sid: str, conn: Conn, p: ev.CallState) -> Any:
    pid = await sg.my_pid(conn, p.call_id)
    if p.state == "reconnecting":
        await sg.sio.emit(
            "call:peer_state",
            {"call_id": p.call_id, "participant_id": pid, "state": p.state},
            room=svc.room_call(p.call_id),
            skip_sid=sid,
        )
        return None
    await sg.run(
        lambda s, o: svc.record_state(session=s, call_id=p.call_id, pid=pid, state=p.state)
    )
    return None


async def h_stats(sg: Signaling, sid: str, conn: Conn, p: ev.CallStats) -> Any:
    pid = await sg.my_pid(conn, p.call_id)
    summary = p.model_dump(exclude={"call_id"}, exclude_none=True)
    await sg.run(
        lambda s, o: svc.record_stats(session=s, call_id=p.call_id, pid=pid, summary=summary)
    )
    return None


async def h_track(sg: Signaling, sid: str, conn: Conn, p: ev.CallTrack) -> Any:
    pid = await sg.my_pid(conn, p.call_id)
    await sg.sio.emit(
        "call:track",
        {
            "call_id": p.call_id,
            "participant_id": pid,
            "stream_id": p.stream_id,
            "kind": p.kind,
            "active": p.active,
        },
        room=svc.room_call(p.call_id),
        skip_sid=sid,
    )
    return None


async def h_recorder_offer(sg: Signaling, sid: str, conn: Conn, p: ev.RecorderOffer) -> Any:
    pid = await sg.my_pid(conn, p.call_id)
    if sg.recordings is None:
        raise AppError("recording.disabled")
    answer = await sg.recordings.offer(conn.principal, p.call_id, pid, p.sdp)
    return {"sdp": answer}


async def h_snapshot(sg: Signaling, sid: str, conn: Conn, p: ev.SnapshotIn) -> Any:
    await sg.my_pid(conn, p.call_id)
    if sg.recordings is None or sg.materials is None:
        raise AppError("recording.no_video")
    async with sg.db.session() as session:
        call = await session.get(Call, p.call_id)
        target = await session.get(CallParticipant, p.participant_id)
        if call is None or call.case_id is None or target is None:
            raise AppError("recording.no_video")
        if target.call_id != p.call_id:
            raise Forbidden("call.target")
        case_id, subject = call.case_id, target.role
    jpeg, _w, _h = await sg.recordings.snapshot(p.call_id, p.participant_id)
    material = await sg.materials.add_snapshot(
        conn.principal, case_id, jpeg, subject=SUBJECTS.get(subject, subject)
    )
    return material.model_dump(mode="json")


async def h_recording_stop(sg: Signaling, sid: str, conn: Conn, p: ev.CallRef) -> Any:
    await sg.my_pid(conn, p.call_id)
    if sg.recordings is None:
        return None
    await sg.recordings.stop_by_clerk(conn.principal, p.call_id)
    return None


SUBJECTS = {"point": "服务点", "resident": "居民", "clerk": "窗口", "expert": "专家"}


async def h_invite(sg: Signaling, sid: str, conn: Conn, p: ev.ExpertInviteIn) -> Any:
    pid = await sg.my_pid(conn, p.call_id)
    invite = await sg.run(
        lambda s, o: svc.invite_expert(
            session=s,
            settings=sg.settings,
            principal=conn.principal,
            outbox=o,
            call_id=p.call_id,
            pid=pid,
            skill=p.skill,
        )
    )
    return {"invite_id": invite.id, "expires_at": invite.expires_at.isoformat()}


async def h_accept(sg: Signaling, sid: str, conn: Conn, p: ev.InviteRef) -> Any:
    join = await sg.run(
        lambda s, o: svc.accept_invite(
            session=s,
            settings=sg.settings,
            principal=conn.principal,
            outbox=o,
            invite_id=p.invite_id,
        )
    )
    await sg.join_rooms(sid, conn, join)
    return join


async def h_sync(sg: Signaling, sid: str, conn: Conn, p: ev.Empty) -> Any:
    """Everything a (re)connecting client needs: its open tickets, calls and lines."""
    me = conn.principal
    async with sg.db.session() as session:
        tickets = await svc.open_tickets_for(session, sg.settings, me)
        calls = await svc.active_calls_for(session, me)
        lines = [
            (await svc.line_snapshot(session, sg.settings, ln))[0].model_dump(mode="json")
            for ln in sorted(me.line_ids)
        ]
    for t in tickets:
        await sg.sio.enter_room(sid, svc.room_ticket(t.id))
    return {
        "tickets": [t.model_dump(mode="json") for t in tickets],
        "calls": calls,
        "lines": lines,
        "ice_servers": svc.ice_servers(sg.settings, svc.ice_user(me)),
    }


CALL_ERRORS = ("call.not_participant",)
TICKET_ERRORS = ("not_found", "ticket.state")
SERVE_ERRORS = ("not_found", "ticket.not_yours", "ticket.state")

EVENTS: dict[str, EventSpec] = {
    s.name: s
    for s in (
        EventSpec(
            "state:sync",
            ev.Empty,
            None,
            "Everything a (re)connecting client needs.",
            h_sync,
            "{tickets: [Ticket], calls: [{call_id, participant_id}], "
            "lines: [LineStatus], ice_servers}",
        ),
        EventSpec(
            "presence:set",
            ev.PresenceSet,
            "presence.set",
            "Set my availability.",
            h_presence,
            "{status}",
        ),
        EventSpec(
            "line:watch",
            ev.LineWatch,
            "line.watch",
            "Follow lines: line:status events from now on.",
            h_line_watch,
            "[LineStatus]",
            ("not_found",),
        ),
        EventSpec(
            "ticket:take",
            ev.TicketTake,
            "queue.take",
            "Take a ticket (取号) for a resident who consented; opens the case. With an "
            "appointment_id the appointment is checked in and the ticket served first.",
            h_take,
            "Ticket (with position and eta_seconds)",
            (
                "queue.consent",
                "queue.remote_only",
                "queue.line_mismatch",
                "not_found",
                "forbidden_site",
                "appointment.line",
                "appointment.state",
                "appointment.window",
            ),
        ),
        EventSpec(
            "ticket:watch",
            ev.TicketRef,
            "queue.watch",
            "Follow a ticket: ticket:update and ticket:called from now on.",
            h_ticket_watch,
            "Ticket",
            ("not_found",),
        ),
        EventSpec(
            "ticket:cancel",
            ev.TicketRef,
            "queue.cancel",
            "Cancel a waiting ticket.",
            h_cancel,
            "Ticket",
            TICKET_ERRORS,
        ),
        EventSpec(
            "ticket:answer",
            ev.TicketRef,
            "queue.answer",
            "The service point picks up a called ticket and joins its call.",
            h_answer,
            "{ticket_id, call: CallJoin}",
            (*TICKET_ERRORS, "call.full"),
        ),
        EventSpec(
            "queue:call_next",
            ev.Empty,
            "queue.serve",
            "Call the highest-priority, longest-waiting ticket of my lines.",
            h_call_next,
            "{ticket: Ticket | null, call: CallJoin | null}",
            ("queue.no_lines", "queue.busy"),
        ),
        EventSpec(
            "ticket:recall",
            ev.TicketRef,
            "queue.serve",
            "Ring the point again for the ticket I called.",
            h_recall,
            "{ticket_id, recalls}",
            SERVE_ERRORS,
        ),
        EventSpec(
            "ticket:transfer",
            ev.TicketTransfer,
            "queue.serve",
            "Send my ticket to another line; it keeps its waiting time; the call ends.",
            h_transfer,
            "Ticket",
            (*SERVE_ERRORS, "validation"),
        ),
        EventSpec(
            "ticket:finish",
            ev.TicketFinish,
            "queue.serve",
            "Close the case: completed, accepted (back office) or returned (reason).",
            h_finish,
            "{ticket_id, status, outcome}",
            (*SERVE_ERRORS, "ticket.reason_required"),
        ),
        EventSpec(
            "call:rejoin",
            ev.CallRejoin,
            "call.participate",
            "Come back to a call after a drop, within the grace period.",
            h_rejoin,
            "CallJoin",
            ("call.ended", "call.resume"),
        ),
        EventSpec(
            "call:leave",
            ev.CallRef,
            "call.participate",
            "Leave a call; it ends when nobody is left.",
            h_leave,
            "{call_id}",
            CALL_ERRORS,
        ),
        EventSpec(
            "call:signal",
            ev.CallSignal,
            "call.participate",
            "Relay an SDP offer/answer or an ICE candidate to one participant.",
            h_signal,
            "null",
            (*CALL_ERRORS, "call.target", "validation"),
        ),
        EventSpec(
            "call:state",
            ev.CallState,
            "call.participate",
            "Report connection progress (kept in the call log).",
            h_state,
            "null",
            CALL_ERRORS,
        ),
        EventSpec(
            "call:stats",
            ev.CallStats,
            "call.participate",
            "Report a getStats() summary (kept in the call log).",
            h_stats,
            "null",
            CALL_ERRORS,
        ),
        EventSpec(
            "call:track",
            ev.CallTrack,
            "call.participate",
            "Label one of my streams as camera or screen share.",
            h_track,
            "null",
            CALL_ERRORS,
        ),
        EventSpec(
            "recorder:offer",
            ev.RecorderOffer,
            "call.participate",
            "Send my tracks to this node's recorder: a send-only offer with its ICE candidates "
            "gathered (no trickle). The answer comes in the ack. Required of every participant "
            "when the call's `recording.enabled` is true.",
            h_recorder_offer,
            "{sdp}",
            (
                *CALL_ERRORS,
                "call.ended",
                "recording.busy",
                "recording.disabled",
                "recording.bad_offer",
                "recording.no_media",
                "recording.stopped",
            ),
        ),
        EventSpec(
            "recorder:snapshot",
            ev.SnapshotIn,
            "material.review",
            "Capture a still of a participant's video (a keyframe, decoded alone) as a material "
            "of the case.",
            h_snapshot,
            "Material",
            (*CALL_ERRORS, "call.target", "recording.no_video", "recording.snapshot_failed"),
        ),
        EventSpec(
            "recording:stop",
            ev.CallRef,
            "queue.serve",
            "Stop recording this call where the item and site do not require it; every "
            "participant is told and the timeline names the clerk.",
            h_recording_stop,
            "null",
            (*CALL_ERRORS, "recording.required"),
        ),
        EventSpec(
            "expert:invite",
            ev.ExpertInviteIn,
            "queue.serve",
            "Invite the first available expert with a skill into my call.",
            h_invite,
            "{invite_id, expires_at}",
            (*CALL_ERRORS, "call.full", "call.ended"),
        ),
        EventSpec(
            "expert:accept",
            ev.InviteRef,
            "expert.accept",
            "Accept an invite; the first expert to accept joins the call.",
            h_accept,
            "CallJoin",
            ("invite.taken", "invite.skill", "call.full", "not_found"),
        ),
    )
}

# Events the server sends: name -> (who receives it, payload).
SERVER_EVENTS: dict[str, tuple[str, str]] = {
    "line:status": ("watchers of the line (clerks of the line join on connect)", "LineStatus"),
    "ticket:update": (
        "holders of the ticket",
        "{ticket: Ticket, transferred?: true} — position and eta_seconds while waiting",
    ),
    "ticket:called": (
        "holders of the ticket",
        "{ticket: Ticket, call_id, clerk?: display name, recall?: count}",
    ),
    "call:participant_joined": (
        "the call",
        "{call_id, participant: Participant, rejoined?: true} — the joiner sends the offers",
    ),
    "call:participant_left": ("the call", "{call_id, participant_id, reconnecting: bool}"),
    "call:peer_state": ("the call, except the sender", "{call_id, participant_id, state}"),
    "call:signal": (
        "one participant",
        "{call_id, from: participant id, kind, sdp?, candidate?, ice_restart}",
    ),
    "call:track": (
        "the call, except the sender",
        "{call_id, participant_id, stream_id, kind: camera | screen, active}",
    ),
    "call:ended": (
        "the call",
        "{call_id, reason: everyone_left | transferred | cancelled | no_show}",
    ),
    "case:finished": ("the call", "{call_id, case_id, outcome, reason}"),
    "expert:invited": (
        "experts with the skill",
        "{invite_id, call_id, skill, item_name, invited_by, expires_at}",
    ),
    "expert:invite_closed": ("experts with the skill", "{invite_id, accepted_by}"),
    "recording:state": (
        "the call",
        "{call_id, participant_id, active, reason?} — show or hide the recording indicator",
    ),
    "material:uploaded": (
        "the case's live call",
        "{call_id, case_id, material: Material} — a document arrived (upload, reuse, snapshot)",
    ),
    "material:reviewed": (
        "the case's live call",
        "{call_id, case_id, material: Material} — accepted, or rejected with its reason",
    ),
    "material:requested": (
        "the case's live call",
        "{call_id, case_id, spec_id, name, note} — the clerk asks the point for a document",
    ),
}
