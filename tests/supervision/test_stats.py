"""Statistics: the figures of any period and filter equal a plain recomputation over the ticket
rows, as the rollups follow tickets being taken, called, finished, transferred, cancelled and
rated; a supervisor sees only their area; exports carry the same figures."""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Any
from zoneinfo import ZoneInfo

import openpyxl
import pytest
from sqlalchemy import text

from core.db import Database, utcnow
from core.settings import Settings
from supervision import rollup
from tests.signaling.helpers import gaoqiao_setup, new_resident, take_payload
from tests.supervision.stats_raw import assert_matches, day_range, recompute
from web.demo.history import seed_history

ZONE = ZoneInfo("Asia/Shanghai")
HISTORY_DAYS = 6
PER_YEAR = 40_000  # about 160 tickets a working day across the district: quick, yet every shape


def today() -> dt.date:
    return utcnow().astimezone(ZONE).date()


@pytest.fixture
async def history(settings: Settings) -> None:
    """A few days of the demo district's history, written (and rolled up) before the app starts:
    ask for it before `as_user`."""
    db = Database(settings.effective_database_url)
    try:
        summary = await seed_history(db, settings, days=HISTORY_DAYS, per_year=PER_YEAR)
        assert summary.tickets > 100 and summary.transfers >= 0
    finally:
        await db.dispose()


async def roll(settings: Settings, **kw: Any) -> rollup.RollReport:
    db = Database(settings.effective_database_url)
    try:
        async with db.session() as s:
            report = await rollup.roll(session=s, settings=settings, force=True, **kw)
            await s.commit()
        return report
    finally:
        await db.dispose()


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


def _period(days: int = HISTORY_DAYS) -> dict[str, str]:
    return {
        "period": "custom",
        "start": (today() - dt.timedelta(days=days)).isoformat(),
        "end": today().isoformat(),
    }


async def stats(user: Any, **params: Any) -> dict[str, Any]:
    query = {k: str(v) for k, v in {**_period(), **params}.items() if v is not None}
    resp = await user.get("/api/v1/statistics", params=query)
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def _lines(settings: Settings, prefix: str = "") -> dict[str, int]:
    rows = await _sql(settings, "SELECT code, id FROM window_line")
    return {c: i for c, i in rows if c.startswith(prefix)}


def _range() -> tuple[dt.datetime, dt.datetime]:
    return day_range(today() - dt.timedelta(days=HISTORY_DAYS), today())


async def test_history_figures_equal_the_raw_rows_for_every_filter(
    settings: Settings, history: None, as_user: Any
) -> None:
    url = settings.effective_database_url
    boss = await as_user("supervisor")
    start, end = _range()

    everything = await stats(boss)
    assert everything["lines"] == len(await _lines(settings))
    raw = await recompute(url, start=start, end=end)
    assert raw["taken"] > 100 and raw["rated"] > 0 and raw["calls"] > 0
    assert_matches(everything["totals"], raw)
    assert everything["as_of"] is not None
    # The daily series and the breakdown add up to the totals.
    assert sum(everything["daily"]["taken"]) == raw["taken"]
    assert sum(r["figures"]["taken"] for r in everything["breakdown"]) == raw["taken"]
    assert sum(map(sum, everything["heatmap"]["counts"])) == raw["taken"]
    # Follow-ups, home visits and deliveries are read live from their own records.
    d = settings.effective_database_url.startswith("postgresql")
    bounds = (
        {"a": start, "b": end}
        if d
        else {
            k: v.replace(tzinfo=None).isoformat(" ", "microseconds")
            for k, v in {"a": start, "b": end}.items()
        }
    )
    opened = await _sql(
        settings,
        "SELECT count(*) FROM rating_followup WHERE rated_at >= :a AND rated_at < :b",
        **bounds,
    )
    assert everything["followups"]["opened"] == opened[0][0] > 0
    assert everything["home_visits"] == {
        "done": 0,
        "scheduled": 0,
        "requests": 0,
        "by_community": [],
    }
    assert everything["deliveries"] == {"delivered": 0, "failed_attempts": 0, "open": 0}

    lines = await _lines(settings)
    town = {c: i for c, i in lines.items() if c.startswith("T07-")}
    t07 = (await _sql(settings, "SELECT id FROM site WHERE code = 'T07'"))[0][0]
    by_town = await stats(boss, site_id=t07)
    assert_matches(
        by_town["totals"], await recompute(url, start=start, end=end, line_ids=[*town.values()])
    )

    line = lines["T07-civil_affairs"]
    one = await stats(boss, line_id=line)
    assert_matches(one["totals"], await recompute(url, start=start, end=end, line_ids=[line]))

    dept = [i for c, i in lines.items() if c.endswith("-household")]
    by_dept = await stats(boss, department="household")
    assert_matches(by_dept["totals"], await recompute(url, start=start, end=end, line_ids=dept))

    busy_item, busy_clerk = (
        await _sql(
            settings,
            "SELECT item_id, called_by FROM ticket WHERE called_by IS NOT NULL "
            "GROUP BY item_id, called_by ORDER BY count(*) DESC LIMIT 1",
        )
    )[0]
    by_item = await stats(boss, item_id=busy_item)
    assert by_item["followups"]["available"] is False  # not broken down by item: it says so
    assert_matches(by_item["totals"], await recompute(url, start=start, end=end, item_id=busy_item))
    by_clerk = await stats(boss, clerk_id=busy_clerk)
    assert by_clerk["totals"]["taken"] > 0
    assert_matches(
        by_clerk["totals"], await recompute(url, start=start, end=end, clerk_id=busy_clerk)
    )
    both = await stats(boss, clerk_id=busy_clerk, item_id=busy_item)
    assert_matches(
        both["totals"],
        await recompute(url, start=start, end=end, item_id=busy_item, clerk_id=busy_clerk),
    )

    # One day of the period, and every breakdown of it sums to the same totals.
    day = (today() - dt.timedelta(days=2)).isoformat()
    single = await stats(boss, period="day", date=day, start=None, end=None)
    d0, d1 = day_range(dt.date.fromisoformat(day), dt.date.fromisoformat(day))
    assert_matches(single["totals"], await recompute(url, start=d0, end=d1))
    for by in ("hall", "department", "item", "clerk", "day"):
        table = await stats(boss, by=by)
        assert sum(r["figures"]["taken"] for r in table["breakdown"]) == raw["taken"], by


async def test_a_town_supervisor_sees_only_the_town(
    settings: Settings, history: None, as_user: Any
) -> None:
    url = settings.effective_database_url
    head = await as_user("supervisor.t07")
    start, end = _range()
    town = await _lines(settings, "T07-")
    mine = await stats(head)
    assert mine["lines"] == len(town)
    assert_matches(
        mine["totals"], await recompute(url, start=start, end=end, line_ids=[*town.values()])
    )
    assert {r["key"] for r in mine["breakdown"]} == {str(i) for i in town.values()}

    elsewhere_line = (await _lines(settings, "T01-"))["T01-civil_affairs"]
    t01 = (await _sql(settings, "SELECT id FROM site WHERE code = 'T01'"))[0][0]
    other_clerk = (await _sql(settings, "SELECT id FROM staff WHERE username = 'clerk.t01.m'"))[0][
        0
    ]
    own_clerk = (await _sql(settings, "SELECT id FROM staff WHERE username = 'clerk'"))[0][0]
    for params in ({"line_id": elsewhere_line}, {"site_id": t01}, {"clerk_id": other_clerk}):
        resp = await head.get("/api/v1/statistics", params={**_period(), **params})
        assert resp.status == 404, (params, await resp.text())
        export = await head.get("/api/v1/statistics/export", params={**_period(), **params})
        assert export.status == 404
    assert (await head.get("/api/v1/statistics", params={"clerk_id": own_clerk})).status == 200

    options = await (await head.get("/api/v1/statistics/options")).json()
    assert {o["id"] for o in options["lines"]} == set(town.values())
    assert own_clerk in {o["id"] for o in options["clerks"]}
    assert other_clerk not in {o["id"] for o in options["clerks"]}
    assert [o["name"] for o in options["sites"]] == ["高桥镇"]

    clerk = await as_user("clerk")
    refused = await clerk.get("/api/v1/statistics")
    assert refused.status == 403


async def test_the_rollup_follows_live_tickets(sock: Any, settings: Settings, as_user: Any) -> None:
    """Taken, called, served, transferred, cancelled and rated: after each round the figures
    equal the raw rows again, on the line each transfer left and on the one it reached."""
    url = settings.effective_database_url
    worker = await sock("worker")
    clerk = await sock("clerk")
    household_clerk = await sock("clerk.t07.h")
    setup = await gaoqiao_setup(worker.user)
    lines = await _lines(settings, "T07-")
    civil, household = lines["T07-civil_affairs"], lines["T07-household"]
    residents = [await new_resident(worker.user, years=60, seq=301 + 2 * i) for i in range(3)]
    a, b, c = [await worker.ok("ticket:take", take_payload(setup, r)) for r in residents]
    boss = await as_user("supervisor")
    params = {"period": "day"}
    start, end = day_range(today(), today())

    async def check(line_ids: list[int]) -> dict[str, Any]:
        got = await stats(boss, **params, line_id=line_ids[0]) if len(line_ids) == 1 else None
        raw = await recompute(url, start=start, end=end, line_ids=line_ids)
        if got is not None:
            assert_matches(got["totals"], raw)
        return raw

    first = await roll(settings)
    assert first.claimed
    raw = await check([civil])
    assert raw["taken"] == 3 and raw["open"] == 3

    called = await clerk.ok("queue:call_next")
    assert called["ticket"]["id"] == a["id"]
    await worker.ok("ticket:answer", {"ticket_id": a["id"]})
    call_id = called["call"]["call_id"]
    await worker.ok("call:state", {"call_id": call_id, "state": "connected"})
    await clerk.ok("call:stats", {"call_id": call_id, "rtt_ms": 480.0, "packet_loss_pct": 1.0})
    await clerk.ok(
        "ticket:finish", {"ticket_id": a["id"], "outcome": "returned", "reason": "材料不全"}
    )
    moved = await clerk.ok("queue:call_next")
    assert moved["ticket"]["id"] == b["id"]
    await clerk.ok(
        "ticket:transfer", {"ticket_id": b["id"], "line_id": household, "reason": "属户籍事项"}
    )
    await worker.ok("ticket:cancel", {"ticket_id": c["id"]})
    rated = await worker.user.post(
        f"/api/v1/cases/{a['case_id']}/rating", json={"score": 2, "comment": "等太久"}
    )
    assert rated.status == 201, await rated.text()

    second = await roll(settings)
    assert second.claimed and second.day_lines >= 2
    raw = await check([civil])
    assert (raw["served"], raw["cancelled"], raw["transferred"], raw["open"]) == (1, 1, 1, 0)
    assert raw["rated"] == 1 and raw["levels"][3] == 1  # 不满意
    assert raw["calls_poor"] == 1  # 480 ms round trip: past the limit
    raw = await check([household])
    assert raw["taken"] == 1 and raw["open"] == 1 and raw["transferred"] == 0

    again = await household_clerk.ok("queue:call_next")
    assert again["ticket"]["id"] == b["id"]
    await household_clerk.ok(
        "ticket:finish", {"ticket_id": b["id"], "outcome": "returned", "reason": "改约"}
    )
    await roll(settings)
    raw = await check([household])
    assert raw["served"] == 1 and raw["called"] == 1
    both = await stats(boss, **params, site_id=setup["point"]["parent_id"])
    assert_matches(
        both["totals"], await recompute(url, start=start, end=end, line_ids=[*lines.values()])
    )

    # Nothing changed: a round recomputes only what was pending (nothing now) and the newest
    # slots, and writes the same figures.
    quiet = await roll(settings)
    assert quiet.claimed
    assert (await stats(boss, **params))["totals"] == (await stats(boss, **params))["totals"]
    assert_matches(
        (await stats(boss, **params))["totals"], await recompute(url, start=start, end=end)
    )


async def test_one_round_at_a_time_across_nodes(settings: Settings) -> None:
    """Two nodes tick together: one does the round, the other finds it done (or held)."""
    import asyncio

    async def node(name: str) -> rollup.RollReport:
        db = Database(settings.effective_database_url)
        try:
            async with db.session() as s:
                report = await rollup.roll(session=s, settings=settings, node_id=name)
                await asyncio.sleep(0.2)  # hold the round open while the other node tries
                await s.commit()
            return report
        finally:
            await db.dispose()

    reports = await asyncio.gather(node("a"), node("b"))
    assert sorted(r.claimed for r in reports) == [False, True]
    who = await _sql(settings, "SELECT rolled_by_node FROM stats_rollup")
    assert who[0][0] in ("a", "b")


async def test_exports_carry_the_figures(settings: Settings, history: None, as_user: Any) -> None:
    boss = await as_user("supervisor")
    figures = await stats(boss, by="department")
    resp = await boss.get("/api/v1/statistics/export", params={**_period(), "by": "department"})
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/csv")
    assert "attachment" in resp.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO((await resp.read()).decode("utf-8-sig"))))
    assert rows[0][:3] == ["部门", "所属", "取号"]
    assert rows[-1][0] == "合计"
    assert int(rows[-1][2]) == figures["totals"]["taken"]
    assert len(rows) == len(figures["breakdown"]) + 2

    resp = await boss.get(
        "/api/v1/statistics/export",
        params={**_period(), "format": "xlsx", "lang": "en", "by": "day"},
    )
    assert resp.status == 200
    book = openpyxl.load_workbook(io.BytesIO(await resp.read()), read_only=True)
    sheet = list(book["figures"].iter_rows(values_only=True))
    assert sheet[1][:3] == ("day", "part of", "taken")
    assert sheet[-1][0] == "total" and sheet[-1][2] == figures["totals"]["taken"]
    daily = list(book["daily"].iter_rows(values_only=True))
    assert len(daily) == len(figures["daily"]["day"]) + 1
    audited = await _sql(settings, "SELECT count(*) FROM audit_log WHERE action = 'stats.export'")
    assert audited[0][0] == 2


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"period": "custom"}, 422),
        ({"period": "custom", "start": "2026-03-02", "end": "2026-03-01"}, 422),
        ({"period": "custom", "start": "2025-01-01", "end": "2026-01-05"}, 422),
        ({"date": "1900-01-01"}, 422),
        ({"by": "nothing"}, 422),
        ({"department": "nope"}, 404),
        ({"item_id": "999999"}, 404),
        ({"clerk_id": "999999"}, 404),
        ({"site_id": "99999999999"}, 422),
    ],
)
async def test_bad_filters_are_refused_plainly(
    as_user: Any, params: dict[str, str], status: int
) -> None:
    boss = await as_user("supervisor")
    resp = await boss.get("/api/v1/statistics", params=params)
    assert resp.status == status, await resp.text()
    assert "error" in await resp.json()
    bad_format = await boss.get("/api/v1/statistics/export", params={"format": "pdf"})
    assert bad_format.status == 422


async def test_the_rollup_is_the_nodes_periodic_work(client: Any, settings: Settings) -> None:
    """Registered on the node's job runner: one tick rolls up, a second in the same period
    does not run it again."""
    from web.app import JOBS

    jobs = client.server.app[JOBS]
    assert rollup.JOB in jobs.names
    first = {o.name: o for o in await jobs.tick()}
    assert str(first[rollup.JOB].status) in ("finished", "done")
    assert (await _sql(settings, "SELECT rolled_at FROM stats_rollup"))[0][0] is not None
    again = {o.name: o for o in await jobs.tick()}
    assert rollup.JOB not in again or str(again[rollup.JOB].status) in ("done", "held")
