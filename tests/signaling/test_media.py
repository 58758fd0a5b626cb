"""Real WebRTC: two aiortc peers (a point and a clerk) set up a call through the server."""

from __future__ import annotations

import asyncio
from typing import Any

from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack, MediaStreamTrack, VideoStreamTrack

from tests.signaling.helpers import Sock, gaoqiao_setup, new_resident, take_payload

FRAMES_WANTED = 10


async def _count_frames(track: MediaStreamTrack, wanted: int) -> int:
    got = 0
    while got < wanted:
        frame = await track.recv()
        assert frame.width > 0 and frame.height > 0
        got += 1
    return got


class Peer:
    """An aiortc peer whose SDP travels over the CloudWindow socket."""

    def __init__(self, sock: Sock, call_id: int) -> None:
        self.sock = sock
        self.call_id = call_id
        self.pc = RTCPeerConnection()
        self.pc.addTrack(VideoStreamTrack())
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

    async def frames(self) -> int:
        track = await asyncio.wait_for(self.video, 20)
        return await asyncio.wait_for(_count_frames(track, FRAMES_WANTED), 20)


async def test_video_flows_both_ways_through_a_cloud_window_call(sock: Any) -> None:
    worker = await sock("worker")
    clerk = await sock("clerk")
    setup = await gaoqiao_setup(worker.user)
    ticket = await worker.ok("ticket:take", take_payload(setup, await new_resident(worker.user)))
    called = await clerk.ok("queue:call_next")
    call = called["call"]
    answered = await worker.ok("ticket:answer", {"ticket_id": ticket["id"]})

    point = Peer(worker, call["call_id"])
    desk = Peer(clerk, call["call_id"])
    try:
        # The participant who joins last makes the offer (docs/protocol.md).
        await asyncio.gather(point.offer_to(call["participant_id"]), desk.answer_offer())
        await point.take_answer()
        point_frames, desk_frames = await asyncio.gather(point.frames(), desk.frames())
        assert point_frames == FRAMES_WANTED
        assert desk_frames == FRAMES_WANTED
        await worker.ok("call:state", {"call_id": call["call_id"], "state": "first_media"})
        assert answered["call"]["participant_id"] != call["participant_id"]
    finally:
        await point.pc.close()
        await desk.pc.close()
