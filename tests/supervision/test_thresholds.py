"""Alert thresholds edited by the area's supervisors: per line, or per department at a site of
the area; a line's own values win over its department's, the nearest site's over higher ones,
and the settings' defaults fill the rest. Validated (red never below yellow, sane ranges),
audited, and outside the area a 404; the sweeps work to what was set."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from core.db import utcnow
from core.settings import Settings
from httpapi import keys
from supervision.sweeps import sweep_alerts, sweep_line_alerts
from tests.conftest import base_settings
from tests.signaling.helpers import Sock, gaoqiao_setup, new_resident, take_payload


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    """The app's own alert loop stays out of the way: these tests sweep when they mean to."""
    return base_settings(db_url, tmp_path / "data", alert_sweep_interval_seconds=3600)


def _line(view: dict[str, Any], code_name: str) -> dict[str, Any]:
    return next(ln for ln in view["lines"] if ln["line_name"] == code_name)


async def test_a_town_head_sets_a_lines_wait_threshold_and_the_sweep_works_to_it(
    client: Any, sock: Any, as_user: Any, settings: Settings
) -> None:
    head = await as_user("supervisor.t07")
    view = await (await head.get("/api/v1/thresholds")).json()
    assert view["defaults"] == {
        "wait_alert_seconds": 900,
        "waiting_yellow": 10,
        "waiting_red": 20,
        "taken_yellow": 40,
        "taken_red": 80,
    }
    assert view["window_minutes"] == 60
    assert view["lines"] and all(ln["line_name"].startswith("高桥镇") for ln in view["lines"])
    assert [s["name"] for s in view["sites"]] == ["高桥镇"]
    line = _line(view, "高桥镇·民政")
    assert line["effective"] == view["defaults"] and set(line["source"].values()) == {"default"}

    url = f"/api/v1/thresholds/lines/{line['line_id']}"
    resp = await head.request("PUT", url, json={"wait_alert_seconds": 300, "waiting_red": 12})
    assert resp.status == 200, await resp.text()
    got = await resp.json()
    assert got["own"]["wait_alert_seconds"] == 300 and got["own"]["waiting_yellow"] is None
    assert (got["effective"]["wait_alert_seconds"], got["effective"]["waiting_red"]) == (300, 12)
    assert got["source"]["wait_alert_seconds"] == "line"
    assert got["source"]["waiting_yellow"] == "default"

    # A ticket waiting 6 minutes is overdue on this line now (not at the default 15).
    worker = await sock("worker")
    setup = await gaoqiao_setup(worker.user)
    await worker.ok("ticket:take", take_payload(setup, await new_resident(worker.user, seq=401)))
    app = client.app

    async def sweep(minutes: float) -> list[int]:
        report = await sweep_alerts(
            db=app[keys.DB],
            settings=settings,
            sms=app[keys.SMS],
            deliver=app[keys.DELIVER],
            node_id="test",
            now=utcnow() + dt.timedelta(minutes=minutes),
        )
        return report.raised

    assert await sweep(4) == []
    assert len(await sweep(6)) == 1
    [alert] = await (await head.get("/api/v1/alerts")).json()
    assert alert["threshold_seconds"] == 300

    # Wrong values change nothing and say why.
    for body, code in (
        # (a PUT says the line's whole own set: here red 12 stays, and yellow would pass it)
        ({"wait_alert_seconds": 300, "waiting_red": 12, "waiting_yellow": 15}, "threshold.order"),
        ({"waiting_red": 8}, "threshold.order"),  # under the default yellow 10
        ({"taken_yellow": 50, "taken_red": 45}, "threshold.order"),
        ({"wait_alert_seconds": 10}, "validation"),  # under a minute
        ({"waiting_red": 0}, "validation"),
        ({"waiting_red": 5000}, "validation"),
        ({"waiting_red": "many"}, "validation"),
        ({"wait": 5}, "validation"),
    ):
        resp = await head.request("PUT", url, json=body)
        assert resp.status == 422, (body, await resp.text())
        assert (await resp.json())["error"]["code"] == code, body
    after = _line(await (await head.get("/api/v1/thresholds")).json(), "高桥镇·民政")
    assert after["own"] == got["own"]

    # Outside the area: another town's line, an unknown line.
    other = await as_user("supervisor.t01")
    assert (await other.request("PUT", url, json={"waiting_red": 30})).status == 404
    unknown = "/api/v1/thresholds/lines/999999"
    assert (await head.request("PUT", unknown, json={"waiting_red": 30})).status == 404
    theirs = await (await other.get("/api/v1/thresholds")).json()
    assert line["line_id"] not in {ln["line_id"] for ln in theirs["lines"]}
    assert (await (await as_user("clerk")).get("/api/v1/thresholds")).status == 403

    # All empty: the line keeps no values of its own.
    resp = await head.request("PUT", url, json={})
    assert (await resp.json())["effective"] == view["defaults"]

    admin = await as_user("admin")
    q = {"target_type": "line_threshold"}
    log = await (await admin.get("/api/v1/audit", params=q)).json()
    assert [e["action"] for e in log] == ["threshold.set", "threshold.set"]
    first = log[-1]["detail"]
    assert first == {"before": {}, "after": {"wait_alert_seconds": 300, "waiting_red": 12}}


async def test_a_departments_thresholds_apply_to_its_lines_below_the_site_and_a_line_wins(
    client: Any, as_user: Any, settings: Settings
) -> None:
    district = await as_user("supervisor")
    town = await as_user("supervisor.t07")
    view = await (await district.get("/api/v1/thresholds")).json()
    sites = {s["name"]: int(s["id"]) for s in view["sites"]}
    assert "海川区云服务中心" in sites and "高桥镇" in sites and len(sites) >= 18
    assert "civil_affairs" in {d["id"] for d in view["department_names"]}

    # The district sets 民政 everywhere; the town sets its own people-waiting levels.
    d_url = f"/api/v1/thresholds/departments/{sites['海川区云服务中心']}/civil_affairs"
    resp = await district.request("PUT", d_url, json={"waiting_yellow": 6, "waiting_red": 9})
    assert resp.status == 200, await resp.text()
    t_url = f"/api/v1/thresholds/departments/{sites['高桥镇']}/civil_affairs"
    resp = await town.request("PUT", t_url, json={"waiting_yellow": 3})
    assert resp.status == 200, await resp.text()
    row = await resp.json()
    assert row["own"]["waiting_yellow"] == 3
    assert (row["inherited"]["waiting_yellow"], row["inherited"]["waiting_red"]) == (6, 9)
    # The town may not set the district's, nor another town's; nor a department that is none.
    for url in (d_url, t_url.replace(str(sites["高桥镇"]), str(sites["海川街道"]))):
        resp = await town.request("PUT", url, json={"waiting_yellow": 2})
        assert resp.status == 404, url
    bogus = t_url.replace("civil_affairs", "no_such_dept")
    assert (await town.request("PUT", bogus, json={"waiting_yellow": 2})).status == 404
    # Red below yellow once inherited values are counted: the town's yellow 3 over red 2.
    resp = await town.request("PUT", t_url, json={"waiting_yellow": 3, "waiting_red": 2})
    assert resp.status == 422

    mine = await (await town.get("/api/v1/thresholds")).json()
    civil = _line(mine, "高桥镇·民政")
    assert (civil["effective"]["waiting_yellow"], civil["effective"]["waiting_red"]) == (3, 9)
    assert civil["source"]["waiting_yellow"] == f"department:{sites['高桥镇']}"
    assert civil["source"]["waiting_red"] == f"department:{sites['海川区云服务中心']}"
    assert civil["source"]["taken_yellow"] == "default"
    assert [(d["site_name"], d["department"]) for d in mine["departments"]] == [
        ("高桥镇", "civil_affairs")
    ]  # the district's row is not the town's to see
    other_line = next(ln for ln in mine["lines"] if ln["department"] != "civil_affairs")
    assert other_line["effective"]["waiting_yellow"] == 10
    # A district line of 民政 follows the district's row only.
    dview = await (await district.get("/api/v1/thresholds")).json()
    assert _line(dview, "海川区·民政")["effective"]["waiting_yellow"] == 6

    # The line's own value wins; a change that would put one line's red under its yellow is
    # refused, naming the line.
    l_url = f"/api/v1/thresholds/lines/{civil['line_id']}"
    resp = await town.request("PUT", l_url, json={"waiting_yellow": 2})
    assert (await resp.json())["effective"]["waiting_yellow"] == 2
    resp = await district.request("PUT", d_url, json={"waiting_yellow": 1, "waiting_red": 1})
    assert resp.status == 422 and "高桥镇·民政" in (await resp.json())["error"]["message"]

    # The line sweep works to it: 2 waiting is yellow on 高桥镇·民政 now.
    worker = await as_user("worker")
    point = await Sock(worker).connect()
    try:
        setup = await gaoqiao_setup(worker)
        for seq in (411, 413):
            await point.ok("ticket:take", take_payload(setup, await new_resident(worker, seq=seq)))
    finally:
        await point.close()
    app = client.app
    report = await sweep_line_alerts(
        db=app[keys.DB],
        settings=settings,
        sms=app[keys.SMS],
        deliver=app[keys.DELIVER],
        node_id="test",
    )
    assert len(report.raised) == 1
    [alert] = await (await town.get("/api/v1/line-alerts")).json()
    assert (alert["measure"], alert["level"], alert["threshold"]) == ("waiting", "yellow", 2)

    # Resetting the town's row: the district's applies again.
    resp = await town.request("PUT", t_url, json={})
    assert resp.status == 200
    mine = await (await town.get("/api/v1/thresholds")).json()
    assert mine["departments"] == []
    admin = await as_user("admin")
    log = await (
        await admin.get("/api/v1/audit", params={"target_type": "department_threshold"})
    ).json()
    assert len(log) == 3
