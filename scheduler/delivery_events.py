"""Server-to-client events of courier deliveries, sent to the supervisors of the delivery's
area (its issuing hall's or the resident's community's)."""

from __future__ import annotations

from typing import ClassVar

from core.events import Event
from scheduler.models import DeliveryRead


class DeliveryLocked(Event):
    """A delivery locked after too many wrong last-4 digits or codes at the door: a
    supervisor checks with the resident and releases it."""

    name: ClassVar[str] = "delivery:locked"
    delivery: DeliveryRead
