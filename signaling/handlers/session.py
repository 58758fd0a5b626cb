"""A connection's own state: sync after a reconnect, presence, lines to follow."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from core.access import require_line
from core.db import single_statements
from core.errors import NotFound
from core.events import Audience
from core.models import Role, WindowLine
from signaling import calls, presence, queue
from signaling import payloads as pl
from signaling.handlers.spec import EventSpec
from signaling.outbox import Outbox

if TYPE_CHECKING:
    from sqlmodel.ext.asyncio.session import AsyncSession

    from signaling.server import Conn, Signaling


async def h_sync(sg: Signaling, sid: str, conn: Conn, p: pl.Empty) -> Any:
    """Everything a (re)connecting client needs: its open tickets, calls and lines.

    A clerk's lines are read again, so a console told its lines changed (a tidal move) follows
    the new ones by syncing, without reconnecting.
    """
    async with sg.db.session() as session:
        # Reads only: on PostgreSQL no BEGIN and ROLLBACK around them. Each read sees its own
        # snapshot either way (READ COMMITTED), and what changes later arrives as events.
        await single_statements(session)
        if conn.principal.role is Role.clerk:
            await sg.follow_lines(sid, conn, await queue.lines_of(session, conn.principal.staff_id))
        me = conn.principal
        tickets = await queue.open_tickets_for(session=session, settings=sg.settings, principal=me)
        active = await calls.active_calls_for(session=session, principal=me)
        lines = []
        for line_id in sorted(me.line_ids):
            status, _ = await queue.line_snapshot(
                session=session, settings=sg.settings, line_id=line_id
            )
            lines.append(status.model_dump(mode="json"))
    await sg.enter(sid, *(Audience.ticket(t.id) for t in tickets))
    return {
        "tickets": [t.model_dump(mode="json") for t in tickets],
        "calls": active,
        "lines": lines,
        "ice_servers": calls.ice_servers(sg.settings, calls.ice_user(me)),
    }


async def h_presence(sg: Signaling, sid: str, conn: Conn, p: pl.PresenceSet) -> dict[str, Any]:
    async def work(session: AsyncSession, outbox: Outbox) -> None:
        await single_statements(session)  # an upsert and an update, each whole on its own
        await presence.set_presence(
            session=session, staff_id=conn.principal.staff_id, node_id=sg.node_id, status=p.status
        )
        outbox.lines.update(conn.principal.line_ids)

    await sg.run(work)
    return {"status": p.status}


async def h_line_watch(sg: Signaling, sid: str, conn: Conn, p: pl.LineWatch) -> list[Any]:
    out = []
    async with sg.db.session() as session:
        await single_statements(session)  # reads only, as in h_sync
        if conn.principal.role is Role.supervisor:
            # A supervisor's board follows only the lines of their area (others: 404).
            for line_id in p.line_ids:
                line = await session.get(WindowLine, line_id)
                nf = NotFound(f"窗口 {line_id}", f"Window line {line_id}")
                if line is None:
                    raise nf
                await require_line(session, conn.principal, line, not_found=nf)
        for line_id in p.line_ids:
            status, _ = await queue.line_snapshot(
                session=session, settings=sg.settings, line_id=line_id
            )
            out.append(status.model_dump(mode="json"))
    await sg.enter(sid, *(Audience.line(line_id) for line_id in p.line_ids))
    return out


EVENTS = (
    EventSpec(
        "state:sync",
        pl.Empty,
        None,
        "Everything a (re)connecting client needs; a clerk's lines are read again (send it "
        "after tidal:changed).",
        h_sync,
        "{tickets: [Ticket], calls: [{call_id, participant_id}], lines: [LineStatus], ice_servers}",
    ),
    EventSpec(
        "presence:set",
        pl.PresenceSet,
        "presence.set",
        "Set my availability.",
        h_presence,
        "{status}",
    ),
    EventSpec(
        "line:watch",
        pl.LineWatch,
        "line.watch",
        "Follow lines: line:status events from now on.",
        h_line_watch,
        "[LineStatus]",
        ("not_found",),
    ),
)
