"""Server-to-client events of supervision, sent to the supervisors of the line's area (wait
alerts: its department heads)."""

from __future__ import annotations

from typing import ClassVar

from core.events import Event
from supervision.models import AlertRead, FollowupAlertRead, FollowupRead, LineAlertRead


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


class FollowupAlertRaised(Event):
    """A bad-rating follow-up passed its deadline still open (once per follow-up)."""

    name: ClassVar[str] = "followup_alert:raised"
    alert: FollowupAlertRead


class FollowupAlertChanged(Event):
    """An overdue follow-up's alert was acknowledged or resolved (by hand, or on closing)."""

    name: ClassVar[str] = "followup_alert:changed"
    alert: FollowupAlertRead


class FollowupOpened(Event):
    """A bad rating or a complaint opened a follow-up for the line's department heads."""

    name: ClassVar[str] = "followup:opened"
    followup: FollowupRead


class FollowupChanged(Event):
    """A follow-up's call-back or rectification was recorded, or it was closed."""

    name: ClassVar[str] = "followup:changed"
    followup: FollowupRead
