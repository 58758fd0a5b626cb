"""The demo district: shaped like the real one, deterministic, and seeded only once."""

from __future__ import annotations

from collections import Counter
from typing import Any

from sqlalchemy import func
from sqlmodel import select

from core.db import Database
from core.models import STAFF_ROLES, Bundle, ServiceItem, Site, Staff, WindowLine
from core.settings import Settings
from core.sites import haversine_km
from core.staff import Passwords
from web.demo import seed

TOWN_DEPARTMENTS = {"civil_affairs", "human_resources", "medical_insurance", "household", "market"}


async def test_demo_district_has_the_real_shape(settings: Settings) -> None:
    db = Database(settings.effective_database_url)
    try:
        async with db.session() as s:
            sites = list((await s.exec(select(Site))).all())
            lines = list((await s.exec(select(WindowLine))).all())
            items = (await s.exec(select(func.count()).select_from(ServiceItem))).one()
            bundles = (await s.exec(select(func.count()).select_from(Bundle))).one()
            roles = set((await s.exec(select(Staff.role))).all())
    finally:
        await db.dispose()
    kinds = Counter(x.kind for x in sites)
    assert kinds == {"district": 1, "town": 17, "community": 288}
    towns = [x for x in sites if x.kind == "town"]
    for town in towns:
        assert {ln.department for ln in lines if ln.site_id == town.id} >= TOWN_DEPARTMENTS
    assert items >= 60
    assert bundles >= 2
    assert roles == {r.value for r in STAFF_ROLES}
    # About 60 km across: the farthest two points are 40-80 km apart, all within one district.
    widest = max(haversine_km(a.lat, a.lng, b.lat, b.lng) for a in sites for b in sites)
    assert 40 <= widest <= 80
    by_id = {x.id: x for x in sites}
    for point in (x for x in sites if x.kind == "community"):
        parent = by_id[point.parent_id]
        assert parent.kind == "town"
        assert (
            haversine_km(point.lat, point.lng, parent.lat, parent.lng)
            <= seed.COMMUNITY_SPREAD_KM + 0.01
        )
    # Points are spread around their town, not stacked on one spot (the nearest-hall search
    # and visit routing need distinct places).
    points = [(x.lat, x.lng) for x in sites if x.kind == "community"]
    assert len(set(points)) == len(points)
    # ... and spread over the town's area, not all next to its hall.
    for town in towns:
        spread = max(
            haversine_km(x.lat, x.lng, town.lat, town.lng) for x in sites if x.parent_id == town.id
        )
        assert spread >= seed.COMMUNITY_SPREAD_KM / 2, (town.name, spread)


async def test_seeding_twice_changes_nothing(settings: Settings) -> None:
    db = Database(settings.effective_database_url)
    try:
        summary = await seed.seed_demo(db, Passwords(settings), "x" * 12, progress=False)
        assert summary.created is False
        async with db.session() as s:
            assert (await s.exec(select(func.count()).select_from(Site))).one() == 306
    finally:
        await db.dispose()


def test_community_coordinates_are_deterministic() -> None:
    town = {"code": "T07", "lat": 29.9, "lng": 121.3}
    assert seed.community_coords(town, 3) == seed.community_coords(town, 3)
    assert seed.community_coords(town, 3) != seed.community_coords(town, 4)


async def test_every_demo_login_works(as_user: Any) -> None:
    for login in seed.demo_logins():
        user = await as_user(login.username)
        assert user.me["role"] == login.role.value


async def test_the_demo_starts_with_a_queue_and_one_live_wait_alert(settings: Settings) -> None:
    """`cloudwindow demo` puts four residents in 高桥镇·民政's queue; the one waiting longest
    is past the 15-minute threshold, so the alert sweep raises exactly one alert; a second start
    the same day adds nobody."""
    from core.db import utcnow
    from core.events import Outbox
    from outreach.sms import RecordingSmsGateway
    from signaling.models import Ticket, TicketStatus
    from supervision import alerts
    from web.demo.live import seed_live_queue

    db = Database(settings.effective_database_url)
    try:
        assert await seed_live_queue(db, settings) == 4
        assert await seed_live_queue(db, settings) == 0
        now = utcnow()
        async with db.session() as s:
            waiting = list(
                (
                    await s.exec(
                        select(Ticket)
                        .where(Ticket.status == TicketStatus.waiting)
                        .order_by(Ticket.waiting_since)
                    )
                ).all()
            )
            waited = [(now - t.waiting_since).total_seconds() / 60 for t in waiting]
            report = await alerts.raise_due(
                session=s,
                settings=settings,
                sms=RecordingSmsGateway(),
                outbox=Outbox(),
                now=now,
                node_id="test",
            )
            await s.commit()
    finally:
        await db.dispose()
    assert [t.line_name for t in waiting] == ["高桥镇·民政"] * 4
    assert [round(m) for m in waited] == [18, 9, 4, 1]
    assert {t.priority_reason for t in waiting} == {"age80"}  # all over 80: served first
    assert len(report.raised) == 1
