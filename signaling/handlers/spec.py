"""How a client event is declared: its payload, who may send it, what it answers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

if TYPE_CHECKING:
    from signaling.server import Conn, Signaling

Handler = Callable[["Signaling", str, "Conn", Any], Awaitable[Any]]

CALL_ERRORS = ("call.not_participant",)
TICKET_ERRORS = ("not_found", "ticket.state")
SERVE_ERRORS = ("not_found", "ticket.not_yours", "ticket.state")


@dataclass(frozen=True)
class EventSpec:
    name: str
    payload: type[BaseModel]
    action: str | None  # policy action; None = any logged-in staff
    summary: str
    handler: Handler
    ack: str = "null"
    errors: tuple[str, ...] = ()
