"""Bad-rating follow-ups (差评回访整改): every rating of 1 or 2 and every written complaint gets
one follow-up, also those written while no sweep ran; the deadline counts working days with
the public holidays; the line's heads record the call-back and the rectification and close it;
an overdue follow-up is an alert, raised once across nodes and restarts, on the same lifecycle
as the other alerts; all of it scoped to the area's supervisors."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import text
from sqlmodel import col, func, select

from core.db import Database, utcnow
from core.events import deliver_nowhere
from core.models import Case, CaseRating, CaseStatus, Site, WindowLine
from core.settings import Settings
from httpapi import keys
from outreach.models import SmsMessage
from outreach.sms import RecordingSmsGateway
from supervision import followups
from supervision.followups import add_working_days, deadline
from supervision.models import FollowupAlert, RatingFollowup
from supervision.sweeps import sweep_followups
from tests.conftest import User, base_settings
from tests.signaling.helpers import Sock, gaoqiao_setup, new_resident, take_payload
from tests.signaling.nodes import Node, cluster_env

HEAD_PHONE = "13700137002"
LINE = "T07-civil_affairs"  # 高桥镇·民政, supervised by supervisor.t07


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    """The app's own alert loop stays out of the way: these tests sweep when they mean to."""
    return base_settings(db_url, tmp_path / "data", alert_sweep_interval_seconds=3600)


# -- deadlines


def test_working_days_skip_public_holidays_and_count_adjusted_workdays() -> None:
    # National Day 2025: 1-8 October off; Saturday 11 October an adjusted workday.
    assert add_working_days(dt.date(2025, 9, 30), 5) == (dt.date(2025, 10, 14), "holidays")
    # Spring Festival 2026 (15-23 February off, Saturday 28 February a workday).
    assert add_working_days(dt.date(2026, 2, 13), 1) == (dt.date(2026, 2, 14), "holidays")
    assert add_working_days(dt.date(2026, 2, 14), 1) == (dt.date(2026, 2, 24), "holidays")
    # An ordinary week: Friday + 5 working days is the next Friday.
    assert add_working_days(dt.date(2026, 11, 6), 5) == (dt.date(2026, 11, 13), "holidays")


def test_past_the_calendars_last_year_it_counts_weekdays_and_says_so() -> None:
    assert add_working_days(dt.date(2031, 1, 3), 5) == (dt.date(2031, 1, 10), "weekdays")
    # The rating's local day decides: 20:00 UTC on a Thursday is Friday in Shanghai.
    due, due_at, calendar = deadline(
        dt.datetime(2031, 1, 2, 20, 0, tzinfo=dt.UTC), 5, "Asia/Shanghai"
    )
    assert (due, calendar) == (dt.date(2031, 1, 10), "weekdays")
    assert due_at == dt.datetime(2031, 1, 10, 16, 0, tzinfo=dt.UTC)  # midnight after, Shanghai


# -- helpers


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


async def _rated(
    settings: Settings, specs: list[tuple[int, bool, bool, dt.datetime]], prefix: str
) -> list[int]:
    """Finished cases rated as given, written straight to the tables (no sweep runs):
    (score, complaint, on the 高桥镇·民政 line or none, rated at)."""
    db = Database(settings.effective_database_url)
    try:
        async with db.session() as s:
            line = (await s.exec(select(WindowLine).where(WindowLine.code == LINE))).one()
            point = (await s.exec(select(Site).where(Site.code == "T07-C01"))).one()
            cases = [
                Case(
                    number=f"{prefix}{i:06d}",
                    item_id=1,
                    site_id=point.id or 0,
                    line_id=line.id if on_line else None,
                    status=CaseStatus.completed,
                )
                for i, (_score, _complaint, on_line, _at) in enumerate(specs)
            ]
            s.add_all(cases)
            await s.flush()
            s.add_all(
                CaseRating(
                    case_id=c.id or 0,
                    score=score,
                    complaint=complaint,
                    comment="等太久了" if complaint else "",
                    rated_at=at,
                    line_id=c.line_id,
                )
                for c, (score, complaint, _on_line, at) in zip(cases, specs, strict=True)
            )
            await s.commit()
            return [c.id or 0 for c in cases]
    finally:
        await db.dispose()


async def _node(
    settings: Settings, node: str, *, minutes: float = 0, full: bool = False
) -> followups.FollowupReport:
    """One follow-up round from a node of its own (its own engine and pool)."""
    db = Database(settings.effective_database_url)
    try:
        return await sweep_followups(
            db=db,
            settings=settings,
            sms=RecordingSmsGateway(),
            deliver=deliver_nowhere,
            node_id=node,
            now=utcnow() + dt.timedelta(minutes=minutes),
            full=full,
        )
    finally:
        await db.dispose()


async def _needing(settings: Settings) -> tuple[set[int], set[int]]:
    """The cases whose rating needs a follow-up (by raw SQL), and those that have one."""
    need = await _sql(settings, "SELECT case_id FROM case_rating WHERE score <= 2 OR complaint")
    have = await _sql(settings, "SELECT case_id FROM rating_followup")
    assert len(have) == len({r[0] for r in have})
    return {r[0] for r in need}, {r[0] for r in have}


async def _count(settings: Settings, table: Any, *where: Any) -> int:
    db = Database(settings.effective_database_url)
    try:
        async with db.session() as s:
            return int((await s.exec(select(func.count()).select_from(table).where(*where))).one())
    finally:
        await db.dispose()


# -- every bad rating gets one, across nodes and restarts


async def test_every_bad_rating_gets_exactly_one_follow_up_even_if_no_sweep_ran(
    settings: Settings,
) -> None:
    now = utcnow()
    ago = [now - dt.timedelta(days=d, minutes=i) for i, d in enumerate((40, 9, 3, 1, 1, 0, 0))]
    specs = [
        (1, False, True, ago[0]),  # very poor, long ago
        (2, False, True, ago[1]),  # poor
        (3, False, True, ago[2]),  # fair: nothing
        (5, True, True, ago[3]),  # very good, with a written complaint: a follow-up
        (4, False, False, ago[4]),  # good, a case without a line: nothing
        (1, False, False, ago[5]),  # very poor on a case without a line
        (5, False, True, ago[6]),  # very good: nothing
    ]
    cases = await _rated(settings, specs, "FU")
    need, have = await _needing(settings)
    assert {cases[i] for i in (0, 1, 3, 5)} <= need
    assert not {cases[i] for i in (2, 4, 6)} & need

    # Three nodes start at once (a first round reads every rating): each is opened once.
    reports = await asyncio.gather(*(_node(settings, n, full=True) for n in ("a", "b", "c")))
    assert sum(len(r.opened) for r in reports) == len(need)
    need, have = await _needing(settings)
    assert need == have  # 100%

    # A later round reads the recent ratings only: a new one is found, nothing else moves.
    [late] = await _rated(settings, [(2, False, True, utcnow())], "FV")
    assert len((await _node(settings, "a")).opened) == 1
    # A rating stamped long before the newest follow-up (written while every node was down,
    # committed late): a restarted node's first, full round finds it.
    [stale] = await _rated(settings, [(1, False, True, now - dt.timedelta(days=20))], "FW")
    assert (await _node(settings, "a")).opened == []
    restarted = await _node(settings, "a-restarted", full=True)
    assert len(restarted.opened) == 1
    need, have = await _needing(settings)
    assert need == have and {late, stale} <= have
    assert (await _node(settings, "b-restarted", full=True)).opened == []

    lines = dict(await _sql(settings, "SELECT case_id, line_id FROM rating_followup"))
    assert lines[cases[5]] is None  # no line: the supervisors of the case's site have it
    audit = await _sql(settings, "SELECT count(*) FROM audit_log WHERE action = 'followup.open'")
    assert audit[0][0] == len(have)


async def test_a_deadline_past_the_holiday_calendar_is_counted_on_weekdays_and_logged(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    [case] = await _rated(
        settings, [(1, False, True, dt.datetime(2031, 1, 2, 20, 0, tzinfo=dt.UTC))], "FX"
    )
    with caplog.at_level(logging.WARNING, logger="cloudwindow.supervision"):
        report = await _node(settings, "a", full=True)
    assert report.weekdays == 1
    assert any("Monday to Friday" in r.getMessage() for r in caplog.records)
    [(due, calendar)] = await _sql(
        settings, "SELECT due_date, calendar FROM rating_followup WHERE case_id = :c", c=case
    )
    assert (str(due)[:10], calendar) == ("2031-01-10", "weekdays")


# -- the heads' side


async def _finished_case(worker: Any, clerk: Any, seq: int) -> int:
    """A real case: number taken, called, answered, returned by the clerk."""
    setup = await gaoqiao_setup(worker.user)
    resident = await new_resident(worker.user, seq=seq, phone="13900139000")
    ticket = await worker.ok("ticket:take", take_payload(setup, resident))
    await clerk.ok("queue:call_next")
    await worker.ok("ticket:answer", {"ticket_id": ticket["id"]})
    await clerk.ok(
        "ticket:finish", {"ticket_id": ticket["id"], "outcome": "returned", "reason": "缺少证明"}
    )
    return int(ticket["case_id"])


async def _sweep(app: Any, settings: Settings, *, minutes: float = 0) -> followups.FollowupReport:
    return await sweep_followups(
        db=app[keys.DB],
        settings=settings,
        sms=app[keys.SMS],
        deliver=app[keys.DELIVER],
        node_id="test",
        now=utcnow() + dt.timedelta(minutes=minutes),
    )


async def test_a_complaint_is_called_back_rectified_and_closed_by_the_lines_head(
    client: Any, sock: Any, as_user: Any, settings: Settings
) -> None:
    worker, clerk = await sock("worker"), await sock("clerk")
    head, district, other = (
        await sock("supervisor.t07"),
        await sock("supervisor"),
        await sock("supervisor.t01"),
    )
    case_id = await _finished_case(worker, clerk, seq=311)
    path = f"/api/v1/cases/{case_id}/rating"
    # A complaint says what went wrong; then it is taken with any score.
    bad = await worker.user.post(path, json={"score": 4, "complaint": True})
    assert bad.status == 422
    r = await worker.user.post(
        path, json={"score": 4, "comment": "窗口人员态度生硬", "complaint": True}
    )
    assert r.status == 201, await r.text()
    assert (await r.json())["complaint"] is True

    assert len((await _sweep(client.app, settings)).opened) == 1
    opened = (await head.wait("followup:opened"))["followup"]
    assert (opened["case_id"], opened["score"], opened["complaint"]) == (case_id, 4, True)
    assert opened["comment"] == "窗口人员态度生硬" and opened["status"] == "open"
    assert opened["resident_phone_masked"] != "13900139000"
    assert dt.date.fromisoformat(opened["due_date"]) > dt.date.today()
    await district.wait("followup:opened")  # the district's supervisor covers the town too
    # Another town's supervisor hears nothing, lists nothing, and cannot reach it.
    await _sweep(client.app, settings)
    assert "followup:opened" not in other.heard
    fid = opened["id"]
    them = other.user
    assert await (await them.get("/api/v1/followups")).json() == []
    for method, url, body in (
        ("GET", f"/api/v1/followups/{fid}", None),
        ("POST", f"/api/v1/followups/{fid}/record", {"rectification": "x"}),
        ("POST", f"/api/v1/followups/{fid}/contact", None),
    ):
        resp = await them.request(method, url, json=body)
        assert resp.status == 404, (url, resp.status)
    assert (await (await as_user("worker")).get("/api/v1/followups")).status == 403

    me = head.user
    listed = await (await me.get("/api/v1/followups")).json()
    assert [f["id"] for f in listed] == [fid]
    contact = await me.post(f"/api/v1/followups/{fid}/contact")
    assert (await contact.json())["phone"] == "13900139000"

    url = f"/api/v1/followups/{fid}/record"
    for body, status, code in (
        ({"close": True}, 409, "followup.incomplete"),
        ({"callback_outcome": "reached"}, 422, "followup.callback_note"),
        ({"callback_note": "说了"}, 422, "validation"),  # a note without the outcome
        ({}, 422, "followup.nothing"),
        ({"rectification": "   "}, 422, "followup.nothing"),
        ({"callback_outcome": "maybe"}, 422, "validation"),
    ):
        resp = await me.post(url, json=body)
        assert resp.status == status, (body, await resp.text())
        assert (await resp.json())["error"]["code"] == code, body
    resp = await me.post(url, json={"callback_outcome": "not_reached", "callback_note": "无人接听"})
    assert resp.status == 200, await resp.text()
    resp = await me.post(url, json={"callback_outcome": "reached", "callback_note": "希望耐心些"})
    assert (await resp.json())["callback_outcome"] == "reached"
    resp = await me.post(url, json={"close": True})
    assert (await resp.json())["error"]["code"] == "followup.incomplete"  # no rectification yet
    resp = await me.post(url, json={"rectification": "已对窗口人员进行服务规范培训", "close": True})
    assert resp.status == 200, await resp.text()
    closed = await resp.json()
    assert (closed["status"], closed["overdue"], closed["closed_by"]) == (
        "closed",
        False,
        me.me["id"],
    )
    changed = await head.wait("followup:changed", lambda d: d["followup"]["status"] == "closed")
    assert changed["followup"]["rectification"] == "已对窗口人员进行服务规范培训"
    assert "followup:changed" not in other.heard
    again = await me.post(url, json={"rectification": "再补充"})
    assert again.status == 409 and (await again.json())["error"]["code"] == "followup.closed"
    assert await (await me.get("/api/v1/followups")).json() == []  # open ones only
    assert [f["id"] for f in await (await me.get("/api/v1/followups?open=false")).json()] == [fid]

    counts = await (await me.get("/api/v1/alerts/counts")).json()
    assert (
        counts["followups_opened"],
        counts["followups_closed_on_time"],
        counts["followups_overdue"],
    ) == (1, 1, 0)
    theirs = await (await them.get("/api/v1/alerts/counts")).json()
    assert theirs["followups_opened"] == 0

    admin = await as_user("admin")
    log = await (await admin.get("/api/v1/audit", params={"target_type": "rating_followup"})).json()
    assert {e["action"] for e in log} >= {
        "followup.open",
        "followup.callback",
        "followup.rectify",
        "followup.close",
    }
    views = await (
        await admin.get("/api/v1/audit", params={"action": "resident.phone_view"})
    ).json()
    assert [e["actor_id"] for e in views] == [me.me["id"]]


async def test_an_overdue_follow_up_alerts_once_across_nodes_and_restarts(
    client: Any, sock: Any, as_user: Any, settings: Settings
) -> None:
    await _sql(
        settings, "UPDATE staff SET phone = :p WHERE username = 'supervisor.t07'", p=HEAD_PHONE
    )
    head, other = await sock("supervisor.t07"), await sock("supervisor.t01")
    rated = utcnow() - dt.timedelta(days=20)  # its 5 working days are long past
    [case] = await _rated(settings, [(1, False, True, rated)], "FO")
    reports = await asyncio.gather(*(_node(settings, n, full=True) for n in ("a", "b")))
    assert sum(len(r.opened) for r in reports) == 1
    assert sum(len(r.overdue) for r in reports) == 1  # opened already past its deadline
    for n in ("a", "b", "a-restarted"):
        assert (await _node(settings, n, full=True)).overdue == []
    assert await _count(settings, FollowupAlert) == 1
    texts = await _count(settings, SmsMessage, col(SmsMessage.phone) == HEAD_PHONE)
    assert texts == 1

    me = head.user
    [alert] = await (await me.get("/api/v1/followup-alerts")).json()
    assert (alert["case_id"], alert["status"]) == (case, "raised")
    assert await (await other.user.get("/api/v1/followup-alerts")).json() == []
    url = f"/api/v1/followup-alerts/{alert['id']}"
    assert (await other.user.post(f"{url}/acknowledge", json={"note": "x"})).status == 404
    resp = await me.post(f"{url}/acknowledge", json={"note": "今天回访"})
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["status"] == "acknowledged"
    assert (await me.post(f"{url}/acknowledge", json={})).status == 409
    heard = await head.wait(
        "followup_alert:changed", lambda d: d["alert"]["status"] == "acknowledged"
    )
    assert heard["alert"]["note"] == "今天回访"
    assert "followup_alert:changed" not in other.heard

    # Closing the follow-up resolves its alert by itself; closing late counts as overdue.
    [f] = await (await me.get("/api/v1/followups")).json()
    assert f["overdue"] is True
    resp = await me.post(
        f"/api/v1/followups/{f['id']}/record",
        json={
            "callback_outcome": "reached",
            "callback_note": "居民表示理解",
            "rectification": "调整排班",
            "close": True,
        },
    )
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["overdue"] is True
    resolved = await head.wait(
        "followup_alert:changed", lambda d: d["alert"]["status"] == "resolved"
    )
    assert resolved["alert"]["resolution"] == "closed"
    assert await (await me.get("/api/v1/followup-alerts")).json() == []

    start = (rated - dt.timedelta(days=1)).date().isoformat()
    end = dt.date.today().isoformat()
    counts = await (
        await me.get(
            "/api/v1/alerts/counts", params={"period": "custom", "start": start, "end": end}
        )
    ).json()
    assert (
        counts["followups_opened"],
        counts["followups_closed_on_time"],
        counts["followups_overdue"],
    ) == (1, 0, 1)

    admin = await as_user("admin")
    log = await (await admin.get("/api/v1/audit", params={"target_type": "followup_alert"})).json()
    assert sorted(e["action"] for e in log) == [
        "followup_alert.acknowledge",
        "followup_alert.raise",
        "followup_alert.resolve",
    ]
    assert await _count(settings, RatingFollowup, RatingFollowup.status == "closed") == 1


# -- two server processes on PostgreSQL + Redis, and a restart


_OTHERS = "SELECT id FROM rating_followup WHERE case_id NOT IN (%s)"


async def _pg(url: str, sql: str, **params: Any) -> list[Any]:
    db = Database(url)
    try:
        async with db.session() as s:
            rows = await s.exec(text(sql), params=params)  # type: ignore[call-overload]
            out = list(rows.all()) if rows.returns_rows else []
            await s.commit()
            return out
    finally:
        await db.dispose()


async def test_two_nodes_open_and_alert_each_follow_up_once_and_a_restart_adds_nothing(
    pg_demo_url: str, redis_url: str, tmp_path: Path
) -> None:
    settings = base_settings(pg_demo_url, tmp_path / "direct")
    env = cluster_env(pg_demo_url, redis_url, tmp_path, alert_sweep_interval_seconds="0.2")
    phone = "UPDATE staff SET phone = :p WHERE username = 'supervisor.t07'"
    await _pg(pg_demo_url, phone, p=HEAD_PHONE)
    nodes = [Node("node-a", env, tmp_path), Node("node-b", env, tmp_path)]
    opened: list[aiohttp.ClientSession] = []
    socks: list[Sock] = []

    async def head_on(node: Node) -> Sock:
        http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        opened.append(http)
        user = User(http, node.base)
        assert (await user.login("supervisor.t07")).status == 200
        sock = await Sock(user).connect()
        socks.append(sock)
        return sock

    async def hears(sock: Sock, event: str, case_id: int) -> None:
        key = "followup" if event.startswith("followup:") else "alert"
        await sock.wait(event, lambda d: d[key]["case_id"] == case_id, within=30)

    try:
        for n in nodes:
            n.start()
        await asyncio.gather(*(n.ready(within=90) for n in nodes))
        head = await head_on(nodes[1])
        now = utcnow()
        cases = await _rated(settings, [(s, False, True, now) for s in (1, 2, 1, 2, 1, 5, 3)], "NC")
        bad = cases[:5]
        for c in bad:
            await hears(head, "followup:opened", c)
        # A later rating, heard after both nodes have swept past the first five.
        [sentinel] = await _rated(settings, [(1, False, True, utcnow())], "ND")
        await hears(head, "followup:opened", sentinel)
        got = [d["followup"]["case_id"] for d in head.heard["followup:opened"]]
        assert sorted(got) == sorted([*bad, sentinel])  # each once, whichever node opened it

        # Their deadlines pass: each raises one alert and one SMS, from one of the nodes.
        overdue = "UPDATE rating_followup SET due_at = :t WHERE case_id = :c"
        for c in [*bad, sentinel]:
            await _pg(pg_demo_url, overdue, t=utcnow() - dt.timedelta(minutes=1), c=c)
            await hears(head, "followup_alert:raised", c)
        [late] = await _rated(settings, [(2, False, True, utcnow())], "NE")
        await hears(head, "followup:opened", late)
        raised = [d["alert"]["case_id"] for d in head.heard["followup_alert:raised"]]
        assert sorted(raised) == sorted([*bad, sentinel])
        by = await _pg(pg_demo_url, "SELECT DISTINCT raised_by_node FROM followup_alert")
        assert {r[0] for r in by} <= {"node-a", "node-b"}

        # Both nodes die; one comes back: its first round reads every rating and adds nothing.
        for n in nodes:
            n.kill()
        nodes.append(Node("node-a2", env, tmp_path))
        nodes[-1].start()
        await nodes[-1].ready(within=90)
        again = await head_on(nodes[-1])
        [last] = await _rated(settings, [(1, False, True, utcnow())], "NF")
        await hears(again, "followup:opened", last)
        assert [d["followup"]["case_id"] for d in again.heard["followup:opened"]] == [last]
        assert "followup_alert:raised" not in again.heard
        mine = [*cases, sentinel, late, last]
        ids = ", ".join(str(c) for c in mine)
        counts = await _pg(
            pg_demo_url,
            f"SELECT (SELECT count(*) FROM rating_followup WHERE case_id IN ({ids})),"
            " (SELECT count(*) FROM followup_alert a JOIN rating_followup f"
            f"   ON f.id = a.followup_id WHERE f.case_id IN ({ids})),"
            " (SELECT count(*) FROM sms_message WHERE phone = :p),"
            " (SELECT count(*) FROM audit_log WHERE action = 'followup.open')",
            p=HEAD_PHONE,
        )
        followed, alerted, texts, audited = counts[0]
        assert (followed, alerted, texts) == (8, 6, 6)  # 5 + 3 bad ratings; 6 made overdue
        assert audited == followed + len(await _pg(pg_demo_url, _OTHERS % ids))
    finally:
        for s in socks:
            await s.close()
        for h in opened:
            await h.close()
        for n in nodes:
            n.stop(check=False)
    for n in nodes:
        n.assert_no_tracebacks()
