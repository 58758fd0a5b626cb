"""Recording benchmark: our passthrough recorder against aiortc's MediaRecorder, and a ramp.

    python bench/recording.py [--quick]

(a) CPU-seconds per media-second per recorded participant (VP8 640x480@15fps + Opus), ours
    (media/recorder.py: no decoding, no encoding) vs stock `MediaRecorder` (decodes and
    re-encodes), in the same run.
(b) How many participants one recorder process keeps with no frame lost in the files, for a
    ramp of concurrent participants.

Senders run in one process and the recorder in another, each pinned to its own CPU, so the
recorder's CPU is read alone. Senders replay pre-encoded VP8/Opus packets (a keyframe every
2 s), so their cost stays small and does not depend on ours. Figures are printed, never
asserted; the last line is one JSON object with every figure. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import os
import resource
import shutil
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

FPS = 15
WIDTH, HEIGHT = 640, 480
VIDEO_BITRATE = 800_000  # what Chrome sends for 640x480@15fps on a good link
GOP_FRAMES = 2 * FPS  # pre-encoded senders cannot honour a PLI; they send a keyframe every 2 s
LOOP_FRAMES = 2 * GOP_FRAMES
# At the end of a stream aiortc's jitter buffer keeps the last frame (video) or the last
# prefetch frames (audio, prefetch=4) until a next packet that never comes.
HOLDBACK = {"video": 1, "audio": 4}
# Senders more than this behind their schedule could not keep up: that trial measures them.
SENDER_LATE_WARN_MS = 500.0
TARGETS = {"ours_cpu_per_media_s_max": 0.1, "ratio_min": 5.0}
FOREIGN_WARN_CPUS = 0.15
TIMEOUT_S = 120.0


@dataclass(frozen=True)
class Sizes:
    compare_seconds: float
    ramp: tuple[int, ...]
    ramp_seconds: float
    segment_seconds: float


FULL = Sizes(10.0, (5, 10, 20, 30, 45, 60), 10.0, 5.0)
QUICK = Sizes(2.0, (3,), 2.0, 1.0)

CLK_TCK = os.sysconf("SC_CLK_TCK")


def say(*parts: Any) -> None:
    print(*parts, flush=True)


def machine_busy_s() -> float:
    """CPU seconds all CPUs spent busy since boot."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:9]]
    return (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / CLK_TCK


def self_cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def pin_self(cpu: int | None) -> None:
    if cpu is not None:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, {cpu})


# -- senders ------------------------------------------------------------------------


def pre_encode() -> tuple[list[bytes], list[bytes]]:
    """LOOP_FRAMES VP8 frames of a moving picture with sensor-like noise, and 50 Opus packets.

    The noise makes the VP8 stream look like a camera's: ~22 KB keyframes, 3-5 KB deltas,
    ~800 kbps. A keyframe every GOP_FRAMES lets the loop restart on frame 0.
    """
    import av

    vp8 = av.CodecContext.create("libvpx", "w")
    vp8.width, vp8.height, vp8.pix_fmt = WIDTH, HEIGHT, "yuv420p"
    vp8.time_base = Fraction(1, 90000)
    vp8.framerate = FPS
    vp8.bit_rate = VIDEO_BITRATE
    vp8.gop_size = GOP_FRAMES
    # Gradient capped at 250 so adding 0-3 of noise never carries into the next byte.
    base = bytes(min(250, (x // 3 + y // 3) & 0xFF) for y in range(HEIGHT) for x in range(WIDTH))
    mod4 = bytes(i % 4 for i in range(256))
    video: list[bytes] = []
    for i in range(LOOP_FRAMES):
        luma = bytearray(base)
        left = (i * 8) % (WIDTH - 120)
        for r in range(100, 260):  # a block moving right
            luma[r * WIDTH + left : r * WIDTH + left + 120] = b"\xe0" * 120
        noise = os.urandom(WIDTH * HEIGHT).translate(mod4)
        total = int.from_bytes(luma, "big") + int.from_bytes(noise, "big")
        frame = av.VideoFrame(WIDTH, HEIGHT, "yuv420p")
        frame.planes[0].update(total.to_bytes(WIDTH * HEIGHT, "big"))
        for plane in frame.planes[1:]:
            plane.update(bytes([128]) * plane.buffer_size)
        frame.pts = i * (90000 // FPS)
        if i % GOP_FRAMES == 0:
            frame.pict_type = av.video.frame.PictureType.I
        video += [bytes(p) for p in vp8.encode(frame)]
    video += [bytes(p) for p in vp8.encode(None)]
    opus = av.CodecContext.create("libopus", "w")
    opus.sample_rate, opus.layout, opus.format = 48000, "stereo", "s16"
    opus.time_base = Fraction(1, 48000)
    audio: list[bytes] = []
    for i in range(50):
        frame = av.AudioFrame(format="s16", layout="stereo", samples=960)
        frame.planes[0].update(os.urandom(960 * 4).translate(mod4))
        frame.pts, frame.sample_rate = i * 960, 48000
        audio += [bytes(p) for p in opus.encode(frame)]
    return video[:LOOP_FRAMES], audio


def _sender_main(conn: Any, n: int, seconds: float, media: Any, cpu: int | None) -> None:
    pin_self(cpu)
    try:
        asyncio.run(_senders(conn, n, seconds, media))
    except BaseException:
        conn.send({"error": traceback.format_exc()})


async def _senders(
    conn: Any, n: int, seconds: float, media: tuple[list[bytes], list[bytes]]
) -> None:
    import av
    from aiortc import RTCPeerConnection, RTCRtpSender, RTCSessionDescription
    from aiortc.mediastreams import MediaStreamTrack

    video, audio = media
    go = asyncio.Event()
    t_go = [0.0]
    late: list[float] = []

    class Replay(MediaStreamTrack):
        def __init__(self, kind: str, packets: list[bytes], rate: float, clock: int) -> None:
            super().__init__()
            self.kind = kind
            self.packets, self.rate, self.clock = packets, rate, clock
            self.limit = int(seconds * rate)
            self.sent = 0

        async def recv(self) -> av.Packet:
            await go.wait()
            if self.sent >= self.limit:
                await asyncio.Future()
            due = t_go[0] + self.sent / self.rate
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                late.append(-delay)
            packet = av.Packet(self.packets[self.sent % len(self.packets)])
            packet.pts = int(self.sent * self.clock / self.rate)
            packet.time_base = Fraction(1, self.clock)
            self.sent += 1
            return packet

    vp8 = [c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType == "video/VP8"]
    pcs, tracks = [], []
    offers = []
    for _ in range(n):
        pc = RTCPeerConnection()
        v = Replay("video", video, FPS, 90000)
        a = Replay("audio", audio, 50, 48000)
        pc.addTransceiver(v, direction="sendonly").setCodecPreferences(vp8)
        pc.addTransceiver(a, direction="sendonly")
        await pc.setLocalDescription(await pc.createOffer())
        pcs.append(pc)
        tracks.append((v, a))
        offers.append(pc.localDescription.sdp)
    conn.send({"offers": offers})
    answers = await asyncio.to_thread(conn.recv)
    for pc, sdp in zip(pcs, answers["answers"], strict=True):
        await pc.setRemoteDescription(RTCSessionDescription(sdp, "answer"))
    async with asyncio.timeout(TIMEOUT_S):
        while any(pc.connectionState != "connected" for pc in pcs):  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    cpu0 = self_cpu_s()
    t_go[0] = time.monotonic()
    go.set()
    conn.send({"started": True})
    await asyncio.sleep(seconds + 0.5)
    conn.send(
        {
            "sent": [{"video": v.sent, "audio": a.sent} for v, a in tracks],
            "cpu_s": self_cpu_s() - cpu0,
            "late_max_s": max(late, default=0.0),
        }
    )
    await asyncio.to_thread(conn.recv)  # the recorder has finished
    for pc in pcs:
        await pc.close()


# -- recorder -----------------------------------------------------------------------


def _recorder_main(
    conn: Any, mode: str, directory: str, segment_seconds: float, cpu: int | None, profile: bool
) -> None:
    pin_self(cpu)
    try:
        if profile:
            import cProfile
            import pstats

            with cProfile.Profile() as prof:
                asyncio.run(_recorders(conn, mode, Path(directory), segment_seconds))
            pstats.Stats(prof, stream=sys.stderr).sort_stats("tottime").print_stats(25)
        else:
            asyncio.run(_recorders(conn, mode, Path(directory), segment_seconds))
    except BaseException:
        conn.send({"error": traceback.format_exc()})


async def _recorders(conn: Any, mode: str, directory: Path, segment_seconds: float) -> None:
    from aiortc import RTCPeerConnection, RTCSessionDescription
    from aiortc.contrib.media import MediaRecorder
    from aiortc.mediastreams import MediaStreamError

    from media import passthrough
    from media.passthrough import PassthroughReceiver
    from media.recorder import Recorder

    offers = (await asyncio.to_thread(conn.recv))["offers"]
    pcs: list[RTCPeerConnection] = []
    ours: list[Recorder] = []
    stock: list[MediaRecorder] = []
    bare: list[tuple[PassthroughReceiver, dict[str, int]]] = []
    bare_counts: list[dict[str, int]] = []
    for i, sdp in enumerate(offers):
        pc = RTCPeerConnection()
        if mode == "ours":
            rec = Recorder(directory, segment_seconds=segment_seconds, prefix=f"p{i:03d}")
            passthrough.enable(pc, rec.add)
            ours.append(rec)
        elif mode == "recv":
            counts = {"video": 0, "audio": 0}
            bare_counts.append(counts)
            passthrough.enable(pc, lambda s, c=counts: bare.append((s, c)))
        else:
            mr = MediaRecorder(str(directory / f"p{i:03d}.webm"))
            pc.on("track", mr.addTrack)
            stock.append(mr)
        await pc.setRemoteDescription(RTCSessionDescription(sdp, "offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        pcs.append(pc)
    for rec in ours:
        rec.start()
    for mr in stock:
        await mr.start()

    async def drain(source: PassthroughReceiver, counts: dict[str, int]) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                await source.track.recv()
                counts[source.kind] += 1

    drains = [asyncio.create_task(drain(s, c)) for s, c in bare]

    def delivered() -> int:
        if ours:
            return sum(sum(r.received.values()) for r in ours)
        return sum(sum(c.values()) for _, c in bare)

    conn.send({"answers": [pc.localDescription.sdp for pc in pcs]})

    lags: list[float] = []

    spikes: list[tuple[float, float]] = []

    async def ticker() -> None:
        # How late the event loop runs a 20 ms timer: a stalled loop delays every call.
        while True:
            t = time.monotonic()
            await asyncio.sleep(0.02)
            lag = time.monotonic() - t - 0.02
            lags.append(lag)
            if lag > 0.05 and len(spikes) < 10:
                spikes.append((round(t - t0, 2), round(lag * 1000, 1)))

    await asyncio.to_thread(conn.recv)  # media started
    cpu0, busy0, t0 = self_cpu_s(), machine_busy_s(), time.monotonic()
    tick = asyncio.create_task(ticker())
    await asyncio.to_thread(conn.recv)  # senders are done
    # Let the last packets arrive: wait until nothing new came for 0.5 s (stock: 1 s).
    last = -1
    while not stock:
        now = delivered()
        if now == last:
            break
        last = now
        await asyncio.sleep(0.5)
    if stock:
        await asyncio.sleep(1.0)
    cpu, busy, wall = self_cpu_s() - cpu0, machine_busy_s() - busy0, time.monotonic() - t0
    tick.cancel()
    files: list[dict[str, int]] = []
    dropped = 0
    if ours:
        for rec in ours:
            segments = await rec.stop()
            dropped += sum(rec.dropped.values())
            files.append(count_frames([s.path for s in segments]))
    for mr in stock:
        await mr.stop()
    for i in range(len(stock)):
        files.append(count_frames([directory / f"p{i:03d}.webm"]))
    for task in drains:
        task.cancel()
    # "recv" writes no file: count what reached the tracks instead.
    files += [{**c, "undecodable": 0} for c in bare_counts]
    for pc in pcs:
        await pc.close()
    conn.send(
        {
            "cpu_s": cpu,
            "wall_s": wall,
            "machine_busy_s": busy,
            "lag_max_ms": round(max(lags, default=0.0) * 1000, 1),
            "lag_p99_ms": round(sorted(lags)[int(0.99 * (len(lags) - 1))] * 1000, 1)
            if lags
            else None,
            "lag_spikes": spikes,  # (seconds after media start, ms) of lags over 50 ms
            "files": files,
            "dropped": dropped,
        }
    )


def count_frames(paths: list[Path]) -> dict[str, int]:
    """Frames that decode, per kind, over a participant's files."""
    import av

    out = {"video": 0, "audio": 0, "undecodable": 0}
    for path in paths:
        with av.open(str(path)) as container:
            for packet in container.demux():
                if packet.size == 0:
                    continue
                try:
                    out[packet.stream.type] += len(packet.decode())
                except av.FFmpegError:
                    out["undecodable"] += 1
            for stream in container.streams:
                out[stream.type] += len(stream.codec_context.decode(None))
    return out


# -- orchestration ------------------------------------------------------------------


def trial(
    mode: str,
    n: int,
    seconds: float,
    sizes: Sizes,
    cpus: tuple[int | None, int | None],
    media: tuple[list[bytes], list[bytes]],
    profile: bool = False,
    keep: bool = False,
) -> dict[str, Any]:
    """One run: n senders in one process, their recorder in another. Returns the figures."""
    ctx = mp.get_context("spawn")
    s_parent, s_child = ctx.Pipe()
    r_parent, r_child = ctx.Pipe()
    tmp = Path(tempfile.mkdtemp(prefix="cw-rec-bench-"))
    sender = ctx.Process(target=_sender_main, args=(s_child, n, seconds, media, cpus[1]))
    recorder = ctx.Process(
        target=_recorder_main,
        args=(r_child, mode, str(tmp), sizes.segment_seconds, cpus[0], profile),
    )
    sender.start()
    recorder.start()

    def get(conn: Any) -> dict[str, Any]:
        if not conn.poll(TIMEOUT_S):
            raise TimeoutError("a bench process did not answer")
        msg = conn.recv()
        if "error" in msg:
            raise RuntimeError(msg["error"])
        return msg

    try:
        r_parent.send(get(s_parent))  # offers
        s_parent.send(get(r_parent))  # answers
        get(s_parent)  # started
        r_parent.send({"started": True})
        sent = get(s_parent)
        r_parent.send({"done": True})
        rec = get(r_parent)
        s_parent.send({"bye": True})
    finally:
        for p in (sender, recorder):
            p.join(timeout=30)
            if p.is_alive():
                p.kill()
        if keep:
            say(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    media_s = n * seconds
    lost = {"video": 0, "audio": 0}
    for s, f in zip(sent["sent"], rec["files"], strict=True):
        for kind in lost:
            lost[kind] += max(0, s[kind] - HOLDBACK[kind] - f[kind])
    # The sender's window is the recorder's but for the recorder's final 0.5-1 s of draining.
    foreign = rec["machine_busy_s"] - rec["cpu_s"] - sent["cpu_s"]
    foreign = max(0.0, foreign) / max(rec["wall_s"], 1e-9)
    return {
        "mode": mode,
        "participants": n,
        "media_s_per_participant": seconds,
        "recorder_cpu_s": round(rec["cpu_s"], 3),
        "recorder_cpu_util": round(rec["cpu_s"] / rec["wall_s"], 3),
        "cpu_s_per_media_s": round(rec["cpu_s"] / media_s, 4),
        "sender_cpu_util": round(sent["cpu_s"] / (seconds + 0.5), 3),
        "sender_late_max_ms": round(sent["late_max_s"] * 1000, 1),
        "sent": {k: sum(s[k] for s in sent["sent"]) for k in ("video", "audio")},
        "in_files": {k: sum(f[k] for f in rec["files"]) for k in ("video", "audio")},
        "undecodable": sum(f["undecodable"] for f in rec["files"]),
        "lost": lost,
        "queue_dropped": rec["dropped"],
        "loop_lag_max_ms": rec["lag_max_ms"],
        "loop_lag_p99_ms": rec["lag_p99_ms"],
        "loop_lag_spikes": rec["lag_spikes"],
        "foreign_cpus": round(foreign, 2),
    }


def row(r: dict[str, Any]) -> str:
    warn = "  (disturbed)" if r["foreign_cpus"] > FOREIGN_WARN_CPUS else ""
    if r["sender_late_max_ms"] > SENDER_LATE_WARN_MS:
        warn += "  (senders late)"
    return (
        f"{r['mode']:<5} {r['participants']:>3}  {r['cpu_s_per_media_s']:>8.4f}  "
        f"{r['recorder_cpu_util']:>5.2f}  {r['sent']['video']:>6}/{r['in_files']['video']:<6} "
        f"{r['lost']['video']:>4}/{r['lost']['audio']:<4} {r['undecodable']:>4}  "
        f"{r['loop_lag_max_ms']:>7.1f}  {r['sender_cpu_util']:>5.2f}  "
        f"{r['sender_late_max_ms']:>6.1f}  {r['foreign_cpus']:>5.2f}{warn}"
    )


HEADER = (
    "mode  n    cpu/media-s  rec-CPU  video sent/files  lost v/a  bad  "
    "lag-max-ms  snd-CPU  late-ms  others"
)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smoke run of a few seconds")
    p.add_argument("--ramp", help="comma-separated participant counts, e.g. 5,10,20,30")
    p.add_argument("--seconds", type=float, help="media seconds per trial")
    p.add_argument("--only", help="compare,ramp (default both)")
    p.add_argument("--no-pin", action="store_true", help="do not pin processes to CPUs")
    p.add_argument("--keep", action="store_true", help="keep each trial's recorded files")
    p.add_argument(
        "--profile",
        action="store_true",
        help="profile the recorder process (cProfile, to stderr); slows it, figures not comparable",
    )
    args = p.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    if args.ramp:
        sizes = Sizes(
            sizes.compare_seconds,
            tuple(int(x) for x in args.ramp.split(",")),
            sizes.ramp_seconds,
            sizes.segment_seconds,
        )
    if args.seconds:
        sizes = Sizes(args.seconds, sizes.ramp, args.seconds, sizes.segment_seconds)
    only = set((args.only or "compare,ramp").split(","))
    ncpu = len(os.sched_getaffinity(0))
    cpus: tuple[int | None, int | None] = (0, 1) if ncpu >= 2 and not args.no_pin else (None, None)
    t0 = time.monotonic()
    out: dict[str, Any] = {"sizes": sizes.__dict__, "cpus": ncpu}
    try:
        media = pre_encode()
        kbps = sum(len(v) for v in media[0]) * 8 * FPS / len(media[0]) / 1000
        say(f"sender media: VP8 {WIDTH}x{HEIGHT}@{FPS} ~{kbps:.0f} kbps + Opus, pre-encoded")
        say(HEADER)

        def run(mode: str, n: int, seconds: float) -> dict[str, Any]:
            return trial(mode, n, seconds, sizes, cpus, media, args.profile, args.keep)

        if "compare" in only:
            ours = run("ours", 1, sizes.compare_seconds)
            say(row(ours))
            stock = run("stock", 1, sizes.compare_seconds)
            say(row(stock))
            recv = run("recv", 1, sizes.compare_seconds)
            say(row(recv))
            ratio = stock["cpu_s_per_media_s"] / max(ours["cpu_s_per_media_s"], 1e-9)
            met = (
                ours["cpu_s_per_media_s"] <= TARGETS["ours_cpu_per_media_s_max"]
                and ratio >= TARGETS["ratio_min"]
            )
            out["compare"] = {
                "ours": ours,
                "stock": stock,
                "recv": recv,
                "ratio": round(ratio, 1),
                "target_met": met,
            }
        if "ramp" in only:
            ramp = []
            for n in sizes.ramp:
                r = run("ours", n, sizes.ramp_seconds)
                say(row(r))
                ramp.append(r)
            clean = [
                r["participants"]
                for r in ramp
                if r["lost"] == {"video": 0, "audio": 0} and r["undecodable"] == 0
            ]
            out["ramp"] = ramp
            out["max_participants_without_loss"] = max(clean, default=0)
        say("")
        if "compare" in out:
            c = out["compare"]
            say(
                f"cpu-s per media-s  ours {c['ours']['cpu_s_per_media_s']:.4f}  "
                f"stock {c['stock']['cpu_s_per_media_s']:.4f}  ratio {c['ratio']}x  "
                f"(ours <= {TARGETS['ours_cpu_per_media_s_max']}, >= {TARGETS['ratio_min']}x)  "
                f"{'MET' if c['target_met'] else 'NOT MET'}"
            )
            say(
                f"event loop lag max ms  ours {c['ours']['loop_lag_max_ms']}  "
                f"stock {c['stock']['loop_lag_max_ms']}"
            )
            say(
                f"of which aiortc's receive path (recv: passthrough, nothing written) "
                f"{c['recv']['cpu_s_per_media_s']:.4f} cpu-s per media-s"
            )
        if "ramp" in out:
            tried = ",".join(str(n) for n in sizes.ramp)
            say(
                f"participants recorded with no frame lost: "
                f"{out['max_participants_without_loss']} (tried {tried})"
            )
        out["elapsed_s"] = round(time.monotonic() - t0, 1)
        say(json.dumps(out))
        return 0
    except Exception:
        traceback.print_exc()
        say(json.dumps({"error": traceback.format_exc(limit=3)}))
        return 1


if __name__ == "__main__":
    sys.exit(main())
