"""HTTP routes of the live board: the area's figures, a line's waiting tickets, the hall's wall
display. Every route answers only for the caller's area (a line or hall elsewhere: 404)."""

from __future__ import annotations

from core.db import utcnow
from httpapi.api import Api, Ctx
from supervision import board
from supervision.board_models import BoardQuery, BoardRead, LineQueue, QueueQuery, WallRead

V1 = "/api/v1"


async def get_board(ctx: Ctx) -> BoardRead:
    q: BoardQuery = ctx.query
    return await board.snapshot(
        session=ctx.session,
        principal=ctx.me,
        settings=ctx.settings,
        now=utcnow(),
        hall_id=q.hall_id,
    )


async def get_line_queue(ctx: Ctx) -> LineQueue:
    q: QueueQuery = ctx.query
    return await board.line_queue(
        session=ctx.session,
        principal=ctx.me,
        settings=ctx.settings,
        now=utcnow(),
        line_id=ctx.path_int("line_id"),
        limit=q.limit,
        offset=q.offset,
    )


async def get_wall(ctx: Ctx) -> WallRead:
    q: BoardQuery = ctx.query
    return await board.wall(
        session=ctx.session,
        principal=ctx.me,
        settings=ctx.settings,
        now=utcnow(),
        hall_id=q.hall_id,
    )


def register(api: Api) -> None:
    api.add(
        "GET",
        f"{V1}/board",
        get_board,
        summary="The live board of my area (or of one hall of it): figures per line and hall",
        action="board.read",
        query=BoardQuery,
        response=BoardRead,
        tags=("supervision",),
    )
    api.add(
        "GET",
        f"{V1}/board/lines/{{line_id:[0-9]+}}/waiting",
        get_line_queue,
        summary="A page of a line's waiting tickets, longest waiting first (numbers and items)",
        action="board.read",
        query=QueueQuery,
        response=LineQueue,
        tags=("supervision",),
    )
    api.add(
        "GET",
        f"{V1}/board/wall",
        get_wall,
        summary="A hall's wall display: its figures and numbers, no personal data",
        action="board.read",
        query=BoardQuery,
        response=WallRead,
        tags=("supervision",),
    )
