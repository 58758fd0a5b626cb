"""Periodic work of supervision; every node runs it, the alert rows keep it exactly once."""

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
from supervision import alerts, line_alerts

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


async def alert_loop(
    *, db: Database, settings: Settings, sms: SmsGateway, deliver: Deliver, node_id: str
) -> None:
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
