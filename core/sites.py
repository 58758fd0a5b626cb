"""Sites (district > town > community), window lines, and the nearest hall to a point."""

from __future__ import annotations

import math

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.errors import NotFound
from core.models import (
    Department,
    LineRead,
    NearbySite,
    ServiceItem,
    Site,
    SiteKind,
    SiteRead,
    WindowLine,
)

EARTH_RADIUS_KM = 6371.0088
HALL_KINDS = (SiteKind.district, SiteKind.town)


def site_read(s: Site) -> SiteRead:
    assert s.id is not None
    return SiteRead(
        id=s.id,
        code=s.code,
        kind=SiteKind(s.kind),
        parent_id=s.parent_id,
        name=s.name,
        name_en=s.name_en,
        address=s.address,
        lat=s.lat,
        lng=s.lng,
        opening_hours=dict(s.opening_hours),
    )


def haversine_km(lat1: float, lng1: float, lat2: float, lng2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lng2 - lng1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(a))


async def get(*, session: AsyncSession, site_id: int) -> Site:
    site = await session.get(Site, site_id)
    if site is None:
        raise NotFound(f"站点 {site_id}", f"Site {site_id}")
    return site


async def list_sites(
    *,
    session: AsyncSession,
    kind: SiteKind | None = None,
    parent_id: int | None = None,
    limit: int = 500,
    offset: int = 0,
) -> list[Site]:
    q = select(Site).order_by(col(Site.code)).limit(limit).offset(offset)
    if kind is not None:
        q = q.where(Site.kind == kind)
    if parent_id is not None:
        q = q.where(Site.parent_id == parent_id)
    return list((await session.exec(q)).all())


async def nearest(
    *,
    session: AsyncSession,
    lat: float,
    lng: float,
    kinds: tuple[SiteKind, ...] = HALL_KINDS,
    limit: int = 5,
) -> list[NearbySite]:
    """Sites of the given kinds ranked by great-circle distance from (lat, lng)."""
    rows = (await session.exec(select(Site).where(col(Site.kind).in_(kinds)))).all()
    ranked = sorted((haversine_km(lat, lng, s.lat, s.lng), s) for s in rows)[:limit]
    return [NearbySite(site=site_read(s), distance_km=round(d, 2)) for d, s in ranked]


async def list_lines(
    *, session: AsyncSession, site_id: int | None = None, department: str | None = None
) -> list[LineRead]:
    q = (
        select(WindowLine, Site.name, Department.name)
        .join(Site, col(Site.id) == col(WindowLine.site_id))
        .join(Department, col(Department.code) == col(WindowLine.department))
        .order_by(col(WindowLine.code))
    )
    if site_id is not None:
        q = q.where(WindowLine.site_id == site_id)
    if department is not None:
        q = q.where(WindowLine.department == department)
    return [
        LineRead(
            id=ln.id or 0,
            code=ln.code,
            site_id=ln.site_id,
            site_name=site_name,
            department=ln.department,
            department_name=dept_name,
            name=ln.name,
            ticket_prefix=ln.ticket_prefix,
            active=ln.active,
        )
        for ln, site_name, dept_name in (await session.exec(q)).all()
    ]


async def hall_of(session: AsyncSession, site: Site, level: str) -> Site:
    """The hall that handles items of a level for a site: its town, or the district center."""
    chain = [site]
    while chain[-1].parent_id is not None and len(chain) < 8:
        chain.append(await get(session=session, site_id=chain[-1].parent_id))
    wanted = SiteKind.district if level == "district" else SiteKind.town
    for s in chain:
        if s.kind == wanted:
            return s
    return chain[-1]


async def route_line(*, session: AsyncSession, item: ServiceItem, site: Site) -> WindowLine | None:
    """The window line that serves an item for residents of a site (None: no such line)."""
    hall = await hall_of(session, site, item.level)
    q = select(WindowLine).where(
        WindowLine.site_id == hall.id, WindowLine.department == item.department
    )
    line = (await session.exec(q)).first()
    if line is None and hall.kind != SiteKind.district:
        district = await hall_of(session, site, "district")
        q = select(WindowLine).where(
            WindowLine.site_id == district.id, WindowLine.department == item.department
        )
        line = (await session.exec(q)).first()
    return line
