"""Line alerts: yellow and red on people waiting and on tickets taken in the last hour, with
hysteresis so a line at its threshold does not flap, once across nodes and restarts, taken on
and closed by supervisors of the line's area, and counted per period."""

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
from supervision.line_alerts import Limits, LineReport, next_level
from supervision.models import AlertLevel, LineAlert
from supervision.sweeps import sweep_alerts, sweep_line_alerts
from tests.conftest import base_settings
from tests.signaling.helpers import fill_queue

HEAD_PHONE = "13700137001"
LINE = "T07-civil_affairs"  # 高桥镇·民政, supervised by supervisor.t07
Y, R = AlertLevel.yellow, AlertLevel.red


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    """The app's own alert loop stays out of the way: these tests sweep when they mean to."""
    return base_settings(db_url, tmp_path / "data", alert_sweep_interval_seconds=3600)


def test_a_level_is_entered_at_its_threshold_and_left_only_below_its_release() -> None:
    lim, h = Limits(yellow=10, red=20), 0.2  # release levels: yellow 8, red 16
    level = None
    seen = []
    for value in (9, 10, 9, 8, 10, 8, 7, 20, 17, 16, 15, 19, 8, 7):
        level = next_level(level, value, lim, h)
        seen.append(level)
    assert seen == [None, Y, Y, Y, Y, Y, None, R, R, R, Y, Y, Y, None]
    # Straight to red from nothing; no hysteresis means leaving at the threshold itself.
    assert next_level(None, 25, lim, h) == R
    assert next_level(Y, 9, lim, 0.0) is None


async def _sql(settings: Settings, sql: str, **params: Any) -> list[Any]:
    db = Database(settings.effective_database_url)
    try:
        async with db.session() as s:
            rows = await s.exec(text(sql), params=params)  # type: ignore[call-overload]
            out = list(rows.all()) if rows.returns_rows else []
            await s.commit()
            return out
    finally:
        await db.dispose()


async def _line(settings: Settings, **limits: int) -> tuple[int, list[int]]:
    """The line with its own limits and 8 tickets taken just now, all cancelled to start."""
    url = settings.effective_database_url
    _names, ids = await fill_queue(url, clerks=0, tickets=8, prefix="la")
    line_id = (await _sql(settings, "SELECT id FROM window_line WHERE code = :c", c=LINE))[0][0]
    cols = {"waiting_yellow": 1000, "waiting_red": 2000, "taken_yellow": 1000, "taken_red": 2000}
    cols |= limits
    names = ", ".join(cols)
    await _sql(
        settings,
        f"INSERT INTO line_threshold (line_id, {names}) VALUES (:line, :{', :'.join(cols)})",
        line=line_id,
        **cols,
    )
    phone = "UPDATE staff SET phone = :p WHERE username = 'supervisor.t07'"
    await _sql(settings, phone, p=HEAD_PHONE)
    ticket_ids = sorted(ids)
    await _waiting(settings, ticket_ids, 0)
    return line_id, ticket_ids


async def _waiting(settings: Settings, ticket_ids: list[int], n: int) -> None:
    """The first n of the tickets waiting, the others cancelled."""
    for i, tid in enumerate(ticket_ids):
        status = "waiting" if i < n else "cancelled"
        await _sql(settings, "UPDATE ticket SET status = :s WHERE id = :i", s=status, i=tid)


async def _node(settings: Settings, node: str, minutes: float = 0) -> LineReport:
    """One line sweep from a node of its own (its own engine and pool)."""
    db = Database(settings.effective_database_url)
    try:
        return await sweep_line_alerts(
            db=db,
            settings=settings,
            sms=RecordingSmsGateway(),
            deliver=deliver_nowhere,
            node_id=node,
            now=utcnow() + dt.timedelta(minutes=minutes),
        )
    finally:
        await db.dispose()


async def _rows_and_texts(settings: Settings) -> tuple[int, int]:
    db = Database(settings.effective_database_url)
    try:
        async with db.session() as s:
            rows = (await s.exec(select(func.count()).select_from(LineAlert))).one()
            texts = (
                await s.exec(
                    select(func.count())
                    .select_from(SmsMessage)
                    .where(SmsMessage.phone == HEAD_PHONE)
                )
            ).one()
            return int(rows), int(texts)
    finally:
        await db.dispose()


def _moves(reports: list[LineReport]) -> tuple[int, int, int, int]:
    return (
        sum(len(r.raised) for r in reports),
        sum(len(r.escalated) for r in reports),
        sum(len(r.eased) for r in reports),
        sum(len(r.resolved) for r in reports),
    )


async def test_two_nodes_at_once_raise_escalate_and_resolve_once_and_a_restart_adds_nothing(
    settings: Settings,
) -> None:
    _line_id, tickets = await _line(settings, waiting_yellow=5, waiting_red=8)
    nodes = ("a", "b", "c")

    async def together(n_waiting: int) -> tuple[int, int, int, int]:
        await _waiting(settings, tickets, n_waiting)
        return _moves(list(await asyncio.gather(*(_node(settings, n) for n in nodes))))

    assert await together(4) == (0, 0, 0, 0)
    assert await together(5) == (1, 0, 0, 0)
    assert await _rows_and_texts(settings) == (1, 1)
    assert _moves([await _node(settings, "a-restarted")]) == (0, 0, 0, 0)
    assert await together(8) == (0, 1, 0, 0)
    assert await _rows_and_texts(settings) == (1, 2)  # the same alert, one SMS for red
    assert await together(3) == (0, 0, 0, 1)
    assert _moves([await _node(settings, "a-restarted")]) == (0, 0, 0, 0)
    assert await _rows_and_texts(settings) == (1, 2)


async def test_a_line_hovering_at_yellow_does_not_flap_and_red_eases_then_resolves(
    client: Any, sock: Any, as_user: Any, settings: Settings
) -> None:
    line_id, tickets = await _line(settings, waiting_yellow=5, waiting_red=8)
    head = await sock("supervisor.t07")
    app = client.app

    async def at(n_waiting: int) -> tuple[int, int, int, int]:
        await _waiting(settings, tickets, n_waiting)
        report = await sweep_line_alerts(
            db=app[keys.DB],
            settings=settings,
            sms=app[keys.SMS],
            deliver=app[keys.DELIVER],
            node_id="test",
        )
        return _moves([report])

    assert await at(5) == (1, 0, 0, 0)
    raised = (await head.wait("line_alert:raised"))["alert"]
    assert (raised["line_id"], raised["measure"], raised["level"]) == (line_id, "waiting", "yellow")
    assert (raised["value"], raised["threshold"], raised["status"]) == (5, 5, "raised")
    # Hovering between 4 and 5 (release 4.0): one alert, nothing new.
    for n in (4, 5, 4, 5, 4):
        assert await at(n) == (0, 0, 0, 0)

    me = head.user
    url = f"/api/v1/line-alerts/{raised['id']}/acknowledge"
    resp = await me.post(url, json={"note": "加开窗口"})
    assert resp.status == 200, await resp.text()
    acked = await resp.json()
    assert (acked["status"], acked["note"], acked["acknowledged_by"]) == (
        "acknowledged",
        "加开窗口",
        me.me["id"],
    )
    assert (await me.post(url, json={})).status == 409

    # Red updates the same alert and asks to be taken on again; 7 holds red (release 6.4).
    assert await at(8) == (0, 1, 0, 0)
    red = (await head.wait("line_alert:raised", lambda d: d["alert"]["level"] == "red"))["alert"]
    assert (red["id"], red["level"], red["status"], red["threshold"]) == (
        raised["id"],
        "red",
        "raised",
        8,
    )
    assert await at(7) == (0, 0, 0, 0)
    assert await at(6) == (0, 0, 1, 0)  # back to yellow
    assert await at(4) == (0, 0, 0, 0)
    assert await at(3) == (0, 0, 0, 1)  # under yellow's release: resolved by itself
    listed = await (await me.get("/api/v1/line-alerts", params={"open": "false"})).json()
    assert [(a["id"], a["status"], a["resolution"], a["level"]) for a in listed] == [
        (raised["id"], "resolved", "auto", "yellow")
    ]
    assert listed[0]["red_at"] is not None
    assert await (await me.get("/api/v1/line-alerts")).json() == []

    # Scoped: another town's supervisor neither lists it, nor counts it, nor may act on it.
    other = await as_user("supervisor.t01")
    assert await (await other.get("/api/v1/line-alerts", params={"open": "false"})).json() == []
    resp = await other.post(f"/api/v1/line-alerts/{raised['id']}/resolve", json={"note": "x"})
    assert resp.status == 404
    counts = await (await other.get("/api/v1/alerts/counts")).json()
    assert (counts["yellow"], counts["red"], counts["wait"]) == (0, 0, 0)

    admin = await as_user("admin")
    log = await (await admin.get("/api/v1/audit", params={"target_type": "line_alert"})).json()
    assert {e["action"] for e in log} >= {
        "line_alert.raise",
        "line_alert.acknowledge",
        "line_alert.escalate",
        "line_alert.ease",
        "line_alert.resolve",
    }


async def test_closed_by_hand_it_stays_quiet_until_the_line_is_back_under_yellow(
    client: Any, as_user: Any, settings: Settings
) -> None:
    _line_id, tickets = await _line(settings, waiting_yellow=5, waiting_red=8)
    await _waiting(settings, tickets, 5)
    assert _moves([await _node(settings, "a")]) == (1, 0, 0, 0)
    head = await as_user("supervisor.t07")
    [alert] = await (await head.get("/api/v1/line-alerts")).json()
    resp = await head.post(f"/api/v1/line-alerts/{alert['id']}/resolve", json={"note": "已处理"})
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["resolution"] == "manual"
    assert _moves([await _node(settings, "a")]) == (0, 0, 0, 0)  # still at 5: quiet
    await _waiting(settings, tickets, 3)
    assert _moves([await _node(settings, "a")]) == (0, 0, 0, 0)  # the episode ends quietly
    await _waiting(settings, tickets, 5)
    assert _moves([await _node(settings, "a")]) == (1, 0, 0, 0)  # a new episode
    assert (await _rows_and_texts(settings))[0] == 2

    admin = await as_user("admin")
    log = await (await admin.get("/api/v1/audit", params={"target_type": "line_alert"})).json()
    manual = [e for e in log if e["action"] == "line_alert.resolve" and e["actor_id"]]
    assert len(manual) == 1


async def test_tickets_taken_count_over_the_rolling_hour_and_alerts_are_counted_per_period(
    client: Any, as_user: Any, settings: Settings
) -> None:
    _line_id, tickets = await _line(settings, taken_yellow=6, taken_red=8)  # taken just now
    assert _moves([await _node(settings, "a")]) == (1, 0, 0, 0)  # straight to red
    head = await as_user("supervisor.t07")
    [alert] = await (await head.get("/api/v1/line-alerts")).json()
    assert (alert["measure"], alert["level"], alert["value"], alert["window_minutes"]) == (
        "taken",
        "red",
        8,
        60,
    )
    # An hour on, those tickets have left the rolling window: resolved.
    assert _moves([await _node(settings, "a", minutes=61)]) == (0, 0, 0, 1)

    await _waiting(settings, tickets, 8)
    app = client.app
    wait = await sweep_alerts(
        db=app[keys.DB],
        settings=settings,
        sms=app[keys.SMS],
        deliver=app[keys.DELIVER],
        node_id="test",
        now=utcnow() + dt.timedelta(minutes=16),
    )
    assert len(wait.raised) == 8

    for period in ("day", "week", "month"):
        got = await (await head.get("/api/v1/alerts/counts", params={"period": period})).json()
        assert (got["yellow"], got["red"], got["wait"], got["tidal"]) == (0, 1, 8, 0), period
    long_ago = {"period": "custom", "start": "2020-01-01", "end": "2020-01-31"}
    got = await (await head.get("/api/v1/alerts/counts", params=long_ago)).json()
    assert (got["yellow"], got["red"], got["wait"]) == (0, 0, 0)
    bad = {"period": "custom", "start": "2020-02-01", "end": "2020-01-01"}
    assert (await head.get("/api/v1/alerts/counts", params=bad)).status == 422
