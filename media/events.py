"""Server-to-client events of recording; each goes to the call once its change is committed."""

from __future__ import annotations

from typing import Any, ClassVar

from core.events import Event


class RecordingState(Event):
    """A participant's recording started or ended: show or hide the recording indicator."""

    name: ClassVar[str] = "recording:state"
    call_id: int
    participant_id: int
    active: bool
    reason: str | None = None  # why it ended; absent while it runs

    def payload(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)
