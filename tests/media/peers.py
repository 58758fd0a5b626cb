"""Real aiortc peers for the media tests: a participant with counted synthetic tracks, a
recorder peer with passthrough receivers, and helpers to read back recorded files.

`python -m tests.media.peers DIR` records a call into DIR (1 s segments), prints one JSON line
per finished segment and runs until killed: the crash test SIGKILLs it.
"""

from __future__ import annotations

import asyncio
import fractions
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import av
from aiortc import RTCPeerConnection, RTCRtpSender
from aiortc.mediastreams import AudioStreamTrack, MediaStreamError, MediaStreamTrack
from av import VideoFrame

from media import passthrough
from media.passthrough import PassthroughReceiver
from media.recorder import Recorder

FPS = 15
VIDEO_TIME_BASE = fractions.Fraction(1, 90000)


class PatternVideoTrack(MediaStreamTrack):
    """Sends `frames` moving-pattern frames at 15 fps, then nothing; counts what it sent."""

    kind = "video"

    def __init__(self, frames: int, width: int = 640, height: int = 480) -> None:
        super().__init__()
        self.limit = frames
        self.width = width
        self.height = height
        self.sent = 0
        self.finished = asyncio.Event()
        self._start = 0.0
        luma = bytes((x * 255 // max(width - 1, 1)) for x in range(width)) * height
        self._luma = luma
        self._chroma = bytes([128]) * (width // 2 * height // 2)

    async def recv(self) -> VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self.sent >= self.limit:
            self.finished.set()
            await asyncio.Future()  # stay silent until the connection closes
        if self.sent == 0:
            self._start = time.monotonic()
        else:
            await asyncio.sleep(max(0.0, self._start + self.sent / FPS - time.monotonic()))
        frame = VideoFrame(self.width, self.height, "yuv420p")
        # A bright bar that moves every frame, so every frame carries new picture data.
        bar = (self.sent * 16) % self.width
        row = bytearray(self._luma[: self.width])
        row[bar : bar + 16] = b"\xff" * len(row[bar : bar + 16])
        frame.planes[0].update(bytes(row) * self.height)
        frame.planes[1].update(self._chroma)
        frame.planes[2].update(self._chroma)
        frame.pts = self.sent * (90000 // FPS)
        frame.time_base = VIDEO_TIME_BASE
        self.sent += 1
        return frame


class CountedAudioTrack(AudioStreamTrack):
    """aiortc's 20 ms silence frames, `frames` of them, then nothing; counts what it sent."""

    def __init__(self, frames: int) -> None:
        super().__init__()
        self.limit = frames
        self.sent = 0

    async def recv(self) -> av.AudioFrame:
        if self.sent >= self.limit:
            await asyncio.Future()
        frame = await super().recv()
        self.sent += 1
        return frame


def prefer(codec: str, kind: str) -> list:
    """Sender capabilities for one codec (plus RTX for video)."""
    caps = RTCRtpSender.getCapabilities(kind).codecs
    return [c for c in caps if c.mimeType.lower() in (f"{kind}/{codec}".lower(), "video/rtx")]


class Participant:
    """A send-only peer with a video and an audio track."""

    def __init__(
        self,
        *,
        codec: str = "VP8",
        video_frames: int = 60,
        audio_frames: int = 200,
        width: int = 640,
        height: int = 480,
        audio: bool = True,
    ) -> None:
        self.pc = RTCPeerConnection()
        self.video = PatternVideoTrack(video_frames, width, height)
        transceiver = self.pc.addTransceiver(self.video, direction="sendonly")
        transceiver.setCodecPreferences(prefer(codec, "video"))
        self.audio: CountedAudioTrack | None = None
        if audio:
            self.audio = CountedAudioTrack(audio_frames)
            self.pc.addTransceiver(self.audio, direction="sendonly")


@dataclass
class RecorderPeer:
    """A peer whose receivers pass encoded frames through."""

    pc: RTCPeerConnection = field(default_factory=RTCPeerConnection)
    sources: dict[str, PassthroughReceiver] = field(default_factory=dict)

    def __post_init__(self) -> None:
        passthrough.enable(self.pc, lambda s: self.sources.__setitem__(s.kind, s))

    def recorder(self, directory: Path, **kw: object) -> Recorder:
        recorder = Recorder(directory, **kw)  # type: ignore[arg-type]
        for source in self.sources.values():
            recorder.add(source)
        return recorder


async def connect(offerer: RTCPeerConnection, answerer: RTCPeerConnection) -> None:
    """Offer/answer in process (aiortc puts every candidate in the SDP)."""
    await offerer.setLocalDescription(await offerer.createOffer())
    await answerer.setRemoteDescription(offerer.localDescription)
    await answerer.setLocalDescription(await answerer.createAnswer())
    await offerer.setRemoteDescription(answerer.localDescription)


async def wait_for(condition: Callable[[], bool], within: float = 20.0) -> None:
    """Wait until `condition()` holds; a TimeoutError fails the test."""
    async with asyncio.timeout(within):
        # The counters polled here have no event to wait on.
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.02)


@dataclass
class FileStream:
    """What one stream of a recorded file holds."""

    codec: str
    packets: int = 0
    decoded: int = 0
    keyframe_first: bool = False
    first_time: float | None = None
    pts: list[int] = field(default_factory=list)
    dts: list[int] = field(default_factory=list)
    width: int = 0
    height: int = 0


def read_file(path: Path) -> dict[str, FileStream]:
    """Demux and decode every packet of a recorded file; decoding errors propagate."""
    out: dict[str, FileStream] = {}
    with av.open(str(path)) as container:
        for stream in container.streams:
            out[stream.type] = FileStream(codec=stream.codec_context.name)
        for packet in container.demux():
            if packet.size == 0:
                continue  # flush packet at the end of a stream
            info = out[packet.stream.type]
            if info.packets == 0:
                info.keyframe_first = packet.is_keyframe
                info.first_time = float(packet.pts * packet.time_base)
            info.packets += 1
            info.pts.append(packet.pts)
            info.dts.append(packet.dts)
            for frame in packet.decode():
                info.decoded += 1
                if packet.stream.type == "video":
                    info.width, info.height = frame.width, frame.height
        for stream in container.streams:
            for frame in stream.codec_context.decode(None):
                out[stream.type].decoded += 1
                if stream.type == "video":
                    out[stream.type].width, out[stream.type].height = frame.width, frame.height
    return out


def names(directory: Path, pattern: str = "*") -> list[str]:
    """Sorted names of the files in `directory` matching `pattern`."""
    return sorted(p.name for p in directory.glob(pattern))


async def _record_until_killed(directory: Path) -> None:
    sender = Participant(video_frames=10**6, audio_frames=10**6)
    peer = RecorderPeer()
    await connect(sender.pc, peer.pc)

    def printed(segment: object) -> None:
        print(json.dumps(segment.as_dict()), flush=True)  # type: ignore[attr-defined]

    recorder = peer.recorder(directory, segment_seconds=1.0, on_segment=printed)
    recorder.start()
    await asyncio.Future()


if __name__ == "__main__":
    asyncio.run(_record_until_killed(Path(sys.argv[1])))
