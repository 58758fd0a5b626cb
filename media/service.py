"""Recording every call: the parts of one node's recording, put together once per app.

When a participant joins a call, its client also opens a send-only RTCPeerConnection to this
node's recorder (`recorder:offer` over the same socket). The parts:
- media/policy.py: whether a call is recorded, and who may stop it;
- media/live.py: the recorder peers, one per participant, bounded by the node's slots;
- media/segments.py: the recording rows, each segment uploaded as it finishes, the gaps;
- media/snapshot.py: a JPEG of a participant's video;
- media/playback.py: a case's recordings and audited links to play them.
"""

from __future__ import annotations

from sqlmodel.ext.asyncio.session import AsyncSession

from core.access import Principal
from core.db import Database
from core.events import Deliver, deliver_nowhere
from core.settings import Settings
from media import snapshot
from media.live import LivePeers
from media.models import RecordingPolicy
from media.playback import Playback
from media.policy import Policy
from media.segments import Segments
from media.units import Work
from uploads.storage import ObjectStore


class Recordings:
    """One per app: the recording parts of this node, and what the socket handlers call."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        store: ObjectStore,
        node_id: str,
        deliver: Deliver = deliver_nowhere,
    ) -> None:
        work = Work(db, deliver)
        self.rules = Policy(settings)
        self.live = LivePeers(settings, self.rules, Segments(work, store, node_id), work)
        self.playback = Playback(settings, store)

    async def policy(self, session: AsyncSession, call_id: int) -> RecordingPolicy:
        return await self.rules.for_call(session, call_id)

    async def offer(self, principal: Principal, call_id: int, pid: int, sdp: str) -> str:
        return await self.live.offer(principal, call_id, pid, sdp)

    async def stop(
        self, call_id: int, pid: int | None = None, *, reason: str, actor: Principal | None = None
    ) -> None:
        await self.live.stop(call_id, pid, reason=reason, actor=actor)

    async def stop_by_clerk(self, principal: Principal, call_id: int) -> None:
        await self.live.stop_by_clerk(principal, call_id)

    async def snapshot(self, call_id: int, participant_id: int) -> tuple[bytes, int, int]:
        return await snapshot.capture(self.live.video(call_id, participant_id))

    async def close(self) -> None:
        await self.live.close()
