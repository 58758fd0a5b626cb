"""Still snapshot of a participant's video: ask for a keyframe, decode only it, encode a JPEG."""

from __future__ import annotations

import asyncio
import io
from dataclasses import dataclass

import av

from core.errors import AppError
from media.passthrough import PassthroughReceiver

# A PLI is resent this often until a keyframe comes (one may be lost on the way).
KEYFRAME_RETRY_SECONDS = 1.0
DEFAULT_TIMEOUT_SECONDS = 5.0


class SnapshotError(Exception):
    """No keyframe could be had or decoded."""


@dataclass(frozen=True)
class Snapshot:
    """A JPEG of one video keyframe, at the size it was sent."""

    jpeg: bytes
    width: int
    height: int
    codec: str


def keyframe_to_jpeg(codec_name: str, data: bytes, *, quality: int = 90) -> Snapshot:
    """Decode one VP8 or H264 keyframe and encode it as JPEG (blocking: run it in a thread)."""
    if codec_name not in ("vp8", "h264"):
        raise SnapshotError(f"cannot decode a {codec_name} frame")
    decoder = av.CodecContext.create(codec_name, "r")
    try:
        frames = decoder.decode(av.Packet(data)) + decoder.decode(None)
    except av.FFmpegError as exc:
        raise SnapshotError(f"keyframe did not decode: {exc}") from exc
    if not frames:
        raise SnapshotError("keyframe decoded to no picture")
    frame = frames[0]
    out = io.BytesIO()
    frame.to_image().save(out, format="JPEG", quality=quality)
    return Snapshot(out.getvalue(), frame.width, frame.height, codec_name)


async def take_snapshot(
    source: PassthroughReceiver,
    *,
    within: float = DEFAULT_TIMEOUT_SECONDS,
    quality: int = 90,
) -> Snapshot:
    """Ask the sender for a keyframe (PLI), wait up to `within` seconds, return it as JPEG.

    Works whether or not a recorder reads the track; the decode runs in a thread.
    """
    if source.kind != "video":
        raise SnapshotError("snapshots need a video source")
    keyframe = source.next_keyframe()
    try:
        async with asyncio.timeout(within):
            while True:
                await source.request_keyframe()
                done, _ = await asyncio.wait({keyframe}, timeout=KEYFRAME_RETRY_SECONDS)
                if done:
                    break
    except TimeoutError:
        raise SnapshotError(f"no keyframe within {within} s") from None
    finally:
        keyframe.cancel()
    frame = keyframe.result()
    return await asyncio.to_thread(keyframe_to_jpeg, frame.codec_name, frame.data, quality=quality)


async def capture(video: PassthroughReceiver | None) -> tuple[bytes, int, int]:
    """A JPEG of a recorded participant's video and its size, or the error the client gets."""
    if video is None:
        raise AppError("recording.no_video")
    try:
        snap = await take_snapshot(video)
    except SnapshotError as e:
        raise AppError("recording.snapshot_failed", error=str(e)) from None
    return snap.jpeg, snap.width, snap.height
