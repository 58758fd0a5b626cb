"""Periodic work of supervision; every node runs it, the unique rows keep it exactly once."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Awaitable, Callable
from functools import partial
from typing import TypeVar

from core.db import Database, utcnow
from core.events import Deliver, Outbox
from core.settings import Settings
from core.sms import SmsGateway
from supervision import alerts, followups, line_alerts

log = logging.getLogger("cloudwindow.supervision")

R = TypeVar("R")


async def _round(db: Database, deliver: Deliver, work: Callable[..., Awaitable[R]]) -> R:
    """One sweep round as a unit of work: the work, one commit, then tell people."""
    outbox = Outbox()
    async with db.session() as session:
        report = await work(session=session, outbox=outbox)
        await session.commit()
    await deliver(outbox.take())
    return report


async def sweep_alerts(
    *,
    db: Database,
    settings: Settings,
    sms: SmsGateway,
    deliver: Deliver,
    node_id: str,
    now: dt.datetime | None = None,
) -> alerts.RaiseReport:
    """One round: raise what is due and resolve what moved on, commit, then tell people."""
    work = partial(
        alerts.raise_due, settings=settings, sms=sms, now=now or utcnow(), node_id=node_id
    )
    return await _round(db, deliver, work)


async def sweep_line_alerts(
    *,
    db: Database,
    settings: Settings,
    sms: SmsGateway,
    deliver: Deliver,
    node_id: str,
    now: dt.datetime | None = None,
) -> line_alerts.LineReport:
    """One round of the line alerts: raise, escalate, ease, resolve; commit, then tell people."""
    work = partial(
        line_alerts.sweep, settings=settings, sms=sms, now=now or utcnow(), node_id=node_id
    )
    return await _round(db, deliver, work)


async def sweep_followups(
    *,
    db: Database,
    settings: Settings,
    sms: SmsGateway,
    deliver: Deliver,
    node_id: str,
    now: dt.datetime | None = None,
    full: bool = False,
) -> followups.FollowupReport:
    """One round of the bad-rating follow-ups: open the new ones, then raise the overdue ones,
    each its own unit of work (an overdue alert that cannot be sent holds up no opening)."""
    report = await open_followups(
        db=db, settings=settings, deliver=deliver, node_id=node_id, now=now, full=full
    )
    overdue = partial(
        followups.raise_overdue, sms=sms, now=now or utcnow(), node_id=node_id, report=report
    )
    return await _round(db, deliver, overdue)


async def open_followups(
    *,
    db: Database,
    settings: Settings,
    deliver: Deliver,
    node_id: str,
    now: dt.datetime | None = None,
    full: bool = False,
) -> followups.FollowupReport:
    """The opening half of a follow-up round, as its own unit of work."""
    work = partial(
        followups.open_due, settings=settings, now=now or utcnow(), node_id=node_id, full=full
    )
    return await _round(db, deliver, work)


async def alert_loop(
    *, db: Database, settings: Settings, sms: SmsGateway, deliver: Deliver, node_id: str
) -> None:
    rounds = 0
    while True:
        await asyncio.sleep(settings.alert_sweep_interval_seconds)
        try:
            report = await sweep_alerts(
                db=db, settings=settings, sms=sms, deliver=deliver, node_id=node_id
            )
            if report.raised or report.resolved:
                log.info("wait alerts: %d raised, %d resolved", len(report.raised), report.resolved)
        except Exception:  # a round that fails (database away) is retried on the next one
            log.exception("wait-alert sweep failed")
        try:
            lines = await sweep_line_alerts(
                db=db, settings=settings, sms=sms, deliver=deliver, node_id=node_id
            )
            if lines.raised or lines.escalated or lines.eased or lines.resolved:
                log.info("line alerts: %s", lines)
        except Exception:
            log.exception("line-alert sweep failed")
        try:
            # The first round of a process reads every bad rating (one may have been written
            # while no node ran); later ones the recent ratings, and all of them now and then.
            full = rounds % followups.FULL_EVERY == 0
            found = await open_followups(
                db=db, settings=settings, deliver=deliver, node_id=node_id, full=full
            )
            rounds += 1
            if found.opened:
                log.info("follow-ups: %d opened", len(found.opened))
        except Exception:
            log.exception("follow-up sweep failed")
        try:
            late = await _round(
                db,
                deliver,
                partial(followups.raise_overdue, sms=sms, now=utcnow(), node_id=node_id),
            )
            if late.overdue:
                log.info("follow-ups: %d overdue alerts raised", len(late.overdue))
        except Exception:
            log.exception("overdue follow-up sweep failed")
