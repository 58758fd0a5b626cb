"""HTTP reads of the queue for the clerk console and the supervisor board."""

from __future__ import annotations

import datetime as dt

from aiohttp import web
from pydantic import BaseModel, Field
from sqlmodel import col, select

from core import catalog, sites
from core.access import site_in_scope
from core.db import utcnow
from core.errors import Invalid, NotFound
from core.inputs import MAX_ID
from core.models import Role, Staff, WindowLine
from coreapi.shapes import Query
from httpapi.api import Api, Ctx
from signaling import halls, queue
from signaling.models import HallOption, Presence, PresenceStatus, TicketRead, TicketStatus
from signaling.server import Signaling

V1 = "/api/v1"
SIGNALING: web.AppKey[Signaling] = web.AppKey("signaling")


class SkillRead(BaseModel):
    skill: str
    experts: int
    online: int
    available: int


class HallQuery(Query):
    """From a service point (its coordinates), or from a coordinate (a resident at home)."""

    site_id: int | None = Field(default=None, ge=1, le=MAX_ID)
    lat: float | None = Field(default=None, ge=-90, le=90)
    lng: float | None = Field(default=None, ge=-180, le=180)
    limit: int = Field(default=5, ge=1, le=halls.CANDIDATES)


async def item_halls(ctx: Ctx) -> list[HallOption]:
    """Halls for an item ranked by the trip there plus the live wait (signaling/halls.py)."""
    q: HallQuery = ctx.query
    item = await catalog.get_item(session=ctx.session, code=ctx.request.match_info["code"])
    if q.site_id is not None:
        site = await sites.get(session=ctx.session, site_id=q.site_id)
        lat, lng = site.lat, site.lng
    elif q.lat is not None and q.lng is not None:
        lat, lng = q.lat, q.lng
    else:
        raise Invalid("halls.where")
    return await halls.rank(
        session=ctx.session, settings=ctx.settings, item=item, lat=lat, lng=lng, limit=q.limit
    )


async def line_tickets(ctx: Ctx) -> list[TicketRead]:
    """The line's waiting tickets in the order call-next takes them, with positions."""
    line_id = ctx.path_int("line_id")
    line = await ctx.session.get(WindowLine, line_id)
    me = ctx.me
    visible = line is not None and (
        line_id in me.line_ids
        or (me.role is not Role.clerk and await site_in_scope(ctx.session, me, line.site_id))
    )
    if not visible:
        raise NotFound(f"窗口 {line_id}", f"Window line {line_id}")
    _status, positions = await queue.line_snapshot(
        session=ctx.session, settings=ctx.settings, line_id=line_id
    )
    tickets = await queue.tickets_by_id(session=ctx.session, ids=list(positions))
    tickets = [t for t in tickets if t.status == TicketStatus.waiting]
    tickets.sort(key=lambda t: positions[t.id or 0][0])
    return await queue.read_tickets(session=ctx.session, tickets=tickets, positions=positions)


async def expert_skills(ctx: Ctx) -> list[SkillRead]:
    """Every expert skill, with how many experts have it and how many are online now."""
    fresh = utcnow() - dt.timedelta(seconds=ctx.settings.presence_ttl_seconds)
    experts = (
        await ctx.session.exec(
            select(Staff.id, Staff.skills).where(
                Staff.role == Role.expert, col(Staff.active).is_(True)
            )
        )
    ).all()
    rows = (
        await ctx.session.exec(
            select(Presence.staff_id, Presence.status).where(col(Presence.updated_at) >= fresh)
        )
    ).all()
    online = {sid for sid, _ in rows}
    available = {sid for sid, st in rows if st == PresenceStatus.available}
    skills: dict[str, SkillRead] = {}
    for sid, names in experts:
        for name in names or []:
            s = skills.setdefault(name, SkillRead(skill=name, experts=0, online=0, available=0))
            s.experts += 1
            s.online += sid in online
            s.available += sid in available
    return sorted(skills.values(), key=lambda s: (-s.available, -s.online, s.skill))


def register(api: Api) -> None:
    api.add(
        "GET",
        f"{V1}/items/{{code}}/halls",
        item_halls,
        summary="Halls that handle an item, ranked by distance plus the live wait, with both",
        action="line.watch",
        query=HallQuery,
        response=list[HallOption],
        tags=("queue",),
    )
    api.add(
        "GET",
        f"{V1}/lines/{{line_id:[0-9]+}}/tickets",
        line_tickets,
        summary="A line's waiting tickets, in call order, with position and estimated wait",
        action="queue.list",
        response=list[TicketRead],
        tags=("queue",),
    )
    api.add(
        "GET",
        f"{V1}/experts/skills",
        expert_skills,
        summary="Expert skills a clerk can invite, with experts online and available",
        action="experts.read",
        response=list[SkillRead],
        tags=("queue",),
    )
