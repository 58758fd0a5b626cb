"""Every call is recorded by the node: participants send to its recorder peer over the socket.

Real aiortc senders join a real call (take a ticket, call next, answer), send their tracks to
the server's recorder with `recorder:offer`, and the test reads the stored segments back from
object storage with PyAV.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiortc import RTCSessionDescription
from sqlalchemy import text, update
from sqlmodel import select

from core.models import ServiceItem
from core.settings import Settings
from httpapi import keys
from media.models import RecordingSegment
from media.views import RECORDINGS
from tests.conftest import base_settings
from tests.media.peers import Participant, read_file, wait_for
from tests.signaling.helpers import gaoqiao_setup, new_resident, take_payload
from tests.uploads.helpers import call_for_case
from uploads.views import MATERIALS

FRAMES = 45  # 3 s at 15 fps


@pytest.fixture
def settings(db_url: str, tmp_path: Path, storage_settings: dict[str, Any]) -> Settings:
    """2 s segments; segments go to the local store and to SeaweedFS S3 alike."""
    return base_settings(
        db_url, tmp_path / "data", recording_segment_seconds=2.0, **storage_settings
    )


async def send_to_recorder(sock: Any, call_id: int, sender: Participant) -> None:
    """What a client does on joining: a send-only offer to the node's recorder."""
    await sender.pc.setLocalDescription(await sender.pc.createOffer())
    ack = await sock.ok(
        "recorder:offer", {"call_id": call_id, "sdp": sender.pc.localDescription.sdp}
    )
    await sender.pc.setRemoteDescription(RTCSessionDescription(sdp=ack["sdp"], type="answer"))


async def _download(user: Any, segment_id: int, into: Path) -> Path:
    r = await user.get(f"/api/v1/recordings/segments/{segment_id}/link")
    assert r.status == 200, await r.text()
    url = (await r.json())["url"]
    url = url if url.startswith("http") else f"{user.base}{url}"
    async with aiohttp.ClientSession() as http, http.get(url) as g:
        assert g.status == 200
        path = into / f"{segment_id}.{url.split('.')[-1].split('&')[0][:4]}"
        path.write_bytes(await g.read())
    return path


async def test_both_participants_are_recorded_and_can_be_played_back(
    sock: Any, as_user: Any, client: Any, tmp_path: Path
) -> None:
    worker, clerk = await sock("worker"), await sock("clerk")
    env = await call_for_case(worker, clerk)
    call_id = env["call_id"]

    senders = {
        "point": Participant(video_frames=FRAMES, audio_frames=150, width=320, height=240),
        "clerk": Participant(
            codec="H264", video_frames=FRAMES, audio_frames=150, width=320, height=240
        ),
    }
    await send_to_recorder(worker, call_id, senders["point"])
    await send_to_recorder(clerk, call_id, senders["clerk"])
    states = await worker.wait("recording:state", lambda d: d["active"])
    assert states["call_id"] == call_id
    await wait_for(lambda: all(s.video.sent >= FRAMES for s in senders.values()), within=30)
    await asyncio.sleep(0.5)  # the last packets cross the loopback

    await clerk.ok(
        "ticket:finish", {"ticket_id": env["ticket"]["id"], "outcome": "returned", "reason": "测试"}
    )
    await worker.ok("call:leave", {"call_id": call_id})
    await clerk.ok("call:leave", {"call_id": call_id})
    await clerk.wait("call:ended", within=10)
    for s in senders.values():
        await s.pc.close()
    live = client.app[RECORDINGS].live
    await wait_for(lambda: not live.peers, within=20)

    r = await clerk.user.get(f"/api/v1/cases/{env['case_id']}/recordings")
    assert r.status == 200, await r.text()
    recs = {rec["role"]: rec for rec in await r.json()}
    assert set(recs) == {"point", "clerk"}
    for role, rec in recs.items():
        assert rec["status"] == "finished", rec
        assert rec["segments"], rec
        assert rec["duration"] >= 2.5
        video = audio = 0
        for seg in rec["segments"]:
            path = await _download(clerk.user, seg["id"], tmp_path)
            streams = read_file(path)
            assert seg["content_type"] == ("video/mp2t" if role == "clerk" else "video/webm")
            assert streams["video"].keyframe_first
            assert streams["video"].decoded == streams["video"].packets  # every frame decodes
            assert streams["video"].pts == sorted(streams["video"].pts)  # monotonic
            video += streams["video"].decoded
            audio += streams["audio"].decoded
            assert (streams["video"].width, streams["video"].height) == (320, 240)
        sent = senders[role].video.sent
        # aiortc's jitter buffer keeps the last frame of a stream; within 2% otherwise.
        assert abs(video - (sent - 1)) <= max(1, round(0.02 * sent)), (role, video, sent)
        assert audio > 100, (role, audio)

    case = await (await clerk.user.get(f"/api/v1/cases/{env['case_id']}")).json()
    kinds = [e["kind"] for e in case["timeline"]]
    assert kinds.count("recording.started") == 2 and kinds.count("recording.finished") == 2
    admin = await as_user("admin")
    views = await (await admin.get("/api/v1/audit", params={"action": "recording.view"})).json()
    assert len(views) == sum(len(rec["segments"]) for rec in recs.values())
    # The community worker cannot play recordings; the town's supervisor can; others not.
    assert (await worker.user.get(f"/api/v1/cases/{env['case_id']}/recordings")).status == 403
    sup = await as_user("supervisor.t07")
    assert (await sup.get(f"/api/v1/cases/{env['case_id']}/recordings")).status == 200
    other = await as_user("supervisor.t01")
    assert (await other.get(f"/api/v1/cases/{env['case_id']}/recordings")).status == 404
    # The materials sweep knows recording segments: they are not orphans, even much later.
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=2)
    report = await client.app[MATERIALS].sweep(later)
    assert report.orphans == 0
    async with client.app[keys.DB].session() as s:
        keys_kept = set((await s.exec(select(RecordingSegment.key))).all())
    stored = {o.key for o in await client.app[MATERIALS].store.list_objects()}
    assert keys_kept and keys_kept <= stored


async def test_killing_the_recorder_keeps_finished_segments_and_notes_the_gap(
    sock: Any, client: Any, tmp_path: Path
) -> None:
    worker, clerk = await sock("worker"), await sock("clerk")
    env = await call_for_case(worker, clerk)
    call_id = env["call_id"]
    sender = Participant(video_frames=10**6, audio_frames=10**6, width=320, height=240)
    await send_to_recorder(worker, call_id, sender)
    db = client.app[keys.DB]

    async def segments() -> int:
        async with db.session() as s:
            return (await s.exec(text("SELECT count(*) FROM recording_segment"))).one()[0]  # type: ignore[call-overload]

    for _ in range(200):  # until the first 2 s segment is stored
        if await segments() >= 1:
            break
        await asyncio.sleep(0.1)
    assert await segments() >= 1
    live = client.app[RECORDINGS].live
    (peer,) = list(live.peers.values())
    assert peer.recorder is not None and peer.recorder.task is not None
    peer.recorder.task.cancel()  # the recorder dies mid-call

    gone = await worker.wait("recording:state", lambda d: not d["active"], within=15)
    assert gone["reason"] == "error"
    await wait_for(lambda: not live.peers, within=15)
    # The call goes on: signaling still works and the call is still active.
    assert (await worker.ok("state:sync"))["calls"][0]["call_id"] == call_id
    await sender.pc.close()

    case = await (await clerk.user.get(f"/api/v1/cases/{env['case_id']}")).json()
    gap = [e for e in case["timeline"] if e["kind"] == "recording.gap"]
    assert gap and "cancelled" in gap[0]["data"]["error"]
    recs = await (await clerk.user.get(f"/api/v1/cases/{env['case_id']}/recordings")).json()
    assert recs[0]["status"] == "failed"
    assert recs[0]["segments"]
    for seg in recs[0]["segments"]:
        streams = read_file(await _download(clerk.user, seg["id"], tmp_path))
        assert streams["video"].decoded == streams["video"].packets > 0


async def test_snapshot_of_the_point_becomes_a_material(sock: Any, client: Any) -> None:
    worker, clerk = await sock("worker"), await sock("clerk")
    env = await call_for_case(worker, clerk)
    call_id = env["call_id"]
    sender = Participant(video_frames=10**6, audio=False, width=320, height=240)
    await send_to_recorder(worker, call_id, sender)
    joined = (await worker.ok("state:sync"))["calls"][0]
    point_pid = joined["participant_id"]
    await wait_for(lambda: sender.video.sent >= 10)

    m = await clerk.ok("recorder:snapshot", {"call_id": call_id, "participant_id": point_pid})
    assert (m["width"], m["height"]) == (320, 240)
    assert m["source"] == "snapshot" and m["content_type"] == "image/jpeg" and m["has_thumbnail"]
    seen = await clerk.wait("material:uploaded", lambda d: d["material"]["id"] == m["id"])
    assert seen["call_id"] == call_id
    checklist = await (await clerk.user.get(f"/api/v1/cases/{env['case_id']}/checklist")).json()
    assert [x["id"] for x in checklist["extras"]] == [m["id"]]
    # Only a clerk captures; the point cannot.
    err = await worker.err("recorder:snapshot", {"call_id": call_id, "participant_id": point_pid})
    assert err["code"] == "forbidden_role"
    await sender.pc.close()


async def test_recording_policy_a_clerk_cannot_silently_stop_it(sock: Any, client: Any) -> None:
    worker, clerk = await sock("worker"), await sock("clerk")
    env = await call_for_case(worker, clerk)
    call_id = env["call_id"]
    answered = await worker.ok("state:sync")
    assert answered["calls"]
    sender = Participant(video_frames=10**6, audio=False, width=160, height=120)
    await send_to_recorder(worker, call_id, sender)

    err = await clerk.err("recording:stop", {"call_id": call_id})
    assert err["code"] == "recording.required"
    assert client.app[RECORDINGS].live.peers  # still recording

    async with client.app[keys.DB].session() as s:  # an item that does not require it
        await s.exec(update(ServiceItem).values(recording_required=False))  # type: ignore[call-overload]
        await s.commit()
    await clerk.ok("recording:stop", {"call_id": call_id})
    told = await worker.wait("recording:state", lambda d: not d["active"])
    assert told["reason"] == "stopped_by_clerk"
    case = await (await clerk.user.get(f"/api/v1/cases/{env['case_id']}")).json()
    stopped = [e for e in case["timeline"] if e["kind"] == "recording.finished"]
    assert stopped[0]["data"]["reason"] == "stopped_by_clerk"
    assert stopped[0]["actor_id"] == clerk.user.me["id"]
    await sender.pc.close()
    # It stays stopped: a new offer (a rejoin, a late joiner) is refused and joins say so.
    again = Participant(video_frames=10**6, audio=False, width=160, height=120)
    await again.pc.setLocalDescription(await again.pc.createOffer())
    err = await worker.err(
        "recorder:offer", {"call_id": call_id, "sdp": again.pc.localDescription.sdp}
    )
    assert err["code"] == "recording.stopped"
    await again.pc.close()
    async with client.app[keys.DB].session() as s:
        policy = await client.app[RECORDINGS].policy(s, call_id)
    assert (policy.enabled, policy.stopped) == (False, True)


async def test_join_tells_every_participant_the_call_is_recorded(sock: Any) -> None:
    worker, clerk = await sock("worker"), await sock("clerk")
    setup = await gaoqiao_setup(worker.user)
    ticket = await worker.ok("ticket:take", take_payload(setup, await new_resident(worker.user)))
    called = await clerk.ok("queue:call_next")
    answered = await worker.ok("ticket:answer", {"ticket_id": ticket["id"]})
    # Both join acks carry the notice the UI shows: recorded, and the clerk cannot stop it.
    assert called["call"]["recording"] == {"enabled": True, "required": True, "stopped": False}
    assert answered["call"]["recording"] == {"enabled": True, "required": True, "stopped": False}


async def test_no_free_recording_slot_is_a_noted_gap_not_a_failed_call(
    sock: Any, client: Any
) -> None:
    client.app[RECORDINGS].live.slots.limit = 0
    worker, clerk = await sock("worker"), await sock("clerk")
    env = await call_for_case(worker, clerk)
    sender = Participant(video_frames=10**6, audio=False, width=160, height=120)
    await sender.pc.setLocalDescription(await sender.pc.createOffer())
    err = await worker.err(
        "recorder:offer", {"call_id": env["call_id"], "sdp": sender.pc.localDescription.sdp}
    )
    assert err["code"] == "recording.busy"
    await sender.pc.close()
    case = await (await clerk.user.get(f"/api/v1/cases/{env['case_id']}")).json()
    assert any(
        e["kind"] == "recording.gap" and e["data"]["reason"] == "busy" for e in case["timeline"]
    )
    assert (await worker.ok("state:sync"))["calls"]
