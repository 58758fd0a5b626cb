"""Which hall to send a resident to for an item: ranked by the trip there plus the live wait of
the line that serves the item at that hall (the queue is signaling's knowledge)."""

from __future__ import annotations

import math

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core import sites
from core.models import ItemLevel, ServiceItem, Site, SiteKind, WindowLine
from core.settings import Settings
from signaling import queue
from signaling.models import HallOption

# Door to door by bus or e-bike in a town, stops and walking included: about 20 km/h, so
# 3 minutes per kilometre of straight-line distance. Only the ranking uses it; the tablet
# shows the distance itself, not a promised travel time.
TRAVEL_MINUTES_PER_KM = 3.0
# Halls read for their live wait, nearest first. Each costs a few queries (line_snapshot), and
# a hall past the eighth nearest is far enough that its trip outweighs a shorter queue.
CANDIDATES = 8


def _new_ticket_wait(waiting: int, clerks_online: int, avg_seconds: int | None) -> int | None:
    """The wait of a number taken now: the same estimate line_snapshot gives the last in line,
    one place further back. Unknown (None) while no clerk of the line is online, or while the
    line has no handling time measured yet."""
    if clerks_online <= 0 or not avg_seconds:
        return None
    return math.ceil((waiting + 1) / clerks_online) * avg_seconds


async def rank(
    *,
    session: AsyncSession,
    settings: Settings,
    item: ServiceItem,
    lat: float,
    lng: float,
    limit: int = 5,
) -> list[HallOption]:
    """Halls with a line of the item's department, best first.

    The rule: minutes of travel (distance × TRAVEL_MINUTES_PER_KM) plus the expected wait of a
    number taken now. A hall whose wait is unknown (no clerk online, or no handling time
    measured yet) comes after every hall with a known wait; ties, and those halls among
    themselves, go by distance. District-level items are handled only at the district centre.
    """
    kinds = (SiteKind.district,) if item.level == ItemLevel.district else sites.HALL_KINDS
    rows = (
        await session.exec(
            select(WindowLine, Site)
            .join(Site, col(Site.id) == col(WindowLine.site_id))
            .where(
                WindowLine.department == item.department,
                col(WindowLine.active).is_(True),
                col(Site.kind).in_(kinds),
            )
            .order_by(col(WindowLine.id))
        )
    ).all()
    by_site: dict[int, tuple[WindowLine, Site]] = {}
    for line, site in rows:
        by_site.setdefault(site.id or 0, (line, site))  # one line per hall and department
    near = sorted(
        ((sites.haversine_km(lat, lng, s.lat, s.lng), ln, s) for ln, s in by_site.values()),
        key=lambda x: x[0],
    )[:CANDIDATES]
    scored: list[tuple[bool, float, float, HallOption]] = []
    for km, line, site in near:
        status, _ = await queue.line_snapshot(
            session=session, settings=settings, line_id=line.id or 0
        )
        serving = max(status.clerks_online, status.clerks_available)
        wait = _new_ticket_wait(status.waiting, serving, status.avg_handling_seconds)
        travel = km * TRAVEL_MINUTES_PER_KM
        total = travel + wait / 60 if wait is not None else None
        option = HallOption(
            site=sites.site_read(site),
            line_id=line.id or 0,
            line_name=line.name,
            distance_km=round(km, 2),
            travel_minutes=round(travel),
            waiting=status.waiting,
            clerks_online=status.clerks_online,
            wait_seconds=wait,
            total_minutes=round(total) if total is not None else None,
        )
        scored.append((total is None, total or 0.0, km, option))
    scored.sort(key=lambda x: x[:3])
    return [option for *_key, option in scored[:limit]]
