"""What a case's materials tell its live calls; queued on the outbox, sent after the commit."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from pydantic import Field
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.events import Audience, Event, Outbox
from core.models import Call, CallStatus
from uploads.models import MaterialRead


class MaterialUploaded(Event):
    """A document of the case arrived (upload, reuse or snapshot) and waits for the clerk."""

    name: ClassVar[str] = "material:uploaded"
    call_id: int
    case_id: int
    material: MaterialRead


class MaterialReviewed(Event):
    """The clerk accepted or rejected a document of the case."""

    name: ClassVar[str] = "material:reviewed"
    call_id: int
    case_id: int
    material: MaterialRead


class MaterialRequested(Event):
    """The clerk asked the service point for one material of the checklist."""

    name: ClassVar[str] = "material:requested"
    call_id: int
    case_id: int
    spec_id: int
    # Sent as "name": the class attribute `name` is the event's own name.
    spec_name: str = Field(serialization_alias="name")
    note: str

    def payload(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)


async def tell_calls(
    session: AsyncSession, outbox: Outbox, case_id: int, event: Callable[[int], Event]
) -> None:
    """Queue `event(call_id)` for each call of the case that has not ended."""
    rows = await session.exec(
        select(Call.id).where(Call.case_id == case_id, Call.status != CallStatus.ended)
    )
    for call_id in rows.all():
        if call_id is not None:
            outbox.emit(event(call_id), Audience.call(call_id))
