"""HTTP handlers of sites and window lines."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from core import sites
from core.access import may_see_line
from core.inputs import MAX_ID
from core.models import LineRead, NearbySite, SiteKind, SiteRead, WindowLine
from coreapi.shapes import MAX_OFFSET, V1, Query
from httpapi.api import Api, Ctx


class SiteQuery(Query):
    kind: SiteKind | None = None
    parent_id: int | None = Field(default=None, ge=1, le=MAX_ID)
    limit: int = Field(default=500, ge=1, le=1000)
    offset: int = Field(default=0, ge=0, le=MAX_OFFSET)


class NearestQuery(Query):
    lat: float = Field(ge=-90, le=90)
    lng: float = Field(ge=-180, le=180)
    kind: Literal["hall", "community"] = "hall"
    limit: int = Field(default=5, ge=1, le=50)


class LineQuery(Query):
    site_id: int | None = Field(default=None, ge=1, le=MAX_ID)
    department: str | None = Field(default=None, max_length=32)
    # Only the lines of my area (a supervisor's board); without it, the public list.
    mine: bool = False


async def list_sites(ctx: Ctx) -> list[SiteRead]:
    q: SiteQuery = ctx.query
    rows = await sites.list_sites(
        session=ctx.session, kind=q.kind, parent_id=q.parent_id, limit=q.limit, offset=q.offset
    )
    return [sites.site_read(s) for s in rows]


async def nearest_sites(ctx: Ctx) -> list[NearbySite]:
    q: NearestQuery = ctx.query
    kinds = sites.HALL_KINDS if q.kind == "hall" else (SiteKind.community,)
    return await sites.nearest(
        session=ctx.session, lat=q.lat, lng=q.lng, kinds=kinds, limit=q.limit
    )


async def get_site(ctx: Ctx) -> SiteRead:
    return sites.site_read(await sites.get(session=ctx.session, site_id=ctx.path_int("site_id")))


async def list_lines(ctx: Ctx) -> list[LineRead]:
    q: LineQuery = ctx.query
    rows = await sites.list_lines(session=ctx.session, site_id=q.site_id, department=q.department)
    if not q.mine:
        return rows
    out = []
    for row in rows:
        line = await ctx.session.get(WindowLine, row.id)
        if line is not None and await may_see_line(ctx.session, ctx.me, line):
            out.append(row)
    return out


def register(api: Api) -> None:
    a = api.add
    id_ = r"{%s:[0-9]+}"
    a(
        "GET",
        f"{V1}/sites",
        list_sites,
        summary="List sites",
        action="sites.read",
        query=SiteQuery,
        response=list[SiteRead],
        tags=("sites",),
    )
    a(
        "GET",
        f"{V1}/sites/nearest",
        nearest_sites,
        summary="Nearest halls to a coordinate",
        action="sites.read",
        query=NearestQuery,
        response=list[NearbySite],
        tags=("sites",),
    )
    a(
        "GET",
        f"{V1}/sites/{id_ % 'site_id'}",
        get_site,
        summary="One site",
        action="sites.read",
        response=SiteRead,
        tags=("sites",),
    )
    a(
        "GET",
        f"{V1}/lines",
        list_lines,
        summary="Window lines",
        action="sites.read",
        query=LineQuery,
        response=list[LineRead],
        tags=("sites",),
    )
