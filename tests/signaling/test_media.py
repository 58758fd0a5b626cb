"""Real WebRTC: two aiortc peers (a point and a clerk) set up a call through the server."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack, MediaStreamTrack, VideoStreamTrack
from av import VideoFrame

from tests.signaling.helpers import Sock, gaoqiao_setup, new_resident, take_payload

FRAMES_WANTED = 10
WIDTH, HEIGHT = 320, 240
# Each side films a flat colour of its own (Y, U, V), so a receiver can tell whose picture it
# decodes: the other side's, not its own echoed back, and not a blank or green default frame.
POINT_COLOUR = (81, 90, 240)  # red
DESK_COLOUR = (41, 240, 110)  # blue
# VP8 keeps a flat colour within a few levels; the two colours differ by 40 or more per plane.
COLOUR_TOLERANCE = 12


class ColourTrack(VideoStreamTrack):
    """A camera filming one flat colour, at the stock track's 30 fps."""

    def __init__(self, colour: tuple[int, int, int]) -> None:
        super().__init__()
        self.colour = colour

    async def recv(self) -> VideoFrame:
        pts, time_base = await self.next_timestamp()
        frame = VideoFrame(width=WIDTH, height=HEIGHT, format="yuv420p")
        for plane, value in zip(frame.planes, self.colour, strict=True):
            plane.update(bytes([value]) * plane.buffer_size)
        frame.pts = pts
        frame.time_base = time_base
        return frame


@dataclass
class Seen:
    """What a receiver decoded: the picture's size, its mean colour, its timestamp."""

    width: int
    height: int
    colour: tuple[int, int, int]
    pts: int


def _mean_colour(frame: VideoFrame) -> tuple[int, int, int]:
    """The mean (Y, U, V) of each plane's middle row (row padding left out)."""
    out = []
    for plane in frame.planes:
        data = bytes(plane)
        rows = len(data) // plane.line_size
        start = (rows // 2) * plane.line_size
        row = data[start : start + plane.width]
        out.append(round(sum(row) / len(row)))
    return out[0], out[1], out[2]


async def _watch(track: MediaStreamTrack, wanted: int) -> list[Seen]:
    seen = []
    while len(seen) < wanted:
        frame = await track.recv()
        assert isinstance(frame, VideoFrame)
        seen.append(Seen(frame.width, frame.height, _mean_colour(frame), frame.pts or 0))
    return seen


def assert_sees(seen: list[Seen], colour: tuple[int, int, int], who: str) -> None:
    """Every frame is the other side's live picture: its size, its colour, moving on in time."""
    assert len(seen) == FRAMES_WANTED
    assert {(f.width, f.height) for f in seen} == {(WIDTH, HEIGHT)}, f"{who}: wrong picture size"
    for f in seen:
        off = [abs(a - b) for a, b in zip(f.colour, colour, strict=True)]
        assert max(off) <= COLOUR_TOLERANCE, f"{who} saw {f.colour}, the other side films {colour}"
    pts = [f.pts for f in seen]
    assert pts == sorted(set(pts)), f"{who}: the picture did not move on (timestamps {pts})"


class Peer:
    """An aiortc peer whose SDP travels over the CloudWindow socket."""

    def __init__(self, sock: Sock, call_id: int, colour: tuple[int, int, int]) -> None:
        self.sock = sock
        self.call_id = call_id
        self.pc = RTCPeerConnection()
        self.pc.addTrack(ColourTrack(colour))
        self.pc.addTrack(AudioStreamTrack())
        self.video: asyncio.Future[MediaStreamTrack] = asyncio.get_running_loop().create_future()

        @self.pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            if track.kind == "video" and not self.video.done():
                self.video.set_result(track)

    async def offer_to(self, pid: int) -> None:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        await self.sock.ok(
            "call:signal",
            {
                "call_id": self.call_id,
                "to": pid,
                "kind": "offer",
                "sdp": self.pc.localDescription.sdp,
            },
        )

    async def answer_offer(self) -> None:
        msg = await self.sock.wait("call:signal", lambda d: d["kind"] == "offer")
        await self.pc.setRemoteDescription(RTCSessionDescription(msg["sdp"], "offer"))
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        await self.sock.ok(
            "call:signal",
            {
                "call_id": self.call_id,
                "to": msg["from"],
                "kind": "answer",
                "sdp": self.pc.localDescription.sdp,
            },
        )

    async def take_answer(self) -> None:
        msg = await self.sock.wait("call:signal", lambda d: d["kind"] == "answer")
        await self.pc.setRemoteDescription(RTCSessionDescription(msg["sdp"], "answer"))

    async def frames(self) -> list[Seen]:
        """The next FRAMES_WANTED frames of the other side's video."""
        track = await asyncio.wait_for(self.video, 20)
        return await asyncio.wait_for(_watch(track, FRAMES_WANTED), 20)


async def test_video_flows_both_ways_through_a_cloud_window_call(sock: Any) -> None:
    worker = await sock("worker")
    clerk = await sock("clerk")
    setup = await gaoqiao_setup(worker.user)
    ticket = await worker.ok("ticket:take", take_payload(setup, await new_resident(worker.user)))
    called = await clerk.ok("queue:call_next")
    call = called["call"]
    answered = (await worker.ok("ticket:answer", {"ticket_id": ticket["id"]}))["call"]
    # The point learns from its own join whom to call: the clerk who called its number.
    others = [p for p in answered["participants"] if p["id"] != answered["participant_id"]]
    assert [(p["id"], p["role"]) for p in others] == [(call["participant_id"], "clerk")]

    point = Peer(worker, call["call_id"], POINT_COLOUR)
    desk = Peer(clerk, call["call_id"], DESK_COLOUR)
    try:
        # The participant who joins last makes the offer (docs/protocol.md).
        await asyncio.gather(point.offer_to(others[0]["id"]), desk.answer_offer())
        await point.take_answer()
        point_sees, desk_sees = await asyncio.gather(point.frames(), desk.frames())
        assert_sees(point_sees, DESK_COLOUR, "the point")
        assert_sees(desk_sees, POINT_COLOUR, "the clerk")
        await worker.ok("call:state", {"call_id": call["call_id"], "state": "first_media"})
    finally:
        await point.pc.close()
        await desk.pc.close()
    # Both hang up: the call log on the case's timeline says when the picture first came.
    await worker.ok("call:leave", {"call_id": call["call_id"]})
    await clerk.ok("call:leave", {"call_id": call["call_id"]})
    case = await (await clerk.user.get(f"/api/v1/cases/{ticket['case_id']}")).json()
    ended = [e["data"] for e in case["timeline"] if e["kind"] == "call.ended"]
    assert len(ended) == 1, case["timeline"]
    assert ended[0]["call"] == call["call_id"]
    assert ended[0]["first_media_after_s"] is not None and ended[0]["first_media_after_s"] >= 0
