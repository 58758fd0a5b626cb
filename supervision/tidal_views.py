"""HTTP routes of the tidal windows: the overview of my area, applying and closing moves, and
a clerk's own move."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from core.db import utcnow
from httpapi.api import Api, Ctx
from supervision import tidal, tidal_moves
from supervision.models import TidalApply, TidalClose, TidalMoveRead, TidalOverview

V1 = "/api/v1"
TAGS = ("supervision",)


async def overview(ctx: Ctx) -> TidalOverview:
    s, now = ctx.settings, utcnow()
    found = await tidal.overview(session=ctx.session, settings=s, principal=ctx.me, now=now)
    moves = await tidal_moves.list_moves(
        session=ctx.session, principal=ctx.me, active_only=True, limit=200
    )
    lines = sorted(
        (st.read(short_before=lid in found.before) for lid, st in found.states.items()),
        key=lambda r: (not r.short_now, r.service_level, r.line_id),
    )
    return TidalOverview(
        now=now,
        window_start=tidal.window_start(now, minutes=s.tidal_window_minutes, tz=s.timezone),
        window_minutes=s.tidal_window_minutes,
        min_stay_minutes=s.tidal_min_stay_minutes,
        max_stay_minutes=s.tidal_max_stay_minutes,
        default_until=tidal.default_until(now, s),
        lines=lines,
        suggestions=found.suggestions,
        moves=moves,
    )


class MovesQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    active: bool = True
    limit: int = Field(default=100, ge=1, le=500)


async def list_moves(ctx: Ctx) -> list[TidalMoveRead]:
    q: MovesQuery = ctx.query
    return await tidal_moves.list_moves(
        session=ctx.session, principal=ctx.me, active_only=q.active, limit=q.limit
    )


async def apply_move(ctx: Ctx) -> TidalMoveRead:
    return await tidal_moves.apply(
        session=ctx.session,
        settings=ctx.settings,
        principal=ctx.me,
        outbox=ctx.outbox,
        move_in=ctx.body,
        now=utcnow(),
        request_id=ctx.request_id,
        ip=ctx.ip,
    )


async def close_move(ctx: Ctx) -> TidalMoveRead:
    body: TidalClose = ctx.body
    return await tidal_moves.close(
        session=ctx.session,
        principal=ctx.me,
        outbox=ctx.outbox,
        move_id=ctx.path_int("move_id"),
        note=body.note,
        now=utcnow(),
        request_id=ctx.request_id,
        ip=ctx.ip,
    )


async def my_move(ctx: Ctx) -> list[TidalMoveRead]:
    return await tidal_moves.mine(session=ctx.session, principal=ctx.me)


def register(api: Api) -> None:
    api.add(
        "GET",
        f"{V1}/tidal",
        overview,
        summary="Staffing of the lines in my area (Erlang C), the moves suggested now, and the "
        "moves running",
        action="tidal.read",
        response=TidalOverview,
        tags=TAGS,
    )
    api.add(
        "GET",
        f"{V1}/tidal/moves",
        list_moves,
        summary="Tidal moves touching the lines of my area, newest first",
        action="tidal.read",
        query=MovesQuery,
        response=list[TidalMoveRead],
        tags=TAGS,
    )
    api.add(
        "POST",
        f"{V1}/tidal/moves",
        apply_move,
        summary="Apply a suggested move: the clerk serves the target line too, until the end "
        "time (audited)",
        action="tidal.manage",
        body=TidalApply,
        response=TidalMoveRead,
        status=201,
        tags=TAGS,
    )
    api.add(
        "POST",
        f"{V1}/tidal/moves/{{move_id:[0-9]+}}/close",
        close_move,
        summary="End a tidal move by hand before its time (audited)",
        action="tidal.manage",
        body=TidalClose,
        response=TidalMoveRead,
        tags=TAGS,
    )
    api.add(
        "GET",
        f"{V1}/tidal/mine",
        my_move,
        summary="My running tidal move, if any (a clerk's console)",
        action="tidal.mine",
        response=list[TidalMoveRead],
        tags=TAGS,
    )
