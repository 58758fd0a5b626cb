"""Server-to-client events of the tidal windows."""

from __future__ import annotations

from typing import ClassVar

from core.events import Event
from supervision.models import TidalMoveRead


class TidalChanged(Event):
    """A tidal move was applied, closed or ended: the clerk's lines changed (clerk, supervisors)."""

    name: ClassVar[str] = "tidal:changed"
    move: TidalMoveRead
