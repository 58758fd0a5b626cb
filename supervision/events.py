"""Server-to-client events of supervision, sent to the department heads of the line."""

from __future__ import annotations

from typing import ClassVar

from core.events import Event
from supervision.models import AlertRead, LineAlertRead


class AlertRaised(Event):
    """A resident has waited past the line's threshold (once per ticket)."""

    name: ClassVar[str] = "alert:raised"
    alert: AlertRead


class AlertChanged(Event):
    """An alert was acknowledged or resolved."""

    name: ClassVar[str] = "alert:changed"
    alert: AlertRead


class LineAlertRaised(Event):
    """A line reached yellow or red on people waiting or tickets taken (or went on to red)."""

    name: ClassVar[str] = "line_alert:raised"
    alert: LineAlertRead


class LineAlertChanged(Event):
    """A line alert was acknowledged, went back to yellow, or was resolved."""

    name: ClassVar[str] = "line_alert:changed"
    alert: LineAlertRead
