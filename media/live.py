"""This node's recorder peers: one per participant being recorded, bounded by its slots.

A participant's client opens a send-only RTCPeerConnection to this node (`recorder:offer`).
The offer is negotiated before anything is written, so a bad offer changes nothing. A
recorder failure never touches the call: the recording is closed as failed, its finished
segments are kept, and the gap is noted (media/segments.py).
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any

from aiortc import RTCPeerConnection, RTCSessionDescription

from core.access import Principal
from core.errors import AppError
from core.settings import Settings
from media import passthrough
from media.policy import Policy
from media.recorder import Recorder, RecordingSlot, RecordingSlots, RecordingSlotsFull, Segment
from media.segments import Piece, Segments
from media.units import Work

log = logging.getLogger("cloudwindow.recording")


@dataclass
class Peer:
    """One participant being recorded on this node."""

    piece: Piece
    pc: RTCPeerConnection
    slot: RecordingSlot
    receivers: list[passthrough.PassthroughReceiver]
    recorder: Recorder | None = None
    uploads: list[asyncio.Task[None]] = field(default_factory=list)
    failed: str = ""
    stopping: bool = False

    @property
    def key(self) -> tuple[int, int]:
        return self.piece.call_id, self.piece.pid

    def video(self) -> passthrough.PassthroughReceiver | None:
        return next((r for r in self.receivers if r.kind == "video"), None)


class LivePeers:
    """The recorder peers of one node, keyed by (call, participant)."""

    def __init__(self, settings: Settings, policy: Policy, segments: Segments, work: Work) -> None:
        self.settings = settings
        self.policy = policy
        self.segments = segments
        self.work = work
        self.slots = RecordingSlots(settings.recording_max_streams)
        self.peers: dict[tuple[int, int], Peer] = {}
        self.tasks: set[asyncio.Task[Any]] = set()

    def _spawn(self, coro: Awaitable[Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    def video(self, call_id: int, pid: int) -> passthrough.PassthroughReceiver | None:
        """The video this node receives from a participant, if it records one."""
        peer = self.peers.get((call_id, pid))
        return peer.video() if peer else None

    async def offer(self, principal: Principal, call_id: int, pid: int, sdp: str) -> str:
        """Answer a participant's send-only offer; start recording what it sends."""
        async with self.work.read() as session:
            admission = await self.policy.admit(session, call_id, pid)
        pc, receivers = await _answer(sdp)
        if (call_id, pid) in self.peers:  # a rejoin or an ICE failure: a new piece
            await self.stop(call_id, pid, reason="replaced")
        try:
            slot = self.slots.try_acquire()
        except RecordingSlotsFull:
            await pc.close()
            await self.segments.note_busy(admission)
            raise AppError("recording.busy") from None
        try:
            piece = await self.segments.open(admission)
        except BaseException:
            slot.release()
            await pc.close()
            raise
        peer = Peer(piece, pc, slot, receivers)
        self.peers[peer.key] = peer
        try:
            self._start(peer)
        except BaseException as exc:
            peer.failed = str(exc)[:200] or type(exc).__name__
            await self.stop(call_id, pid, reason="error")
            raise
        await self.segments.started(piece)
        return pc.localDescription.sdp

    def _start(self, peer: Peer) -> None:
        call_id, pid = peer.key
        recorder = Recorder(
            self.settings.recordings_dir / f"{call_id}-{pid}-{uuid.uuid4().hex[:8]}",
            segment_seconds=self.settings.recording_segment_seconds,
            prefix=f"rec{peer.piece.recording_id}",
            on_error=lambda exc: self._spawn(self._failed(peer, exc)),
            on_segment=lambda seg: peer.uploads.append(
                self._spawn(self.segments.upload(peer.piece, seg))
            ),
        )
        kinds: set[str] = set()
        for r in peer.receivers:
            if r.kind not in kinds:
                recorder.add(r)
                kinds.add(r.kind)
        recorder.start()
        peer.recorder = recorder
        assert recorder.task is not None
        recorder.task.add_done_callback(lambda t: self._task_ended(peer, t))
        pc = peer.pc

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            if pc.connectionState == "failed":
                await self._failed(peer, RuntimeError("recorder connection failed"))

    def _task_ended(self, peer: Peer, task: asyncio.Task[None]) -> None:
        """The recorder task ended while the call goes on: killed or broken. Note the gap."""
        if peer.stopping:
            return
        reason = "cancelled" if task.cancelled() else repr(task.exception() or "ended")
        self._spawn(self._failed(peer, RuntimeError(f"recorder stopped: {reason}")))

    async def _failed(self, peer: Peer, exc: BaseException) -> None:
        if peer.stopping:
            return
        peer.failed = str(exc)[:200] or type(exc).__name__
        log.warning("recording %s failed: %s", peer.piece.recording_id, peer.failed)
        await self.stop(*peer.key, reason="error")

    async def stop(
        self, call_id: int, pid: int | None = None, *, reason: str, actor: Principal | None = None
    ) -> None:
        """Stop recording one participant (or the whole call) and settle its records."""
        keys = [k for k in self.peers if k[0] == call_id and (pid is None or k[1] == pid)]
        await asyncio.gather(*(self._stop_one(self.peers[k], reason, actor) for k in keys))

    async def _stop_one(self, peer: Peer, reason: str, actor: Principal | None) -> None:
        if peer.stopping:
            return
        peer.stopping = True
        segments: list[Segment] = []
        try:
            if peer.recorder is not None:
                segments = await peer.recorder.stop()
            await peer.pc.close()
            # Every finished segment's upload was started by its callback (the recorder runs
            # them before stop() returns); wait for them, then pick up any that never started.
            if peer.uploads:
                await asyncio.gather(*peer.uploads, return_exceptions=True)
            for seg in segments:
                if seg.index not in peer.piece.attempted:
                    await self.segments.upload(peer.piece, seg)
        finally:
            peer.slot.release()
            self.peers.pop(peer.key, None)
        if peer.recorder is not None and peer.piece.all_stored(segments):
            # Only once every segment is safely stored; otherwise the files stay for an operator.
            await asyncio.to_thread(shutil.rmtree, peer.recorder.directory, True)
        codecs = sorted({r.codec_name for r in peer.receivers if r.codec_name})
        await self.segments.close(
            peer.piece, segments, codecs=codecs, error=peer.failed, reason=reason, actor=actor
        )

    async def stop_by_clerk(self, me: Principal, call_id: int) -> None:
        """A clerk may stop recording only where it is not required; everyone is told."""
        async with self.work.unit() as u:
            await self.policy.stop_call(u.session, me, call_id)
        await self.stop(call_id, reason="stopped_by_clerk", actor=me)

    async def close(self) -> None:
        for call_id, pid in list(self.peers):
            await self.stop(call_id, pid, reason="node_stopping")
        if self.tasks:
            await asyncio.gather(*list(self.tasks), return_exceptions=True)


async def _answer(sdp: str) -> tuple[RTCPeerConnection, list[passthrough.PassthroughReceiver]]:
    """A receive-only answer to the offer, with passthrough receivers; closed if it fails."""
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
    return pc, receivers
