"""HTTP routes of the statistics: figures and charts of the caller's area, the filters' choices,
and the figures as CSV or XLSX."""

from __future__ import annotations

import asyncio
from urllib.parse import quote

from aiohttp import web

from core import audit
from httpapi.api import Api, Ctx, request_lang
from supervision import stats, stats_export
from supervision.stats_models import ExportFormat, ExportQuery, StatsOptions, StatsQuery, StatsRead

V1 = "/api/v1"


async def get_statistics(ctx: Ctx) -> StatsRead:
    return await stats.statistics(
        session=ctx.session, settings=ctx.settings, principal=ctx.me, q=ctx.query
    )


async def get_options(ctx: Ctx) -> StatsOptions:
    return await stats.options(session=ctx.session, settings=ctx.settings, principal=ctx.me)


async def export_statistics(ctx: Ctx) -> web.Response:
    q: ExportQuery = ctx.query
    figures = await stats.statistics(
        session=ctx.session,
        settings=ctx.settings,
        principal=ctx.me,
        q=StatsQuery.model_validate(q.model_dump(exclude={"format"})),
    )
    lang = request_lang(ctx.request)
    if q.format == ExportFormat.xlsx:
        body = await asyncio.to_thread(stats_export.to_xlsx, figures, lang)
        content_type = stats_export.XLSX_TYPE
    else:
        body = await asyncio.to_thread(stats_export.to_csv, figures, lang)
        content_type = stats_export.CSV_TYPE
    name = stats_export.filename(figures, str(q.format))
    audit.record(
        ctx.session,
        **ctx.audit_kw(),
        action="stats.export",
        target_type="statistics",
        target_id=name,
        detail=q.model_dump(mode="json", exclude_none=True),
    )
    return web.Response(
        body=body,
        headers={
            "Content-Type": content_type,
            "Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}",
            "Cache-Control": "no-store",
        },
    )


def register(api: Api) -> None:
    api.add(
        "GET",
        f"{V1}/statistics",
        get_statistics,
        summary="Figures, charts and a breakdown of my area for a period and filters",
        action="stats.read",
        query=StatsQuery,
        response=StatsRead,
        tags=("statistics",),
    )
    api.add(
        "GET",
        f"{V1}/statistics/options",
        get_options,
        summary="What the statistics filters offer in my area",
        action="stats.read",
        response=StatsOptions,
        tags=("statistics",),
    )
    api.add(
        "GET",
        f"{V1}/statistics/export",
        export_statistics,
        summary="The statistics' figures table as CSV (UTF-8) or XLSX (audited)",
        action="stats.read",
        query=ExportQuery,
        tags=("statistics",),
    )
