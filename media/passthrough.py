"""Encoded-frame passthrough for aiortc receivers: their tracks yield `av.Packet`, not frames.

This is the only module that touches aiortc private internals. An `RTCRtpReceiver` in
aiortc 1.16 always decodes: `_handle_rtp_packet` reassembles each encoded frame in its jitter
buffer and puts `(codec, JitterFrame)` on `__decoder_queue`, which the `decoder_worker` thread
reads and hands to the decoder returned by `get_decoder`. `install` swaps that queue, on one
receiver, for a `_PacketQueue` whose `put` turns the encoded frame into an `av.Packet` and puts
it straight on the track's queue. The decoder thread still starts but never receives a frame,
so nothing is decoded. No module-level function of aiortc is patched: other peer connections
in the process keep decoding.

The swap must happen before `RTCRtpReceiver.receive` (it passes the queue to the thread it
starts), i.e. in the peer connection's "track" event or earlier; `enable` does that.
"""

from __future__ import annotations

import asyncio
import logging
import queue
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import aiortc
import av
from aiortc import RTCPeerConnection, RTCRtpReceiver
from aiortc.mediastreams import MediaStreamTrack

AIORTC_VERSION = "1.16.0"
if aiortc.__version__ != AIORTC_VERSION:
    raise ImportError(
        f"media.passthrough was written against aiortc {AIORTC_VERSION} and reaches into its "
        f"private RTCRtpReceiver attributes; aiortc {aiortc.__version__} is installed. Check "
        "aiortc/rtcrtpreceiver.py (decoder_worker, __decoder_queue, _send_rtcp_pli) and "
        "tests/media before changing the pin in pyproject.toml."
    )

# Name-mangled private attributes of RTCRtpReceiver that this module relies on.
_QUEUE_ATTR = "_RTCRtpReceiver__decoder_queue"
_STARTED_ATTR = "_RTCRtpReceiver__started"

# RTP MIME type -> FFmpeg codec name, for the codecs that are passed through.
PASSTHROUGH_CODECS: dict[str, str] = {
    "video/vp8": "vp8",
    "video/h264": "h264",
    "audio/opus": "opus",
}
VIDEO_TIME_BASE = Fraction(1, 90000)
OPUS_TIME_BASE = Fraction(1, 48000)

_H264_IDR = 5

logger = logging.getLogger(__name__)


def vp8_is_keyframe(data: bytes) -> bool:
    """True if a VP8 frame is a keyframe (frame-tag bit 0 clear, then the 9d 01 2a start code)."""
    return len(data) >= 10 and not data[0] & 1 and data[3:6] == b"\x9d\x01\x2a"


def vp8_size(data: bytes) -> tuple[int, int] | None:
    """Width and height from a VP8 keyframe header, or None for other frames."""
    if not vp8_is_keyframe(data):
        return None
    width = int.from_bytes(data[6:8], "little") & 0x3FFF
    height = int.from_bytes(data[8:10], "little") & 0x3FFF
    return width, height


def h264_nal_types(data: bytes) -> list[int]:
    """NAL unit types in an Annex B access unit (aiortc's depayloader emits Annex B)."""
    types = []
    pos = data.find(b"\x00\x00\x01")
    while pos != -1 and pos + 3 < len(data):
        types.append(data[pos + 3] & 0x1F)
        pos = data.find(b"\x00\x00\x01", pos + 3)
    return types


def h264_is_keyframe(data: bytes) -> bool:
    """True if an H264 access unit holds an IDR slice."""
    return _H264_IDR in h264_nal_types(data)


def is_keyframe(codec_name: str, data: bytes) -> bool:
    """True if the encoded frame can start a decodable stream (every Opus frame can)."""
    if codec_name == "vp8":
        return vp8_is_keyframe(data)
    if codec_name == "h264":
        return h264_is_keyframe(data)
    return True


@dataclass(frozen=True)
class Keyframe:
    """A copy of one video keyframe, safe to use from any thread."""

    codec_name: str
    data: bytes
    timestamp: int


class PassthroughReceiver:
    """One aiortc receiver whose track yields `av.Packet` (pts = mapped RTP timestamp).

    Packets carry `time_base` = 1/clock rate (1/90000 video, 1/48000 Opus) and `is_keyframe`.
    Codecs other than VP8, H264 and Opus are decoded as usual and the track yields frames.
    """

    def __init__(self, receiver: RTCRtpReceiver) -> None:
        if not hasattr(receiver, _QUEUE_ATTR) or not hasattr(receiver, _STARTED_ATTR):
            raise RuntimeError("aiortc RTCRtpReceiver no longer has the attributes we replace")
        if getattr(receiver, _STARTED_ATTR):
            raise RuntimeError(
                "passthrough must be installed before the receiver starts "
                "(in the 'track' event or before setRemoteDescription)"
            )
        self.receiver = receiver
        self.kind: str = receiver.track.kind
        self.codec_name: str | None = None
        self.packets = 0
        self.keyframes = 0
        self._keyframe_waiters: list[asyncio.Future[Keyframe]] = []
        self._queue = _PacketQueue(self)
        setattr(receiver, _QUEUE_ATTR, self._queue)

    @property
    def track(self) -> MediaStreamTrack:
        """The receiver's remote track; `recv()` returns `av.Packet`."""
        return self.receiver.track

    async def request_keyframe(self) -> bool:
        """Send a PLI to the sender of this video track; False if there is nobody to ask yet."""
        if self.kind != "video":
            return False
        sources = self.receiver.getSynchronizationSources()
        for source in sources:
            # An RTX SSRC may be listed too; the sender ignores a PLI for an SSRC it lacks.
            await self.receiver._send_rtcp_pli(source.source)
        return bool(sources)

    def next_keyframe(self) -> asyncio.Future[Keyframe]:
        """A future for the next keyframe that passes, whoever reads the track."""
        future: asyncio.Future[Keyframe] = asyncio.get_running_loop().create_future()
        self._keyframe_waiters.append(future)
        return future

    def _packet(self, codec: Any, data: bytes, timestamp: int) -> av.Packet:
        """Build the packet for one encoded frame (runs on the event loop)."""
        name = PASSTHROUGH_CODECS[codec.mimeType.lower()]
        if name != self.codec_name:
            if self.codec_name is not None:
                logger.warning("codec changed from %s to %s", self.codec_name, name)
            self.codec_name = name
        packet = av.Packet(data)
        packet.pts = packet.dts = timestamp
        packet.time_base = Fraction(1, codec.clockRate)
        keyframe = is_keyframe(name, data)
        packet.is_keyframe = keyframe
        self.packets += 1
        if keyframe and self.kind == "video":
            self.keyframes += 1
            waiters, self._keyframe_waiters = self._keyframe_waiters, []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(Keyframe(name, data, timestamp))
        return packet


class _PacketQueue(queue.Queue):
    """Stands in for the receiver's decoder queue; encoded frames bypass the decoder thread."""

    def __init__(self, owner: PassthroughReceiver) -> None:
        super().__init__()
        self._owner = owner

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        # Called on the event loop by RTCRtpReceiver._handle_rtp_packet, and with None (from
        # the loop too) when the receiver stops: None goes to the idle decoder thread, which
        # then ends the track after every packet already queued.
        if item is not None:
            codec, frame = item
            if codec.mimeType.lower() in PASSTHROUGH_CODECS:
                packet = self._owner._packet(codec, frame.data, frame.timestamp)
                self._owner.receiver.track._queue.put_nowait(packet)
                return
        super().put(item, block, timeout)


def install(receiver: RTCRtpReceiver) -> PassthroughReceiver:
    """Switch one not-yet-started receiver to passthrough."""
    return PassthroughReceiver(receiver)


def enable(pc: RTCPeerConnection, on_receiver: Callable[[PassthroughReceiver], None]) -> None:
    """Switch every receiver of `pc` to passthrough as its track appears.

    Call before `setRemoteDescription`. Receivers that already exist (from `addTransceiver`)
    are switched at once; `on_receiver` is called for each one.
    """
    done: set[int] = set()

    def switch(receiver: RTCRtpReceiver) -> None:
        if id(receiver) not in done:
            done.add(id(receiver))
            on_receiver(install(receiver))

    for receiver in pc.getReceivers():
        switch(receiver)

    @pc.on("track")
    def on_track(track: MediaStreamTrack) -> None:
        for receiver in pc.getReceivers():
            if receiver.track is track:
                switch(receiver)
