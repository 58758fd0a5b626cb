"""Tidal windows end to end over HTTP and real sockets: a short line of 高桥镇 is suggested a
cross-trained clerk, the town's head applies it and call next serves the new line at once, a
head elsewhere neither sees nor moves anything, and a move ends at its time exactly once."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import text
from sqlmodel import select

from core.db import Database, utcnow
from core.events import deliver_nowhere
from core.models import Case, CaseStatus, Site, WindowLine
from core.settings import Settings
from signaling.models import Ticket, TicketStatus
from supervision.tidal_sweeps import TidalReport, sweep_tidal

TARGET = "T07-household"  # 高桥镇·户籍: its own clerk (clerk.t07.h) is not online
DONOR = "T07-market"  # 高桥镇·市场监管: idle, its clerk is cross-trained for 户籍
MOVER = "clerk.t07.s"


async def sql(url: str, statement: str, **params: Any) -> list[Any]:
    db = Database(url)
    try:
        async with db.session() as s:
            rows = await s.exec(text(statement), params=params)  # type: ignore[call-overload]
            out = list(rows.all()) if rows.returns_rows else []
            await s.commit()
            return out
    finally:
        await db.dispose()


async def add_tickets(url: str, line_code: str, ages_min: list[float], prefix: str) -> list[int]:
    """Waiting tickets on a line, taken the given minutes ago (the point of 高桥镇 first)."""
    db = Database(url)
    try:
        async with db.session() as s:
            line = (await s.exec(select(WindowLine).where(WindowLine.code == line_code))).one()
            point = (await s.exec(select(Site).where(Site.code == "T07-C01"))).one()
            now = utcnow()
            cases = [
                Case(
                    number=f"{prefix.upper()}{i:05d}",
                    item_id=1,
                    site_id=point.id or 0,
                    line_id=line.id,
                    status=CaseStatus.open,
                )
                for i in range(len(ages_min))
            ]
            s.add_all(cases)
            await s.flush()
            tickets = [
                Ticket(
                    line_id=line.id or 0,
                    case_id=c.id or 0,
                    day=now.date(),
                    seq=700 + i,
                    number=f"{line.ticket_prefix}{prefix[:2].upper()}{i:02d}",
                    status=TicketStatus.waiting,
                    item_id=1,
                    point_site_id=point.id or 0,
                    line_name=line.name,
                    waiting_since=now - dt.timedelta(minutes=age),
                    created_at=now - dt.timedelta(minutes=age),
                )
                for i, (c, age) in enumerate(zip(cases, ages_min, strict=True))
            ]
            s.add_all(tickets)
            await s.commit()
            return [t.id or 0 for t in tickets]
    finally:
        await db.dispose()


async def line_id(url: str, code: str) -> int:
    return int((await sql(url, "SELECT id FROM window_line WHERE code = :c", c=code))[0][0])


async def node_sweep(settings: Settings, node: str, now: dt.datetime) -> TidalReport:
    """One tidal round from a node of its own (its own engine and pool)."""
    db = Database(settings.effective_database_url)
    try:
        return await sweep_tidal(
            db=db, settings=settings, deliver=deliver_nowhere, node_id=node, now=now
        )
    finally:
        await db.dispose()


async def short_town(settings: Settings) -> list[int]:
    """高桥镇·户籍 short in the previous window and now; the market clerk trained for 户籍.

    Tickets taken 40 and 5 minutes ago: a sweep 30 minutes back (in the previous window) saw
    one arrival and no clerk, as does the assessment now.
    """
    url = settings.effective_database_url
    await sql(url, "UPDATE staff SET skills = :s WHERE username = :u", s='["户籍"]', u=MOVER)
    ids = await add_tickets(url, TARGET, [40, 5], "td")
    report = await node_sweep(settings, "earlier", utcnow() - dt.timedelta(minutes=30))
    assert report.recorded > 0
    return ids


async def test_a_suggested_move_changes_who_call_next_serves_live_and_is_scoped(
    sock: Any, as_user: Any, settings: Settings
) -> None:
    url = settings.effective_database_url
    waiting = await short_town(settings)
    target, donor = await line_id(url, TARGET), await line_id(url, DONOR)
    mover = await sock(MOVER)
    await mover.ok("state:sync")
    # Before: the market clerk's call next has nobody to call (their line is idle).
    assert (await mover.ok("queue:call_next"))["ticket"] is None

    head = await sock("supervisor.t07")
    me = head.user
    view = await (await me.get("/api/v1/tidal")).json()
    by_line = {ln["line_id"]: ln for ln in view["lines"]}
    hh = by_line[target]
    assert (hh["short_now"], hh["short_before"], hh["clerks"], hh["rough"]) == (
        True,
        True,
        0,
        True,
    )
    assert hh["handling_measured"] is False and hh["handling_seconds"] == 480
    assert hh["current_per_hour"] == 2.0 and hh["history_per_hour"] is None
    assert all(ln["line_name"].startswith("高桥镇") for ln in view["lines"])
    [s] = [s for s in view["suggestions"] if s["to_line_id"] == target]
    assert (s["staff_name"], s["from_line_id"], s["fit"]) == ("高桥镇·市场监管窗口", donor, "skill")
    assert s["target_sl_before"] == 0.0 < s["target_sl_after"]
    assert s["donor_sl_after"] >= s["target_level"]

    # Another town's head sees none of it and may not move the clerk: 404, as for any record
    # outside their area.
    other = await as_user("supervisor.t01")
    theirs = await (await other.get("/api/v1/tidal")).json()
    assert target not in {ln["line_id"] for ln in theirs["lines"]}
    assert all(x["staff_id"] != s["staff_id"] for x in theirs["suggestions"])
    body = {k: s[k] for k in ("staff_id", "from_line_id", "to_line_id", "until")}
    resp = await other.post("/api/v1/tidal/moves", json=body)
    assert resp.status == 404, await resp.text()
    # Bad end times and a clerk not on the donor line are refused and change nothing.
    soon = (utcnow() + dt.timedelta(minutes=5)).isoformat()
    resp = await me.post("/api/v1/tidal/moves", json=body | {"until": soon})
    assert (resp.status, (await resp.json())["error"]["code"]) == (422, "tidal.until")
    resp = await me.post("/api/v1/tidal/moves", json=body | {"from_line_id": target})
    assert resp.status == 404

    resp = await me.post("/api/v1/tidal/moves", json=body | {"note": "户籍排队"})
    assert resp.status == 201, await resp.text()
    move = await resp.json()
    assert (move["status"], move["to_line_name"], move["staff_id"]) == (
        "active",
        "高桥镇·户籍",
        s["staff_id"],
    )
    heard = await mover.wait("tidal:changed")
    assert heard["move"]["id"] == move["id"]
    assert (await head.wait("tidal:changed"))["move"]["status"] == "active"
    again = await me.post("/api/v1/tidal/moves", json=body)
    assert again.status == 409

    # Live, no reconnect: the console syncs on tidal:changed, its socket follows the new line,
    # and call next serves it.
    synced = await mover.ok("state:sync")
    assert target in {ln["line_id"] for ln in synced["lines"]}
    called = await mover.ok("queue:call_next")
    assert called["ticket"]["id"] == waiting[0] and called["ticket"]["line_id"] == target
    await mover.ok(
        "ticket:finish",
        {"ticket_id": called["ticket"]["id"], "outcome": "returned", "reason": "测试"},
    )
    mine = await (await mover.user.get("/api/v1/tidal/mine")).json()
    assert [m["id"] for m in mine] == [move["id"]]
    counts = await (await me.get("/api/v1/alerts/counts")).json()
    assert counts["tidal"] == 1
    assert (await (await other.get("/api/v1/alerts/counts")).json())["tidal"] == 0

    # Closed by hand: the clerk is back on their own line only, at once.
    assert (await other.post(f"/api/v1/tidal/moves/{move['id']}/close", json={})).status == 404
    listed = await other.get("/api/v1/tidal/moves", params={"active": "false"})
    assert await listed.json() == []
    resp = await me.post(f"/api/v1/tidal/moves/{move['id']}/close", json={"note": "已缓解"})
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["end_reason"] == "closed"
    assert (await me.post(f"/api/v1/tidal/moves/{move['id']}/close", json={})).status == 409
    # The console hears it and syncs (as it does on every tidal:changed): 户籍 is gone, and
    # call next no longer reaches the ticket still waiting there.
    await mover.wait("tidal:changed", lambda d: d["move"]["status"] == "ended")
    assert target not in {ln["line_id"] for ln in (await mover.ok("state:sync"))["lines"]}
    assert (await mover.ok("queue:call_next"))["ticket"] is None

    admin = await as_user("admin")
    log = await (await admin.get("/api/v1/audit", params={"target_type": "tidal_move"})).json()
    assert sorted(e["action"] for e in log) == ["tidal.apply", "tidal.close"]


async def test_a_clerk_just_back_is_not_moved_again_and_a_clerk_may_not_read_the_tidal_tab(
    sock: Any, as_user: Any, settings: Settings
) -> None:
    url = settings.effective_database_url
    await short_town(settings)
    mover = await sock(MOVER)
    await mover.ok("state:sync")
    me = await as_user("supervisor.t07")
    [s] = (await (await me.get("/api/v1/tidal")).json())["suggestions"]
    body = {k: s[k] for k in ("staff_id", "from_line_id", "to_line_id", "until")}
    move = await (await me.post("/api/v1/tidal/moves", json=body)).json()
    view = await (await me.get("/api/v1/tidal")).json()
    assert view["suggestions"] == []  # on a move: not suggested twice
    assert [m["id"] for m in view["moves"]] == [move["id"]]
    await me.post(f"/api/v1/tidal/moves/{move['id']}/close", json={})
    # Just back: not suggested again within the minimum stay, so nobody ping-pongs.
    assert (await (await me.get("/api/v1/tidal")).json())["suggestions"] == []
    resp = await me.post("/api/v1/tidal/moves", json=body)
    assert (resp.status, (await resp.json())["error"]["code"]) == (409, "tidal.stale")
    assert (await mover.user.get("/api/v1/tidal")).status == 403
    assert (await me.get("/api/v1/tidal/mine")).status == 403
    rows = await sql(url, "SELECT count(*) FROM tidal_move")
    assert rows[0][0] == 1


async def test_a_move_ends_at_its_time_exactly_once_across_nodes_and_restarts(
    sock: Any, as_user: Any, settings: Settings
) -> None:
    url = settings.effective_database_url
    await short_town(settings)
    target = await line_id(url, TARGET)
    mover = await sock(MOVER)
    await mover.ok("state:sync")
    me = await as_user("supervisor.t07")
    [s] = (await (await me.get("/api/v1/tidal")).json())["suggestions"]
    body = {k: s[k] for k in ("staff_id", "from_line_id", "to_line_id", "until")}
    move = await (await me.post("/api/v1/tidal/moves", json=body)).json()
    until = dt.datetime.fromisoformat(move["until"])

    # Not yet due: nothing ends.
    assert (await node_sweep(settings, "a", until - dt.timedelta(seconds=1))).expired == []
    # Three nodes sweep at the same moment once it is due: exactly one ends it.
    late = until + dt.timedelta(seconds=1)
    reports = await asyncio.gather(*(node_sweep(settings, n, late) for n in ("a", "b", "c")))
    assert sorted(len(r.expired) for r in reports) == [0, 0, 1]
    assert (await node_sweep(settings, "a-restarted", late)).expired == []
    rows = await sql(url, "SELECT status, end_reason, ended_by_node FROM tidal_move")
    assert [(r[0], r[1]) for r in rows] == [("ended", "expired")]
    assert rows[0][2] in ("a", "b", "c")
    bound = await sql(
        url,
        "SELECT count(*) FROM staff_line WHERE line_id = :l AND staff_id = :s",
        l=target,
        s=s["staff_id"],
    )
    assert bound[0][0] == 0
    expired = await sql(url, "SELECT count(*) FROM audit_log WHERE action = 'tidal.expire'")
    assert expired[0][0] == 1
    # Once the console syncs (its answer to tidal:changed), call next no longer reaches 户籍,
    # where one ticket still waits.
    assert target not in {ln["line_id"] for ln in (await mover.ok("state:sync"))["lines"]}
    assert (await mover.ok("queue:call_next"))["ticket"] is None


async def test_the_figures_blend_the_window_with_past_weeks_and_measure_handling_times(
    as_user: Any, settings: Settings
) -> None:
    url = settings.effective_database_url
    code = "T07-human_resources"  # 高桥镇·人力社保
    now = utcnow()
    week1 = now - dt.timedelta(days=7)
    week2 = now - dt.timedelta(days=14)
    # Two weeks back: a ticket that day, but outside the window (40 minutes off, same day).
    local = week2.astimezone(ZoneInfo(settings.timezone))
    off_slot = week2 + dt.timedelta(minutes=40 if local.hour < 12 else -40)
    ages = [
        5,  # this window
        (now - (week1 - dt.timedelta(minutes=10))).total_seconds() / 60,  # in last week's window
        (now - off_slot).total_seconds() / 60,
        *[60] * 5,  # served an hour ago, 10 minutes each
    ]
    ids = await add_tickets(url, code, ages, "hr")
    for tid in ids[3:]:
        await sql(
            url,
            "UPDATE ticket SET status = 'done', answered_at = :a, finished_at = :f WHERE id = :i",
            a=now - dt.timedelta(minutes=50),
            f=now - dt.timedelta(minutes=40),
            i=tid,
        )
    head = await as_user("supervisor.t07")
    view = await (await head.get("/api/v1/tidal")).json()
    [hr] = [ln for ln in view["lines"] if ln["line_id"] == await line_id(url, code)]
    # Last week's window had 1 ticket (2 an hour), the week before 0; older weeks had no
    # ticket at all that day and do not count. 0.6 x 2 + 0.4 x mean(2, 0) = 1.6.
    assert (hr["current_per_hour"], hr["history_per_hour"], hr["history_weeks"]) == (2.0, 1.0, 2)
    assert hr["arrivals_per_hour"] == 1.6
    assert (hr["handling_measured"], hr["handling_seconds"]) == (True, 600)
    assert hr["target_seconds"] == 900 and hr["target_level"] == 0.8
