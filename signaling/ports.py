"""What the call handlers need of the recorder and of the materials store, as interfaces.

The composition root plugs in media's recorder peers and uploads' materials; signaling does
not import the media layer above it.
"""

from __future__ import annotations

from typing import Any, Protocol

from sqlmodel.ext.asyncio.session import AsyncSession

from core.access import Principal


class RecordingPolicyView(Protocol):
    """Whether a call is recorded, as every participant is told on joining."""

    required: bool

    def model_dump(self) -> dict[str, Any]: ...


class RecorderPort(Protocol):
    """This node's recorder peers."""

    async def offer(self, principal: Principal, call_id: int, pid: int, sdp: str, /) -> str: ...

    async def stop(
        self,
        call_id: int,
        pid: int | None = None,
        /,
        *,
        reason: str,
        actor: Principal | None = None,
    ) -> None: ...

    async def policy(self, session: AsyncSession, call_id: int, /) -> RecordingPolicyView: ...

    async def snapshot(self, call_id: int, pid: int, /) -> tuple[bytes, int, int]: ...

    async def stop_by_clerk(self, principal: Principal, call_id: int, /) -> None: ...


class Material(Protocol):
    def model_dump(self, *, mode: str = ...) -> dict[str, Any]: ...


class SnapshotSink(Protocol):
    """Keeps a still from a call as a material of the case."""

    async def add_snapshot(
        self, me: Principal, case_id: int, jpeg: bytes, /, *, subject: str
    ) -> Material: ...
