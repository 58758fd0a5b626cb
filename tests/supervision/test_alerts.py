"""Wait alerts: a resident waiting past the line's threshold alerts its department heads,
once per ticket, across nodes and restarts; heads acknowledge and the alert resolves."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlmodel import func, select

from core.db import Database, utcnow
from core.events import deliver_nowhere
from core.settings import Settings
from httpapi import keys
from outreach.models import SmsMessage
from outreach.sms import RecordingSmsGateway
from supervision.models import WaitAlert
from supervision.sweeps import sweep_alerts
from tests.conftest import base_settings
from tests.signaling.helpers import gaoqiao_setup, new_resident, take_payload

HEAD_PHONE = "13700137000"


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    """The app's own alert loop stays out of the way: these tests sweep when they mean to."""
    return base_settings(db_url, tmp_path / "data", alert_sweep_interval_seconds=3600)


async def _waiting_ticket(sock: Any) -> tuple[Any, dict[str, Any]]:
    worker = await sock("worker")
    setup = await gaoqiao_setup(worker.user)
    ticket = await worker.ok("ticket:take", take_payload(setup, await new_resident(worker.user)))
    return worker, ticket


async def _give_head_a_phone(settings: Settings) -> None:
    db = Database(settings.effective_database_url)
    try:
        async with db.session() as s:
            await s.exec(  # type: ignore[call-overload]
                text("UPDATE staff SET phone = :p WHERE username = 'supervisor.t07'"),
                params={"p": HEAD_PHONE},
            )
            await s.commit()
    finally:
        await db.dispose()


async def _node_sweep(settings: Settings, node: str, minutes: float) -> list[int]:
    """One sweep from a node of its own (its own engine and pool), `minutes` from now."""
    db = Database(settings.effective_database_url)
    try:
        report = await sweep_alerts(
            db=db,
            settings=settings,
            sms=RecordingSmsGateway(),
            deliver=deliver_nowhere,
            node_id=node,
            now=utcnow() + dt.timedelta(minutes=minutes),
        )
        return report.raised
    finally:
        await db.dispose()


async def _counts(settings: Settings) -> tuple[int, int]:
    db = Database(settings.effective_database_url)
    try:
        async with db.session() as s:
            alerts = (await s.exec(select(func.count()).select_from(WaitAlert))).one()
            texts = (
                await s.exec(
                    select(func.count())
                    .select_from(SmsMessage)
                    .where(SmsMessage.phone == HEAD_PHONE)
                )
            ).one()
            return int(alerts), int(texts)
    finally:
        await db.dispose()


async def test_an_alert_is_raised_once_across_nodes_and_restarts(
    sock: Any, settings: Settings
) -> None:
    await _give_head_a_phone(settings)
    await _waiting_ticket(sock)
    # Not yet: 14 minutes is under the 15-minute threshold.
    assert await _node_sweep(settings, "a", 14) == []
    # Two nodes sweep at the same moment: exactly one raises it, one SMS goes out.
    raised = await asyncio.gather(*(_node_sweep(settings, n, 16) for n in ("a", "b", "c")))
    assert sorted(len(r) for r in raised) == [0, 0, 1]
    assert await _counts(settings) == (1, 1)
    # A restarted node, much later: still one alert, still one SMS.
    assert await _node_sweep(settings, "a-restarted", 60) == []
    assert await _counts(settings) == (1, 1)


async def test_the_head_hears_acknowledges_and_the_alert_resolves_when_called(
    client: Any, sock: Any, as_user: Any, settings: Settings
) -> None:
    _worker, ticket = await _waiting_ticket(sock)
    head = await sock("supervisor.t07")
    app = client.app
    report = await sweep_alerts(
        db=app[keys.DB],
        settings=settings,
        sms=app[keys.SMS],
        deliver=app[keys.DELIVER],
        node_id="test",
        now=utcnow() + dt.timedelta(minutes=16),
    )
    assert len(report.raised) == 1
    heard = await head.wait("alert:raised")
    alert = heard["alert"]
    assert (alert["ticket_number"], alert["status"]) == (ticket["number"], "raised")
    assert alert["waited_seconds"] >= 15 * 60

    # The head of another town neither lists it nor may act on it.
    other = await as_user("supervisor.t01")
    assert await (await other.get("/api/v1/alerts")).json() == []
    resp = await other.post(f"/api/v1/alerts/{alert['id']}/acknowledge", json={"note": "x"})
    assert resp.status == 404

    me = head.user
    listed = await (await me.get("/api/v1/alerts")).json()
    assert [a["id"] for a in listed] == [alert["id"]]
    resp = await me.post(f"/api/v1/alerts/{alert['id']}/acknowledge", json={"note": "加开窗口"})
    assert resp.status == 200, await resp.text()
    acked = await resp.json()
    assert (acked["status"], acked["note"], acked["acknowledged_by"]) == (
        "acknowledged",
        "加开窗口",
        me.me["id"],
    )
    again = await me.post(f"/api/v1/alerts/{alert['id']}/acknowledge", json={"note": ""})
    assert again.status == 409

    # The clerk calls the resident: the next sweep resolves the alert by itself.
    clerk = await sock("clerk")
    await clerk.ok("queue:call_next")
    report = await sweep_alerts(
        db=app[keys.DB],
        settings=settings,
        sms=app[keys.SMS],
        deliver=app[keys.DELIVER],
        node_id="test",
        now=utcnow() + dt.timedelta(minutes=17),
    )
    assert (report.raised, report.resolved) == ([], 1)
    closed = await (await me.get("/api/v1/alerts", params={"open": "false"})).json()
    assert (closed[0]["status"], closed[0]["resolution"]) == ("resolved", "called")
    assert await (await me.get("/api/v1/alerts")).json() == []

    admin = await as_user("admin")
    log = await (await admin.get("/api/v1/audit", params={"target_type": "wait_alert"})).json()
    assert {e["action"] for e in log} >= {"alert.raise", "alert.acknowledge"}
