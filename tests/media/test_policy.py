"""Recording policy: required by the item, or by the case's site or any site above it."""

from __future__ import annotations

from typing import Any

from sqlalchemy import update
from sqlmodel import col, select

from core.access import site_ancestry
from core.db import Database, utcnow
from core.models import Call, Case, ServiceItem, Site
from core.settings import Settings
from media.events import RecordingState
from media.policy import Policy


async def test_required_by_the_item_or_by_any_site_above_the_case(
    db_url: str, settings: Settings
) -> None:
    db = Database(db_url)
    policy = Policy(settings)

    async def required(s: Any, call: Call) -> bool:
        return (await policy.for_call(s, call.id or 0)).required

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
            now = utcnow()
            case = Case(
                number="T-POLICY-1",
                item_id=item.id or 0,
                site_id=chain[0].id or 0,
                status="open",
                created_at=now,
                updated_at=now,
            )
            s.add(case)
            await s.flush()
            call = Call(case_id=case.id, status="ringing", created_at=now)
            s.add(call)
            await s.commit()
            assert not await required(s, call)

            item.recording_required = True
            s.add(item)
            await s.commit()
            assert await required(s, call)
            item.recording_required = False
            s.add(item)

            top = chain[-1]
            top.recording_required = True
            s.add(top)
            await s.commit()
            assert await required(s, call)
    finally:
        await db.dispose()


def test_recording_state_payloads_are_what_clients_read() -> None:
    on = RecordingState(call_id=7, participant_id=3, active=True)
    off = RecordingState(call_id=7, participant_id=3, active=False, reason="left")
    assert on.name == "recording:state"
    assert on.payload() == {"call_id": 7, "participant_id": 3, "active": True}
    assert off.payload() == {"call_id": 7, "participant_id": 3, "active": False, "reason": "left"}
