"""Segmented recording of one participant's tracks without re-encoding.

VP8 (+ Opus) goes into WebM, H264 (+ Opus) into MPEG-TS; an audio-only participant into WebM.
Each segment starts on a video keyframe (a PLI is sent at every boundary), is written as
`<name>.part`, then closed, fsynced, hashed and renamed, and never touched again: a crash loses
at most the segment being written.

The event loop only stamps packets and queues them; muxing, hashing and file I/O run in one
worker thread per recorder, fed by a bounded queue. When the queue is full a packet is dropped
(counted in `dropped`) and video resumes at the next keyframe: a live call cannot wait.
Concurrent recordings per node are bounded by the caller with `RecordingSlots`.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as dt
import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
from aiortc.mediastreams import MediaStreamError

from media.passthrough import PassthroughReceiver, vp8_size

if not hasattr(av.container.OutputContainer, "add_mux_stream"):
    raise ImportError(
        "media.recorder muxes encoded packets with OutputContainer.add_mux_stream, which PyAV "
        f"{av.__version__} lacks (18.1 has it); aiortc allows av>=14, so pin av in pyproject.toml"
    )

DEFAULT_SEGMENT_SECONDS = 30.0
# About 15 s of one participant's packets (50 audio + 15 video per second): enough to ride
# out a slow disk, small enough (a few MB) that a stuck worker cannot eat the node's memory.
DEFAULT_QUEUE_SIZE = 1000
# A PLI costs the sender a keyframe; one RTT plus one frame interval is far below a second on
# any link a call survives, so asking again sooner would only make back-to-back keyframes.
KEYFRAME_RETRY_SECONDS = 1.0
# The worker drains its queue, then sleeps this long: packets wait in memory a little, and the
# thread wakes 20 times a second instead of once per packet (65/s per participant), which cost
# more CPU than the muxing itself.
WORKER_POLL_SECONDS = 0.05
# Audio that arrives before the first video keyframe is held this long at most (50 packets/s).
AUDIO_HOLD_PACKETS = 250
# MPEG-TS: without this the muxer shifts every timestamp by 0.7 s.
_TS_OPTIONS = {"max_delay": "0"}
# One integer clock for both streams: the least common multiple of 90 kHz and 48 kHz.
CLOCK = 720_000
OPUS_FRAME_TICKS = 960  # 20 ms at 48 kHz, what every WebRTC endpoint sends

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Segment:
    """A finished, fsynced segment file."""

    path: Path
    index: int
    started_at: dt.datetime
    ended_at: dt.datetime
    duration: float
    frames: dict[str, int]
    sha256: str
    size: int

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready description."""
        return {
            "path": str(self.path),
            "index": self.index,
            "started_at": self.started_at.isoformat(),
            "ended_at": self.ended_at.isoformat(),
            "duration": self.duration,
            "frames": dict(self.frames),
            "sha256": self.sha256,
            "size": self.size,
        }


class RecordingSlotsFull(Exception):
    """No recording slot is free on this node."""


class RecordingSlot:
    """A held recording slot; release it when the recording ends (idempotent)."""

    def __init__(self, slots: RecordingSlots) -> None:
        self._slots: RecordingSlots | None = slots

    def release(self) -> None:
        """Give the slot back."""
        if self._slots is not None:
            slots, self._slots = self._slots, None
            slots._release()

    async def __aenter__(self) -> RecordingSlot:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.release()


class RecordingSlots:
    """At most `limit` concurrent recordings per node: `try_acquire` refuses, `acquire` waits."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.limit = limit
        self.in_use = 0
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    @property
    def available(self) -> int:
        """Free slots right now."""
        return self.limit - self.in_use

    def try_acquire(self) -> RecordingSlot:
        """Take a slot now or raise RecordingSlotsFull."""
        if self.in_use >= self.limit or self._waiters:
            raise RecordingSlotsFull(f"all {self.limit} recording slots are in use")
        self.in_use += 1
        return RecordingSlot(self)

    async def acquire(self) -> RecordingSlot:
        """Wait for a slot (FIFO). Bound the wait with `asyncio.timeout`; cancelling is safe."""
        if self.in_use < self.limit and not self._waiters:
            self.in_use += 1
            return RecordingSlot(self)
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self._release()  # handed over just as we were cancelled: pass it on
            else:
                waiter.cancel()
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
            raise
        return RecordingSlot(self)

    def _release(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot passes straight to the waiter
                return
        self.in_use -= 1


@dataclass
class _Stream:
    source: PassthroughReceiver
    kind: str
    offset: int | None = None  # ticks added to the RTP-derived pts to share one clock
    scale: int = 8  # CLOCK ticks per stream tick
    need_keyframe: bool = True


@dataclass
class _Open:
    base: int  # CLOCK ticks that become 0 in the new segment
    wall: float
    video_codec: str | None
    size: tuple[int, int] | None


@dataclass
class _Packet:
    kind: str
    packet: av.Packet
    ticks: int  # in the packet's time base, on the recorder's shared clock
    scale: int  # CLOCK ticks per tick
    wall: float


_STOP = object()


@dataclass
class _SegmentWriter:
    """One open segment file (worker thread only)."""

    path: Path
    index: int
    base: int
    started_wall: float
    container: Any
    streams: dict[str, Any]
    last_pts: dict[str, int] = field(default_factory=dict)
    end: int = 0  # CLOCK ticks from the segment start to the end of its last frame
    frames: dict[str, int] = field(default_factory=dict)
    ended_wall: float = 0.0

    def write(self, item: _Packet) -> None:
        stream = self.streams.get(item.kind)
        if stream is None:
            return
        packet = item.packet
        pts = item.ticks - self.base // item.scale
        last = self.last_pts.get(item.kind, -1)
        # Strictly increasing, from 0: MPEG-TS refuses equal or backward timestamps, and the
        # first audio packets of a segment may predate its keyframe by a few milliseconds.
        pts = max(pts, last + 1)
        step = pts - last if last >= 0 else 0
        self.last_pts[item.kind] = pts
        packet.pts = packet.dts = pts
        packet.stream = stream
        self.container.mux(packet)
        self.frames[item.kind] = self.frames.get(item.kind, 0) + 1
        frame_len = OPUS_FRAME_TICKS if item.kind == "audio" else step
        self.end = max(self.end, (pts + frame_len) * item.scale)
        self.ended_wall = item.wall


class Recorder:
    """Records one participant (at most one audio and one video source) into segment files."""

    def __init__(
        self,
        directory: Path,
        *,
        segment_seconds: float = DEFAULT_SEGMENT_SECONDS,
        prefix: str = "segment",
        on_error: Callable[[BaseException], None] | None = None,
        on_segment: Callable[[Segment], None] | None = None,
        queue_size: int = DEFAULT_QUEUE_SIZE,
    ) -> None:
        self.directory = Path(directory)
        self.segment_ticks = round(segment_seconds * CLOCK)
        self.prefix = prefix
        self.on_error = on_error
        self.on_segment = on_segment
        self.queue_size = queue_size
        self.error: BaseException | None = None
        self.dropped: dict[str, int] = {"audio": 0, "video": 0}
        self.skipped: dict[str, int] = {"audio": 0, "video": 0}
        self.received: dict[str, int] = {"audio": 0, "video": 0}
        self.task: asyncio.Task[None] | None = None
        self._streams: dict[str, _Stream] = {}
        self._segments: list[Segment] = []
        # A deque (appends and pops are atomic) instead of queue.Queue: no lock or condition
        # per packet. The loop side enforces queue_size; the stop marker always fits.
        self._queue: collections.deque[Any] = collections.deque()
        self._thread: threading.Thread | None = None
        self._done: asyncio.Future[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._origin = 0.0
        self._segment_start: int | None = None
        self._last_pli = -KEYFRAME_RETRY_SECONDS
        self._audio_hold: collections.deque[_Packet] = collections.deque(maxlen=AUDIO_HOLD_PACKETS)
        self._worker_failed = False

    @property
    def segments(self) -> list[Segment]:
        """Segments finished so far."""
        return list(self._segments)

    def add(self, source: PassthroughReceiver) -> None:
        """Record this source (call before start)."""
        if self.task is not None:
            raise RuntimeError("sources must be added before start()")
        if source.kind in self._streams:
            raise ValueError(f"this recorder already has a {source.kind} source")
        self._streams[source.kind] = _Stream(source=source, kind=source.kind)

    def start(self) -> None:
        """Start recording; needs a running event loop."""
        if self.task is not None:
            raise RuntimeError("recorder already started")
        if not self._streams:
            raise RuntimeError("no source to record")
        self.directory.mkdir(parents=True, exist_ok=True)
        self._loop = asyncio.get_running_loop()
        self._done = self._loop.create_future()
        self._origin = time.monotonic()
        self._thread = threading.Thread(
            target=self._worker, name=f"recorder-{self.prefix}", daemon=True
        )
        self._thread.start()
        self.task = asyncio.create_task(self._run(), name=f"recorder-{self.prefix}")

    async def stop(self) -> list[Segment]:
        """Stop, close the open segment and return every finished segment."""
        if self.task is None or self._done is None:
            return self.segments
        if not self.task.done():
            self.task.cancel()
        await asyncio.wait({self.task})  # unlike `await task`, keeps our caller cancellable
        await self._done
        return self.segments

    async def _run(self) -> None:
        try:
            await asyncio.gather(*(self._pump(s) for s in self._streams.values()))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._report(exc)
        finally:
            self._queue.append(_STOP)

    async def _pump(self, stream: _Stream) -> None:
        track = stream.source.track
        while not self._worker_failed:
            try:
                packet = await track.recv()
            except MediaStreamError:
                return
            if not isinstance(packet, av.Packet):
                raise TypeError(
                    f"{stream.kind} track yields {type(packet).__name__}: its codec is not "
                    "passed through (only VP8, H264 and Opus are)"
                )
            self.received[stream.kind] += 1
            await self._on_packet(stream, packet)

    async def _on_packet(self, stream: _Stream, packet: av.Packet) -> None:
        now = time.monotonic()
        if stream.offset is None:
            rate = packet.time_base.denominator
            if packet.time_base.numerator != 1 or CLOCK % rate:
                raise ValueError(f"unexpected {stream.kind} time base {packet.time_base}")
            stream.scale = CLOCK // rate
            # Both tracks' RTP clocks start at 0 on their first packet; align them by arrival.
            stream.offset = round((now - self._origin) * rate) - packet.pts
        ticks = packet.pts + stream.offset
        item = _Packet(stream.kind, packet, ticks, stream.scale, time.time())
        t = ticks * stream.scale
        has_video = "video" in self._streams
        if stream.kind == "video":
            if stream.need_keyframe and not packet.is_keyframe:
                self.skipped["video"] += 1
                await self._ask_keyframe(stream, now)
                return
            stream.need_keyframe = False
            if self._segment_start is None:
                self._open(t, item, stream)
                return
            if t >= self._segment_start + self.segment_ticks:
                if packet.is_keyframe:
                    self._open(t, item, stream)
                    return
                await self._ask_keyframe(stream, now)
            self._put(item)
            return
        if self._segment_start is None:
            if has_video:
                self._audio_hold.append(item)
                return
            self._open(t, item, stream)
            return
        if not has_video and t >= self._segment_start + self.segment_ticks:
            self._open(t, item, stream)
            return
        self._put(item)

    def _open(self, t: int, item: _Packet, stream: _Stream) -> None:
        """Start a segment at `t` with `item` (a video keyframe, or audio if there is no video)."""
        video = self._streams.get("video")
        codec = video.source.codec_name if video else None
        # Browsers change resolution under load; each segment takes its keyframe's size.
        size = None
        if codec == "vp8" and stream.kind == "video":
            size = vp8_size(bytes(memoryview(item.packet)[:10]))
        # The first segment also keeps the audio that came before the first keyframe.
        held = list(self._audio_hold)
        self._audio_hold.clear()
        base = min([t, *(h.ticks * h.scale for h in held)])
        self._segment_start = base
        self._queue.append(_Open(base, held[0].wall if held else item.wall, codec, size))
        for h in held:
            self._put(h)
        self._put(item)

    def _put(self, item: _Packet) -> None:
        if len(self._queue) >= self.queue_size:
            self.dropped[item.kind] += 1
            if item.kind == "video":
                self._streams["video"].need_keyframe = True
            return
        self._queue.append(item)

    async def _ask_keyframe(self, stream: _Stream, now: float) -> None:
        if now - self._last_pli >= KEYFRAME_RETRY_SECONDS:
            self._last_pli = now
            await stream.source.request_keyframe()

    def _report(self, exc: BaseException) -> None:
        if self.error is None:
            self.error = exc
            logger.error("recorder %s failed: %r", self.prefix, exc)
            if self.on_error is not None:
                self.on_error(exc)

    def _worker_error(self, exc: BaseException) -> None:
        self._report(exc)
        if self.task is not None:
            self.task.cancel()

    def _call(self, fn: Callable[..., None], *args: Any) -> None:
        assert self._loop is not None
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody to tell
            self._loop.call_soon_threadsafe(fn, *args)

    # --- worker thread ---------------------------------------------------------------

    def _worker(self) -> None:
        writer: _SegmentWriter | None = None
        video_codec: str | None = None
        size: tuple[int, int] | None = None
        index = 0
        try:
            while True:
                try:
                    item = self._queue.popleft()
                except IndexError:
                    time.sleep(WORKER_POLL_SECONDS)
                    continue
                if item is _STOP:
                    break
                if isinstance(item, _Open):
                    if writer is not None:
                        self._finish(writer)
                        writer = None
                    if item.video_codec is not None:
                        video_codec, size = item.video_codec, item.size or size
                    index += 1
                    writer = self._new_writer(index, item, video_codec, size)
                elif writer is not None:
                    writer.write(item)
            if writer is not None:
                self._finish(writer)
                writer = None
        except BaseException as exc:
            self._worker_failed = True
            if writer is not None:
                with contextlib.suppress(Exception):
                    writer.container.close()  # leave the .part file as far as it got
            self._call(self._worker_error, exc)
        finally:
            assert self._done is not None
            self._call(_set_done, self._done)

    def _new_writer(
        self, index: int, item: _Open, video_codec: str | None, size: tuple[int, int] | None
    ) -> _SegmentWriter:
        if video_codec == "h264":
            fmt, ext, options = "mpegts", "ts", _TS_OPTIONS
        else:
            fmt, ext, options = "webm", "webm", {}
        path = self.directory / f"{self.prefix}-{index:05d}.{ext}"
        container = av.open(str(path) + ".part", "w", format=fmt, container_options=options)
        try:
            streams: dict[str, Any] = {}
            if "video" in self._streams and video_codec is not None:
                width, height = size or (0, 0)
                streams["video"] = container.add_mux_stream(video_codec, width=width, height=height)
            if "audio" in self._streams:
                # A libopus encoder context, opened by PyAV with the header, only so the
                # container gets an OpusHead (channels, pre-skip); nothing is encoded with it.
                audio = container.add_stream("libopus", rate=48000)
                audio.codec_context.layout = "stereo"
                streams["audio"] = audio
        except BaseException:
            container.close()
            raise
        return _SegmentWriter(
            path=path,
            index=index,
            base=item.base,
            started_wall=item.wall,
            container=container,
            streams=streams,
            ended_wall=item.wall,
        )

    def _finish(self, writer: _SegmentWriter) -> None:
        writer.container.close()
        part = Path(str(writer.path) + ".part")
        digest = hashlib.sha256()
        with open(part, "rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
            os.fsync(f.fileno())
        size = part.stat().st_size
        os.replace(part, writer.path)
        dir_fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        segment = Segment(
            path=writer.path,
            index=writer.index,
            started_at=dt.datetime.fromtimestamp(writer.started_wall, dt.UTC),
            ended_at=dt.datetime.fromtimestamp(writer.ended_wall, dt.UTC),
            duration=writer.end / CLOCK,
            frames={kind: writer.frames.get(kind, 0) for kind in writer.streams},
            sha256=digest.hexdigest(),
            size=size,
        )
        self._call(self._segment_done, segment)

    def _segment_done(self, segment: Segment) -> None:
        self._segments.append(segment)
        if self.on_segment is not None:
            self.on_segment(segment)


def _set_done(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
