"""Snapshots: a keyframe is requested from the sender, decoded alone and saved as JPEG."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from media.snapshot import SnapshotError, keyframe_to_jpeg, take_snapshot
from tests.media.peers import Participant, RecorderPeer, connect, wait_for


@pytest.mark.parametrize("codec", ["VP8", "H264"])
async def test_snapshot_is_a_jpeg_of_the_size_the_participant_sends(
    tmp_path: Path, codec: str
) -> None:
    sender = Participant(codec=codec, video_frames=10**6, width=320, height=240, audio=False)
    peer = RecorderPeer()
    try:
        await connect(sender.pc, peer.pc)
        recorder = peer.recorder(tmp_path, segment_seconds=30.0)
        recorder.start()
        await wait_for(lambda: recorder.received["video"] >= 3)
        source = peer.sources["video"]
        keyframes_before = source.keyframes
        snapshot = await take_snapshot(source)
        await recorder.stop()
    finally:
        await sender.pc.close()
        await peer.pc.close()

    assert source.keyframes > keyframes_before, "a fresh keyframe was asked for"
    image = Image.open(io.BytesIO(snapshot.jpeg))
    assert image.format == "JPEG"
    assert image.size == (snapshot.width, snapshot.height) == (320, 240)
    assert snapshot.codec == codec.lower()


def test_a_frame_that_is_not_a_keyframe_is_refused() -> None:
    with pytest.raises(SnapshotError):
        keyframe_to_jpeg("vp8", b"\x01\x02\x03")
    with pytest.raises(SnapshotError):
        keyframe_to_jpeg("opus", b"\xfc")
