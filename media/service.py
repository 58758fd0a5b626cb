"""Recording every call: a recorder peer per participant, segments to object storage.

When a participant joins a call, its client also opens a send-only RTCPeerConnection to this
node's recorder (`recorder:offer` over the same socket). The recorder keeps the encoded media
(media/passthrough.py, media/recorder.py) in segment files; each finished segment is uploaded
at once and recorded with its SHA-256, so a node that dies loses at most the open segment.
A recorder failure never touches the call: the gap is written to the case timeline and the
participants are told (`recording:state`).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import shutil
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiortc import RTCPeerConnection, RTCSessionDescription
from pydantic import BaseModel
from sqlalchemy import update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core import audit, cases
from core.access import Principal, supervises, was_in_call
from core.db import Database, utcnow
from core.errors import AppError, Conflict, Forbidden, NotFound
from core.models import Case, Role, ServiceItem, Site
from core.settings import Settings
from media import passthrough
from media.models import Recording, RecordingSegment, RecordingStatus
from media.recorder import Recorder, RecordingSlot, RecordingSlots, RecordingSlotsFull, Segment
from media.snapshot import SnapshotError, take_snapshot
from signaling.models import Call, CallParticipant, CallStatus
from uploads.storage import ObjectStore, new_key

log = logging.getLogger("cloudwindow.recording")

Notify = Callable[[str, str, dict[str, Any]], Awaitable[None]]
CONTENT_TYPES = {"webm": "video/webm", "ts": "video/mp2t"}
UPLOAD_ATTEMPTS = 3


class RecordingPolicy(BaseModel):
    """What every participant is told on joining: is the call recorded, can it be stopped."""

    enabled: bool
    required: bool
    stopped: bool = False  # a clerk stopped it for the rest of this call


class SegmentRead(BaseModel):
    id: int
    index: int
    content_type: str
    size: int
    sha256: str
    duration: float
    started_at: dt.datetime
    ended_at: dt.datetime


class RecordingRead(BaseModel):
    id: int
    call_id: int
    case_id: int | None
    participant_id: int
    role: str
    status: RecordingStatus
    codecs: list[str]
    started_at: dt.datetime
    ended_at: dt.datetime | None
    duration: float
    error: str
    segments: list[SegmentRead]


class LinkRead(BaseModel):
    url: str
    expires_at: dt.datetime


@dataclass
class _Live:
    """One participant being recorded on this node."""

    call_id: int
    pid: int
    recording_id: int
    case_id: int | None
    retention_days: int
    pc: RTCPeerConnection
    slot: RecordingSlot
    recorder: Recorder | None = None
    receivers: list[passthrough.PassthroughReceiver] = field(default_factory=list)
    uploads: list[asyncio.Task[None]] = field(default_factory=list)
    uploaded: set[int] = field(default_factory=set)
    attempted: set[int] = field(default_factory=set)
    failed: str = ""
    stopping: bool = False


class Recordings:
    """One per app: this node's recorder peers."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        store: ObjectStore,
        node_id: str,
        notify: Notify | None = None,
    ) -> None:
        self.settings = settings
        self.db = db
        self.store = store
        self.node_id = node_id
        self.notify = notify
        self.slots = RecordingSlots(settings.recording_max_streams)
        self.live: dict[tuple[int, int], _Live] = {}
        self.tasks: set[asyncio.Task[Any]] = set()

    def _spawn(self, coro: Awaitable[Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def _emit(self, event: str, call_id: int, data: dict[str, Any]) -> None:
        if self.notify is not None:
            await self.notify(event, f"call:{call_id}", {"call_id": call_id, **data})

    # -- policy

    async def policy(self, session: AsyncSession, call_id: int) -> RecordingPolicy:
        """Required when the item requires it or the hall or point (or a site above) does."""
        call = await session.get(Call, call_id)
        case = await session.get(Case, call.case_id) if call and call.case_id else None
        required = False
        if case is not None:
            item = await session.get(ServiceItem, case.item_id)
            required = bool(item and item.recording_required) or await _site_requires(
                session, case.site_id
            )
        stopped = call is not None and call.recording_stopped_at is not None
        return RecordingPolicy(
            enabled=self.settings.recording_enabled and not stopped,
            required=required,
            stopped=stopped,
        )

    # -- the recorder peer

    async def offer(self, principal: Principal, call_id: int, pid: int, sdp: str) -> str:
        """Answer a participant's send-only offer; start recording what it sends.

        The offer is negotiated before anything is written, so a bad offer changes nothing.
        """
        if not self.settings.recording_enabled:
            raise AppError("recording.disabled")
        async with self.db.session() as session:
            call = await session.get(Call, call_id)
            if call is None or call.status == CallStatus.ended:
                raise Conflict("call.ended")
            if call.recording_stopped_at is not None:
                raise AppError("recording.stopped")
            part = await session.get(CallParticipant, pid)
            if part is None or part.call_id != call_id:
                raise Forbidden("call.not_participant")
            case_id, role = call.case_id, part.role
            staff_id, resident_id = part.staff_id, part.resident_id
            case = await session.get(Case, case_id) if case_id else None
            item = await session.get(ServiceItem, case.item_id) if case else None
            retention = item.retention_days if item else 3650
        pc = RTCPeerConnection()
        receivers: list[passthrough.PassthroughReceiver] = []
        try:
            passthrough.enable(pc, receivers.append)
            await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
            for transceiver in pc.getTransceivers():
                transceiver.direction = "recvonly"
            await pc.setLocalDescription(await pc.createAnswer())
            if not receivers:
                raise AppError("recording.no_media")
        except AppError:
            await pc.close()
            raise
        except Exception as e:  # aiortc refuses SDP it cannot parse with ValueError & co.
            await pc.close()
            raise AppError("recording.bad_offer", error=str(e)[:100]) from None
        previous = self.live.get((call_id, pid))
        if previous is not None:  # a rejoin or an ICE failure: a new piece of the recording
            await self.stop(call_id, pid, reason="replaced")
        try:
            slot = self.slots.try_acquire()
        except RecordingSlotsFull:
            await pc.close()
            async with self.db.session() as session:
                case = await session.get(Case, case_id) if case_id else None
                await self._note(
                    session, case, "recording.gap", {"participant_id": pid, "reason": "busy"}
                )
                await session.commit()
            raise AppError("recording.busy") from None
        try:
            async with self.db.session() as session:
                row = Recording(
                    call_id=call_id,
                    case_id=case_id,
                    participant_id=pid,
                    staff_id=staff_id,
                    resident_id=resident_id,
                    role=role,
                    node_id=self.node_id,
                    status=RecordingStatus.recording,
                )
                session.add(row)
                await session.flush()
                assert row.id is not None
                recording_id = row.id
                case = await session.get(Case, case_id) if case_id else None
                data = {"participant_id": pid, "role": role, "recording_id": recording_id}
                await self._note(session, case, "recording.started", data)
                await session.commit()
        except BaseException:
            slot.release()
            await pc.close()
            raise
        live = _Live(call_id, pid, recording_id, case_id, retention, pc, slot)
        live.receivers = receivers
        self.live[(call_id, pid)] = live
        try:
            recorder = Recorder(
                self.settings.recordings_dir / f"{call_id}-{pid}-{uuid.uuid4().hex[:8]}",
                segment_seconds=self.settings.recording_segment_seconds,
                prefix=f"rec{recording_id}",
                on_error=lambda exc: self._spawn(self._failed(live, exc)),
                on_segment=lambda seg: live.uploads.append(self._spawn(self._upload(live, seg))),
            )
            kinds: set[str] = set()
            for r in receivers:
                if r.kind not in kinds:
                    recorder.add(r)
                    kinds.add(r.kind)
            recorder.start()
            live.recorder = recorder
            assert recorder.task is not None
            recorder.task.add_done_callback(lambda t: self._task_ended(live, t))

            @pc.on("connectionstatechange")
            async def on_state() -> None:
                if pc.connectionState == "failed" and not live.stopping:
                    await self._failed(live, RuntimeError("recorder connection failed"))
        except BaseException as exc:
            await self._abandon(live, exc)
            raise
        await self._emit("recording:state", call_id, {"participant_id": pid, "active": True})
        return pc.localDescription.sdp

    def _task_ended(self, live: _Live, task: asyncio.Task[None]) -> None:
        """The recorder task ended while the call goes on: killed or broken. Note the gap."""
        if live.stopping:
            return
        reason = "cancelled" if task.cancelled() else repr(task.exception() or "ended")
        self._spawn(self._failed(live, RuntimeError(f"recorder stopped: {reason}")))

    async def _failed(self, live: _Live, exc: BaseException) -> None:
        if live.stopping:
            return
        live.failed = str(exc)[:200] or type(exc).__name__
        log.warning("recording %s failed: %s", live.recording_id, live.failed)
        await self.stop(live.call_id, live.pid, reason="error")

    async def _abandon(self, live: _Live, exc: BaseException) -> None:
        live.failed = str(exc)[:200] or type(exc).__name__
        await self.stop(live.call_id, live.pid, reason="error")

    async def _upload(self, live: _Live, seg: Segment) -> None:
        """Put one finished segment into object storage and record it (retrying a little)."""
        live.attempted.add(seg.index)
        ext = seg.path.suffix.lstrip(".")
        key = new_key(live.retention_days, live.case_id or 0, ext)
        for attempt in range(1, UPLOAD_ATTEMPTS + 1):
            try:
                await self.store.put_file(key, seg.path, CONTENT_TYPES[ext])
                async with self.db.session() as session:
                    session.add(
                        RecordingSegment(
                            recording_id=live.recording_id,
                            index=seg.index,
                            key=key,
                            content_type=CONTENT_TYPES[ext],
                            size=seg.size,
                            sha256=seg.sha256,
                            duration=seg.duration,
                            frames=dict(seg.frames),
                            started_at=seg.started_at,
                            ended_at=seg.ended_at,
                            expires_at=utcnow() + dt.timedelta(days=live.retention_days),
                        )
                    )
                    await session.commit()
                live.uploaded.add(seg.index)
                await asyncio.to_thread(seg.path.unlink, missing_ok=True)
                return
            except Exception as e:
                log.warning("segment %s upload attempt %d failed: %s", seg.path, attempt, e)
                await asyncio.sleep(attempt)
        # The file stays on this node's disk (never lost); the timeline says where it is.
        async with self.db.session() as session:
            case = await session.get(Case, live.case_id) if live.case_id else None
            await self._note(
                session,
                case,
                "recording.upload_failed",
                {"participant_id": live.pid, "segment": seg.index, "path": str(seg.path)},
            )
            await session.commit()

    async def stop(
        self, call_id: int, pid: int | None = None, *, reason: str, actor: Principal | None = None
    ) -> None:
        """Stop recording one participant (or the whole call) and settle its records."""
        keys = [k for k in self.live if k[0] == call_id and (pid is None or k[1] == pid)]
        await asyncio.gather(*(self._stop_one(self.live[k], reason, actor) for k in keys))

    async def _stop_one(self, live: _Live, reason: str, actor: Principal | None) -> None:
        if live.stopping:
            return
        live.stopping = True
        segments: list[Segment] = []
        try:
            if live.recorder is not None:
                segments = await live.recorder.stop()
            await live.pc.close()
            # Every finished segment's upload was started by its callback (the recorder runs
            # them before stop() returns); wait for them, then pick up any that never started.
            if live.uploads:
                await asyncio.gather(*live.uploads, return_exceptions=True)
            for seg in segments:
                if seg.index not in live.attempted:
                    await self._upload(live, seg)
        finally:
            live.slot.release()
            self.live.pop((live.call_id, live.pid), None)
        if live.recorder is not None and all(s.index in live.uploaded for s in segments):
            # Only once every segment is safely stored; otherwise the files stay for an operator.
            await asyncio.to_thread(shutil.rmtree, live.recorder.directory, True)
        await self._finish_row(live, segments, reason, actor)

    async def _finish_row(
        self, live: _Live, segments: list[Segment], reason: str, actor: Principal | None
    ) -> None:
        failed = bool(live.failed)
        duration = round(sum(s.duration for s in segments), 3)
        async with self.db.session() as session:
            row = await session.get(Recording, live.recording_id)
            if row is not None:
                row.status = RecordingStatus.failed if failed else RecordingStatus.finished
                row.ended_at = utcnow()
                row.duration = duration
                row.error = live.failed
                row.codecs = sorted({r.codec_name for r in live.receivers if r.codec_name})
                session.add(row)
            case = await session.get(Case, live.case_id) if live.case_id else None
            data: dict[str, Any] = {
                "participant_id": live.pid,
                "recording_id": live.recording_id,
                "segments": len(segments),
                "duration_s": duration,
                "reason": reason,
            }
            if failed:
                data["error"] = live.failed
            kind = "recording.gap" if failed else "recording.finished"
            await self._note(session, case, kind, data, actor=actor)
            await session.commit()
        await self._emit(
            "recording:state",
            live.call_id,
            {"participant_id": live.pid, "active": False, "reason": reason},
        )

    async def _note(
        self,
        session: AsyncSession,
        case: Case | None,
        kind: str,
        data: dict[str, Any],
        actor: Principal | None = None,
    ) -> None:
        if case is not None:
            cases.add_event(
                session, case, kind, actor_id=actor.staff_fk if actor else None, data=data
            )

    async def stop_by_clerk(self, me: Principal, call_id: int) -> None:
        """A clerk may stop recording only where it is not required; everyone is told."""
        async with self.db.session() as session:
            policy = await self.policy(session, call_id)
            if policy.required:
                raise Forbidden("recording.required")
            # Remembered on the call: a rejoin or a late joiner is not recorded either.
            await session.exec(
                update(Call)  # type: ignore[call-overload]
                .where(col(Call.id) == call_id, col(Call.recording_stopped_at).is_(None))
                .values(recording_stopped_at=utcnow(), recording_stopped_by=me.staff_fk)
            )
            await session.commit()
        await self.stop(call_id, reason="stopped_by_clerk", actor=me)

    async def snapshot(self, call_id: int, pid: int) -> tuple[bytes, int, int]:
        """A JPEG of one participant's video: a keyframe asked for with PLI, decoded alone."""
        live = self.live.get((call_id, pid))
        video = next((r for r in live.receivers if r.kind == "video"), None) if live else None
        if video is None:
            raise AppError("recording.no_video")
        try:
            snap = await take_snapshot(video)
        except SnapshotError as e:
            raise AppError("recording.snapshot_failed", error=str(e)) from None
        return snap.jpeg, snap.width, snap.height

    async def close(self) -> None:
        for call_id, pid in list(self.live):
            await self.stop(call_id, pid, reason="node_stopping")
        if self.tasks:
            await asyncio.gather(*list(self.tasks), return_exceptions=True)

    # -- playback

    async def list_for_case(
        self, session: AsyncSession, me: Principal, case_id: int
    ) -> list[RecordingRead]:
        case = await session.get(Case, case_id)
        if case is None:
            raise NotFound(f"办件 {case_id}", f"Case {case_id}")
        await require_playback(session, me, case)
        rows = list(
            (
                await session.exec(
                    select(Recording)
                    .where(Recording.case_id == case_id)
                    .order_by(col(Recording.id))
                )
            ).all()
        )
        ids = [r.id for r in rows]
        segs = list(
            (
                await session.exec(
                    select(RecordingSegment)
                    .where(col(RecordingSegment.recording_id).in_(ids))
                    .order_by(col(RecordingSegment.recording_id), col(RecordingSegment.index))
                )
            ).all()
        )
        by_rec: dict[int, list[SegmentRead]] = {}
        for s in segs:
            by_rec.setdefault(s.recording_id, []).append(
                SegmentRead(
                    id=s.id or 0,
                    index=s.index,
                    content_type=s.content_type,
                    size=s.size,
                    sha256=s.sha256,
                    duration=s.duration,
                    started_at=s.started_at,
                    ended_at=s.ended_at,
                )
            )
        return [
            RecordingRead(
                id=r.id or 0,
                call_id=r.call_id,
                case_id=r.case_id,
                participant_id=r.participant_id,
                role=r.role,
                status=RecordingStatus(r.status),
                codecs=r.codecs,
                started_at=r.started_at,
                ended_at=r.ended_at,
                duration=r.duration,
                error=r.error,
                segments=by_rec.get(r.id or 0, []),
            )
            for r in rows
        ]

    async def link(
        self, session: AsyncSession, me: Principal, segment_id: int, **kw: Any
    ) -> LinkRead:
        seg = await session.get(RecordingSegment, segment_id)
        rec = await session.get(Recording, seg.recording_id) if seg else None
        case = await session.get(Case, rec.case_id) if rec and rec.case_id else None
        nf = NotFound(f"录像 {segment_id}", f"Recording segment {segment_id}")
        if seg is None or case is None:
            raise nf
        try:
            await require_playback(session, me, case)
        except NotFound:
            raise nf from None
        seconds = self.settings.download_url_seconds
        url = await self.store.download_url(
            seg.key,
            expires=seconds,
            content_type=seg.content_type,
            filename=f"{case.number}-{seg.recording_id}-{seg.index}.{seg.key.rsplit('.', 1)[1]}",
        )
        audit.record(
            session,
            action="recording.view",
            target_type="recording",
            target_id=seg.recording_id,
            detail={"case": case.id, "segment": seg.index},
            **kw,
        )
        await session.commit()
        return LinkRead(url=url, expires_at=utcnow() + dt.timedelta(seconds=seconds))


async def require_playback(session: AsyncSession, me: Principal, case: Case) -> None:
    """Clerks of the case (its line, or in one of its calls) and supervisors of its area."""
    if await supervises(session, me, case):
        return
    if me.role is Role.clerk:
        if case.line_id is not None and case.line_id in me.line_ids:
            return
        if await was_in_call(session, me, case.id or 0):
            return
    raise NotFound(f"办件 {case.id}", f"Case {case.id}")


async def _site_requires(session: AsyncSession, site_id: int) -> bool:
    current: int | None = site_id
    for _ in range(8):
        if current is None:
            return False
        site = await session.get(Site, current)
        if site is None:
            return False
        if site.recording_required:
            return True
        current = site.parent_id
    return False
