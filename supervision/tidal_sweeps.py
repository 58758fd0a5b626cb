"""Periodic work of the tidal windows; every node runs it, the rows keep it exactly once.

Each round ends the moves whose time has come (an update conditional on the move being
active: one node wins each) and records every line's assessment for the current window (an
upsert keyed by line and window: every node writes the same row), so "short in the previous
window" reads the same everywhere and after a restart.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from dataclasses import dataclass, field

from sqlmodel import col, select

from core.db import Database, utcnow
from core.events import Deliver, Outbox
from core.models import WindowLine
from core.settings import Settings
from supervision import tidal, tidal_moves

log = logging.getLogger("cloudwindow.supervision")


@dataclass
class TidalReport:
    expired: list[int] = field(default_factory=list)  # moves this node ended
    recorded: int = 0  # lines assessed for the window


async def sweep_tidal(
    *,
    db: Database,
    settings: Settings,
    deliver: Deliver,
    node_id: str,
    now: dt.datetime | None = None,
) -> TidalReport:
    """One round as a unit of work: expire, record, commit, then tell people."""
    now = now or utcnow()
    outbox = Outbox()
    report = TidalReport()
    async with db.session() as session:
        report.expired = await tidal_moves.expire_due(
            session=session, outbox=outbox, now=now, node_id=node_id
        )
        lines = list((await session.exec(select(WindowLine).where(col(WindowLine.active)))).all())
        states = await tidal.assess(session=session, settings=settings, lines=lines, now=now)
        report.recorded = await tidal.record(
            session=session, settings=settings, states=states, now=now
        )
        await session.commit()
    await deliver(outbox.take())
    return report


async def tidal_loop(*, db: Database, settings: Settings, deliver: Deliver, node_id: str) -> None:
    while True:
        await asyncio.sleep(settings.tidal_sweep_interval_seconds)
        try:
            report = await sweep_tidal(db=db, settings=settings, deliver=deliver, node_id=node_id)
            if report.expired:
                log.info("tidal moves ended at their time: %s", report.expired)
        except Exception:  # a round that fails (database away) is retried on the next one
            log.exception("tidal sweep failed")
