"""A supervisor's area: a town's head sees the town's lines, the district's supervisor every
line; a line elsewhere cannot even be watched, and every alert, threshold and follow-up route
answers 404 outside the area, whose events reach only the area's supervisors."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from core.db import Database, utcnow
from core.models import WindowLine
from core.settings import Settings
from httpapi import keys
from supervision.models import LineThreshold
from supervision.sweeps import sweep_alerts, sweep_followups, sweep_line_alerts
from tests.conftest import base_settings
from tests.signaling.helpers import fill_queue
from tests.supervision.test_followups import LINE, _rated

# The families of supervision's events (alert:*, line_alert:*, followup:*, followup_alert:*).
KINDS = {"alert", "line_alert", "followup", "followup_alert"}


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    """The app's own alert loop stays out of the way: these tests sweep when they mean to."""
    return base_settings(db_url, tmp_path / "data", alert_sweep_interval_seconds=3600)


async def test_a_town_supervisor_sees_only_the_towns_lines(sock: Any, as_user: Any) -> None:
    town = await as_user("supervisor.t07")
    district = await as_user("supervisor")
    everything = await (await town.get("/api/v1/lines")).json()  # the public list
    mine = await (await town.get("/api/v1/lines", params={"mine": "true"})).json()
    assert mine and len(mine) < len(everything)
    assert all(ln["code"].startswith("T07-") for ln in mine), [ln["code"] for ln in mine]
    all_of_district = await (await district.get("/api/v1/lines", params={"mine": "true"})).json()
    assert len(all_of_district) == len(everything)

    head = await sock("supervisor.t07")
    elsewhere = next(ln for ln in everything if not ln["code"].startswith("T07-"))
    err = await head.err("line:watch", {"line_ids": [mine[0]["id"], elsewhere["id"]]})
    assert err["code"] == "not_found"
    snap = await head.ok("line:watch", {"line_ids": [ln["id"] for ln in mine]})
    assert [s["line_id"] for s in snap] == [ln["id"] for ln in mine]
    # The district's supervisor may watch any line.
    boss = await sock("supervisor")
    assert len(await boss.ok("line:watch", {"line_ids": [elsewhere["id"]]})) == 1


async def test_every_alert_threshold_and_follow_up_route_is_404_outside_the_area(
    client: Any, sock: Any, as_user: Any, settings: Settings
) -> None:
    """One alert of each kind, a follow-up and thresholds on 高桥镇·民政: another town's head
    lists none of them and reaches none of them; the events go to this area's supervisors."""
    url = settings.effective_database_url
    head, district, other = (
        await sock("supervisor.t07"),
        await sock("supervisor"),
        await sock("supervisor.t01"),
    )
    await fill_queue(url, clerks=0, tickets=2, prefix="sc")
    db = Database(url)
    try:
        async with db.session() as s:
            line = (await s.exec(select(WindowLine).where(WindowLine.code == LINE))).one()
            s.add(LineThreshold(line_id=line.id or 0, waiting_yellow=1, waiting_red=50))
            await s.commit()
    finally:
        await db.dispose()
    await _rated(settings, [(1, False, True, utcnow() - dt.timedelta(days=20))], "SR")
    app = client.app
    kw = {
        "db": app[keys.DB],
        "settings": settings,
        "sms": app[keys.SMS],
        "deliver": app[keys.DELIVER],
        "node_id": "test",
    }
    await sweep_alerts(**kw, now=utcnow() + dt.timedelta(minutes=16))
    await sweep_line_alerts(**kw)
    await sweep_followups(**kw)
    for event in ("followup:opened", "followup_alert:raised", "line_alert:raised"):
        await head.wait(event)
        await district.wait(event)
    await head.wait("alert:raised")  # wait alerts: the line's heads

    me = head.user
    ids = {}
    for kind in ("alerts", "line-alerts", "followup-alerts", "followups"):
        rows = await (await me.get(f"/api/v1/{kind}")).json()
        assert rows, kind
        ids[kind] = rows[0]["id"]
    view = await (await me.get("/api/v1/thresholds")).json()
    site = int(view["sites"][0]["id"])
    routes = [
        *(
            ("POST", f"/api/v1/{kind}/{ids[kind]}/{step}", {"note": "x"})
            for kind in ("alerts", "line-alerts", "followup-alerts")
            for step in ("acknowledge", "resolve")
        ),
        ("GET", f"/api/v1/followups/{ids['followups']}", None),
        ("POST", f"/api/v1/followups/{ids['followups']}/record", {"rectification": "x"}),
        ("POST", f"/api/v1/followups/{ids['followups']}/contact", None),
        ("PUT", f"/api/v1/thresholds/lines/{line.id}", {"waiting_red": 60}),
        ("PUT", f"/api/v1/thresholds/departments/{site}/civil_affairs", {"waiting_red": 60}),
    ]
    them = other.user
    for method, path, body in routes:
        resp = await them.request(method, path, json=body)
        assert resp.status == 404, (method, path, resp.status)
    for kind in ("alerts", "line-alerts", "followup-alerts", "followups"):
        assert await (await them.get(f"/api/v1/{kind}", params={"open": "false"})).json() == []
    theirs = await (await them.get("/api/v1/thresholds")).json()
    assert line.id not in {ln["line_id"] for ln in theirs["lines"]}
    assert str(site) not in {s["id"] for s in theirs["sites"]}
    counts = await (await them.get("/api/v1/alerts/counts")).json()
    assert (counts["red"], counts["yellow"], counts["wait"], counts["followups_opened"]) == (
        0,
        0,
        0,
        0,
    )
    heard = {e for e, data in other.heard.items() if data and e.split(":")[0] in KINDS}
    assert not heard, heard
