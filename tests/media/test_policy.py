"""Recording policy: required by the item, or by the case's site or any site above it."""

from __future__ import annotations

from sqlalchemy import update
from sqlmodel import col, select

from core.access import site_ancestry
from core.db import Database
from core.models import Case, ServiceItem, Site
from media.events import RecordingState
from media.policy import recording_required


async def test_required_by_the_item_or_by_any_site_above_the_case(db_url: str) -> None:
    db = Database(db_url)
    try:
        async with db.session() as s:
            await s.exec(update(ServiceItem).values(recording_required=False))  # type: ignore[call-overload]
            await s.exec(update(Site).values(recording_required=False))  # type: ignore[call-overload]
            await s.commit()
            item = (await s.exec(select(ServiceItem).limit(1))).one()
            leaves = (await s.exec(select(Site).where(col(Site.parent_id).is_not(None)))).all()
            chains = [await site_ancestry(s, leaf.id or 0) for leaf in leaves]
            chain = max(chains, key=len)
            assert len(chain) >= 3, "a community under a town under a district"
            case = Case(item_id=item.id or 0, site_id=chain[0].id or 0)
            assert not await recording_required(s, case)

            item.recording_required = True
            s.add(item)
            await s.commit()
            assert await recording_required(s, case)
            item.recording_required = False
            s.add(item)

            top = chain[-1]
            top.recording_required = True
            s.add(top)
            await s.commit()
            assert await recording_required(s, case)
    finally:
        await db.dispose()


def test_recording_state_payloads_are_what_clients_read() -> None:
    on = RecordingState(call_id=7, participant_id=3, active=True)
    off = RecordingState(call_id=7, participant_id=3, active=False, reason="left")
    assert on.name == "recording:state"
    assert on.payload() == {"call_id": 7, "participant_id": 3, "active": True}
    assert off.payload() == {"call_id": 7, "participant_id": 3, "active": False, "reason": "left"}
