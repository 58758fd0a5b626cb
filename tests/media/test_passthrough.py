"""Keyframe detection on real encoder output, and the aiortc version guard."""

from __future__ import annotations

import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import pytest

from media.passthrough import h264_is_keyframe, is_keyframe, vp8_is_keyframe, vp8_size

ROOT = Path(__file__).resolve().parents[2]


def _encode(
    codec: str, frames: int, width: int = 320, height: int = 240
) -> list[tuple[bytes, bool]]:
    """Encoded frames of a slowly changing picture, with the encoder's own keyframe flag."""
    ctx = av.CodecContext.create(codec, "w")
    ctx.width, ctx.height, ctx.pix_fmt = width, height, "yuv420p"
    ctx.time_base = Fraction(1, 90000)
    ctx.framerate = 15
    ctx.gop_size = 5
    if codec == "libx264":
        ctx.options = {"tune": "zerolatency", "profile": "baseline"}
    noise = os.urandom(width * height)
    out = []
    for i in range(frames):
        frame = av.VideoFrame(width, height, "yuv420p")
        frame.planes[0].update(noise[i * 7 :] + noise[: i * 7])
        frame.planes[1].update(bytes([128]) * frame.planes[1].buffer_size)
        frame.planes[2].update(bytes([128]) * frame.planes[2].buffer_size)
        frame.pts = i * 6000
        out += [(bytes(p), p.is_keyframe) for p in ctx.encode(frame)]
    out += [(bytes(p), p.is_keyframe) for p in ctx.encode(None)]
    return out


@pytest.mark.parametrize(("codec", "name"), [("libvpx", "vp8"), ("libx264", "h264")])
def test_keyframes_are_recognised_in_real_encoder_output(codec: str, name: str) -> None:
    packets = _encode(codec, 11)
    expected = [flag for _, flag in packets]
    assert sum(expected) >= 2 and not all(expected)
    assert [is_keyframe(name, data) for data, _ in packets] == expected


def test_vp8_size_comes_from_keyframes_only() -> None:
    (key, _), (delta, _) = _encode("libvpx", 2, 352, 288)
    assert vp8_is_keyframe(key) and not vp8_is_keyframe(delta)
    assert vp8_size(key) == (352, 288)
    assert vp8_size(delta) is None
    assert not h264_is_keyframe(b"\x00\x00\x00\x01\x41\x9a")  # a non-IDR slice


def test_import_fails_clearly_on_another_aiortc_version() -> None:
    code = "import aiortc; aiortc.__version__ = '1.17.0'; import media.passthrough"
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode != 0
    assert "ImportError: media.passthrough was written against aiortc 1.16.0" in proc.stderr
    assert "1.17.0 is installed" in proc.stderr
