"""HTTP handlers of the catalog: departments, service items and bundles."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from pydantic import Field

from core import catalog, eligibility, residents
from core.access import require_resident
from core.db import utcnow
from core.inputs import Id
from core.models import BundleRead, DepartmentRead, EligibilityRead, ItemRead
from coreapi.shapes import V1, Query
from httpapi.api import Api, Ctx


class ItemQuery(Query):
    q: str = Field(default="", max_length=100)
    department: str | None = Field(default=None, max_length=32)
    remote: bool = False
    limit: int = Field(default=20, ge=1, le=100)


async def list_departments(ctx: Ctx) -> list[DepartmentRead]:
    return await catalog.list_departments(session=ctx.session)


async def search_items(ctx: Ctx) -> list[ItemRead]:
    q: ItemQuery = ctx.query
    return await catalog.search(
        session=ctx.session, query=q.q, department=q.department, remote_only=q.remote, limit=q.limit
    )


async def get_item(ctx: Ctx) -> ItemRead:
    item = await catalog.get_item(session=ctx.session, code=ctx.request.match_info["code"])
    return (await catalog.read_items(ctx.session, [item]))[0]


class EligibilityQuery(Query):
    resident_id: Id


async def item_eligibility(ctx: Ctx) -> EligibilityRead:
    """Whether the resident meets the item's rules, said before a number is taken."""
    item = await catalog.get_item(session=ctx.session, code=ctx.request.match_info["code"])
    resident = await residents.get(session=ctx.session, resident_id=ctx.query.resident_id)
    await require_resident(ctx.session, ctx.me, resident)
    today = utcnow().astimezone(ZoneInfo(ctx.settings.timezone)).date()
    return eligibility.check(item, resident, today)


async def list_bundles(ctx: Ctx) -> list[BundleRead]:
    return await catalog.list_bundles(session=ctx.session)


async def get_bundle(ctx: Ctx) -> BundleRead:
    bundle = await catalog.get_bundle(session=ctx.session, code=ctx.request.match_info["code"])
    return await catalog.read_bundle(session=ctx.session, bundle=bundle)


def register(api: Api) -> None:
    a = api.add
    a(
        "GET",
        f"{V1}/departments",
        list_departments,
        summary="Departments with item counts",
        action="catalog.read",
        response=list[DepartmentRead],
        tags=("catalog",),
    )
    a(
        "GET",
        f"{V1}/items",
        search_items,
        summary="Search or list service items",
        action="catalog.read",
        query=ItemQuery,
        response=list[ItemRead],
        tags=("catalog",),
    )
    a(
        "GET",
        f"{V1}/items/{{code}}",
        get_item,
        summary="One service item with its materials",
        action="catalog.read",
        response=ItemRead,
        tags=("catalog",),
    )
    a(
        "GET",
        f"{V1}/items/{{code}}/eligibility",
        item_eligibility,
        summary="Whether a resident meets the item's age, disability and residence rules",
        action="eligibility.check",
        query=EligibilityQuery,
        response=EligibilityRead,
        tags=("catalog",),
    )
    a(
        "GET",
        f"{V1}/bundles",
        list_bundles,
        summary="Item bundles (一事联办)",
        action="catalog.read",
        response=list[BundleRead],
        tags=("catalog",),
    )
    a(
        "GET",
        f"{V1}/bundles/{{code}}",
        get_bundle,
        summary="One bundle",
        action="catalog.read",
        response=BundleRead,
        tags=("catalog",),
    )
