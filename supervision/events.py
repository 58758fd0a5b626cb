"""Server-to-client events of supervision, sent to the department heads of the line."""

from __future__ import annotations

from typing import ClassVar

from core.events import Event
from supervision.models import AlertRead


class AlertRaised(Event):
    """A resident has waited past the line's threshold (once per ticket)."""

    name: ClassVar[str] = "alert:raised"
    alert: AlertRead


class AlertChanged(Event):
    """An alert was acknowledged or resolved."""

    name: ClassVar[str] = "alert:changed"
    alert: AlertRead
