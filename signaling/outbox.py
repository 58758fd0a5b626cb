"""The outbox of one signaling unit of work: its events, plus what the transport updates after."""

from __future__ import annotations

from dataclasses import dataclass, field

from core import events


@dataclass
class Outbox(events.Outbox):
    """Events to send after the commit, and the fast state to update with them."""

    lines: set[int] = field(default_factory=set)  # lines whose queue positions changed
    joined: list[tuple[int, int, int | None]] = field(default_factory=list)  # (call, pid, staff)
    left: list[tuple[int, int]] = field(default_factory=list)  # (call, pid)
    ended: list[int] = field(default_factory=list)  # calls
