"""The client events, by area; the server registers every one from this table."""

from __future__ import annotations

from signaling.handlers import calls, experts, queue, recorder, session
from signaling.handlers.spec import EventSpec

EVENTS: dict[str, EventSpec] = {
    s.name: s for area in (session, queue, calls, recorder, experts) for s in area.EVENTS
}
