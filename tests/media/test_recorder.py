"""Recording real aiortc calls without re-encoding: files are opened and decoded with PyAV."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import av
import pytest
from aiortc import RTCPeerConnection

from media import passthrough
from media.recorder import Recorder, Segment
from tests.media.peers import (
    FPS,
    Participant,
    RecorderPeer,
    connect,
    names,
    prefer,
    read_file,
    wait_for,
)

ROOT = Path(__file__).resolve().parents[2]
VIDEO_FRAMES = 60  # 4 s at 15 fps
AUDIO_FRAMES = 200  # 4 s of 20 ms frames
AUDIO_FRAME_S = 0.02


async def _record_call(tmp_path: Path, codec: str) -> tuple[Participant, Recorder, list[Segment]]:
    sender = Participant(codec=codec, video_frames=VIDEO_FRAMES, audio_frames=AUDIO_FRAMES)
    peer = RecorderPeer()
    try:
        await connect(sender.pc, peer.pc)
        recorder = peer.recorder(tmp_path, segment_seconds=2.0)
        recorder.start()
        await sender.video.finished.wait()
        # The receiver's jitter buffer releases a frame when the next one starts, so the
        # last frame sent never leaves it.
        await wait_for(lambda: recorder.received["video"] >= sender.video.sent - 1)
        segments = await recorder.stop()
    finally:
        await sender.pc.close()
        await peer.pc.close()
    return sender, recorder, segments


def _check_segment(segment: Segment, suffix: str, video_codec: str) -> dict:
    assert segment.path.suffix == suffix
    data = segment.path.read_bytes()
    assert hashlib.sha256(data).hexdigest() == segment.sha256
    assert len(data) == segment.size
    streams = read_file(segment.path)
    assert set(streams) == {"video", "audio"}
    video, audio = streams["video"], streams["audio"]
    assert (video.codec, audio.codec) == (video_codec, "opus")
    assert video.keyframe_first, "each segment starts on a keyframe"
    assert (video.width, video.height) == (640, 480)
    for stream in (video, audio):
        assert stream.decoded == stream.packets, "every frame decodes"
        assert stream.pts == sorted(set(stream.pts)), "timestamps strictly increase"
        assert stream.dts == sorted(set(stream.dts))
        assert stream.first_time is not None and 0 <= stream.first_time < 0.25
    assert segment.frames == {"video": video.packets, "audio": audio.packets}
    assert segment.started_at < segment.ended_at
    return streams


@dataclass
class Timing:
    """When a stream of a file starts and ends, and its longest step between packets (s)."""

    first: float
    last: float
    longest_step: float = 0.0


def _timing(path: Path) -> dict[str, Timing]:
    out: dict[str, Timing] = {}
    with av.open(str(path)) as container:
        for packet in container.demux():
            if packet.size == 0 or packet.pts is None:
                continue
            t = float(packet.pts * packet.time_base)
            kind = packet.stream.type
            if kind not in out:
                out[kind] = Timing(t, t)
                continue
            out[kind].longest_step = max(out[kind].longest_step, t - out[kind].last)
            out[kind].last = t
    return out


@pytest.mark.parametrize(
    ("codec", "suffix", "ffmpeg_codec"), [("VP8", ".webm", "vp8"), ("H264", ".ts", "h264")]
)
async def test_a_call_is_recorded_in_keyframe_aligned_segments_without_losing_frames(
    tmp_path: Path, codec: str, suffix: str, ffmpeg_codec: str
) -> None:
    sender, recorder, segments = await _record_call(tmp_path, codec)

    assert len(segments) >= 2, "4 s of media in 2 s segments"
    assert [s.index for s in segments] == list(range(1, len(segments) + 1))
    video_frames = audio_frames = 0
    for segment in segments:
        streams = _check_segment(segment, suffix, ffmpeg_codec)
        video_frames += streams["video"].packets
        audio_frames += streams["audio"].packets
    # Every frame sent is in the files but the last, which aiortc's jitter buffer keeps.
    assert sender.video.sent - 1 <= video_frames <= sender.video.sent
    # The call had sound from start to end (not only a few frames of it), and the recording
    # keeps it all but the last 4-5 frames (20 ms each) that the jitter buffer holds back.
    audio_sent = sender.audio.sent if sender.audio is not None else 0
    assert audio_frames >= 0.9 * AUDIO_FRAMES
    assert audio_frames >= 0.96 * audio_sent
    for segment in segments:
        timing = _timing(segment.path)
        video, audio = timing["video"], timing["audio"]
        # The picture never skips a frame and the sound never drops out inside a segment ...
        assert video.longest_step <= 1.5 / FPS, (segment.index, video)
        assert audio.longest_step <= 1.5 * AUDIO_FRAME_S, (segment.index, audio)
        # ... and the sound lasts as long as the picture (a muted segment would not).
        assert abs(audio.first - video.first) <= 0.25, (segment.index, timing)
        assert abs(audio.last - video.last) <= 0.25, (segment.index, timing)
    assert sum(s.duration for s in segments) == pytest.approx(VIDEO_FRAMES / 15, abs=0.3)
    assert recorder.skipped == recorder.dropped == {"audio": 0, "video": 0}
    assert {"video": video_frames, "audio": audio_frames} == recorder.received
    assert names(tmp_path) == [s.path.name for s in segments]


async def test_cancelling_the_recorder_task_keeps_every_segment_playable(tmp_path: Path) -> None:
    sender = Participant(video_frames=10**6, audio_frames=10**6)
    peer = RecorderPeer()
    finished: list[Segment] = []
    try:
        await connect(sender.pc, peer.pc)
        recorder = peer.recorder(tmp_path, segment_seconds=1.0, on_segment=finished.append)
        recorder.start()
        await wait_for(lambda: len(finished) >= 1 and recorder.received["video"] > 25)
        assert recorder.task is not None
        recorder.task.cancel()
        segments = await recorder.stop()
    finally:
        await sender.pc.close()
        await peer.pc.close()

    assert recorder.task.cancelled()
    assert len(segments) >= 2  # the finished one and the one open at the cancel, closed cleanly
    files = {"video": 0, "audio": 0}
    for segment in segments:
        streams = _check_segment(segment, ".webm", "vp8")
        for kind in files:
            files[kind] += streams[kind].packets
    # Every packet taken off the tracks before the cancel reached a file.
    assert recorder.skipped == recorder.dropped == {"audio": 0, "video": 0}
    assert files == recorder.received
    assert not names(tmp_path, "*.part")


async def test_a_failing_write_is_reported_and_earlier_segments_stay_playable(
    tmp_path: Path,
) -> None:
    # A directory where the second segment's file must go: opening it fails for real.
    (tmp_path / "segment-00002.webm.part").mkdir()
    errors: list[BaseException] = []
    sender = Participant(video_frames=10**6, audio_frames=10**6)
    peer = RecorderPeer()
    try:
        await connect(sender.pc, peer.pc)
        recorder = peer.recorder(tmp_path, segment_seconds=1.0, on_error=errors.append)
        recorder.start()
        await wait_for(lambda: bool(errors))
        segments = await recorder.stop()
    finally:
        await sender.pc.close()
        await peer.pc.close()

    assert len(errors) == 1 and isinstance(errors[0], OSError)
    assert recorder.error is errors[0]
    assert [s.index for s in segments] == [1]
    streams = _check_segment(segments[0], ".webm", "vp8")
    assert streams["video"].packets >= 15  # a full second of video


def test_a_killed_recorder_process_loses_at_most_the_open_segment(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.media.peers", str(tmp_path)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        reported = [json.loads(proc.stdout.readline()) for _ in range(2)]
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    finished = sorted(tmp_path.glob("*.webm"))
    assert [Path(r["path"]).name for r in reported] == [p.name for p in finished[:2]]
    for segment in reported:
        path = Path(segment["path"])
        assert hashlib.sha256(path.read_bytes()).hexdigest() == segment["sha256"]
        streams = read_file(path)
        assert streams["video"].keyframe_first
        assert streams["video"].decoded == streams["video"].packets == segment["frames"]["video"]
        assert streams["audio"].decoded == streams["audio"].packets == segment["frames"]["audio"]
    assert len(list(tmp_path.glob("*.part"))) <= 1


async def test_a_plain_peer_in_the_same_process_still_decodes_while_recording(
    tmp_path: Path,
) -> None:
    recorded = Participant(video_frames=10**6, audio=False)
    plain_sender = Participant(video_frames=10**6, audio=False)
    peer = RecorderPeer()
    plain = RTCPeerConnection()
    plain_track: asyncio.Future = asyncio.get_running_loop().create_future()
    plain.on("track", plain_track.set_result)
    try:
        await connect(recorded.pc, peer.pc)
        await connect(plain_sender.pc, plain)
        recorder = peer.recorder(tmp_path, segment_seconds=10.0)
        recorder.start()
        await wait_for(lambda: recorder.received["video"] >= 5)
        track = await plain_track
        frames = [await asyncio.wait_for(track.recv(), 10) for _ in range(5)]
        assert all(isinstance(f, av.VideoFrame) for f in frames)
        assert {(f.width, f.height) for f in frames} == {(640, 480)}
        with pytest.raises(RuntimeError, match="before the receiver starts"):
            passthrough.install(plain.getReceivers()[0])
        segments = await recorder.stop()
    finally:
        for pc in (recorded.pc, plain_sender.pc, peer.pc, plain):
            await pc.close()
    assert segments and read_file(segments[0].path)["video"].packets >= 5


async def test_a_codec_that_cannot_pass_through_is_reported_and_recording_ends_cleanly(
    tmp_path: Path,
) -> None:
    sender = Participant(video_frames=10**6, audio_frames=10**6)
    audio = next(t for t in sender.pc.getTransceivers() if t.kind == "audio")
    audio.setCodecPreferences(prefer("PCMU", "audio"))
    errors: list[BaseException] = []
    peer = RecorderPeer()
    try:
        await connect(sender.pc, peer.pc)
        recorder = peer.recorder(tmp_path, segment_seconds=30.0, on_error=errors.append)
        recorder.start()
        await wait_for(lambda: bool(errors))
        segments = await recorder.stop()
    finally:
        await sender.pc.close()
        await peer.pc.close()

    assert len(errors) == 1 and isinstance(errors[0], TypeError)
    assert "audio track yields AudioFrame" in str(errors[0])
    assert recorder.task is not None and recorder.task.done()
    for segment in segments:  # whatever was open when the error came was closed cleanly
        streams = read_file(segment.path)
        assert streams["video"].decoded == streams["video"].packets
    assert not names(tmp_path, "*.part")
