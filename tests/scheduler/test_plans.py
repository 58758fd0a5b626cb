"""Visit plans and the visit day: versions from the area's accepted requests, locks kept by a
re-plan, moves by hand checked with the checker's rules (and refused, changing nothing, when
they break one), publishing through the home-service lifecycle, scoping, the field worker's
route, check-in at the door (audited) and the number taken at the home."""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

import pytest

from core.settings import Settings
from scheduler.planning import feasibility, travel
from scheduler.planning.feasibility import Sequence
from scheduler.planning.problem import Plan, Problem
from scheduler.planning.solver import solve
from tests.conftest import User
from tests.factories import site_by_code
from tests.outreach.home_helpers import client, created, register, sms, sql, step, today
from tests.scheduler.checker import check
from tests.scheduler.instances import district, planar
from tests.web.test_errors import expect_error

__all__ = ["client", "sms"]  # fixtures

DAY = today() + dt.timedelta(days=2)  # the day the requests of home_helpers prefer (am)


# -- the feasibility check agrees with the independent checker


def _shuffled(plan: Plan, problem: Problem, rng: random.Random) -> list[Sequence]:
    """The plan's routes with a few random changes: a visit moved to another shift or
    position, an unserved one put in, two swapped."""
    seqs = [list(s.visits) for s in feasibility.sequences(plan)]
    keys = [(r.staff, r.shift) for r in plan.routes]
    shifts = [(s.id, i) for s in problem.staff for i in range(len(s.shifts))]
    for _ in range(rng.randrange(1, 4)):
        kind = rng.random()
        if kind < 0.4 and any(seqs):
            src = rng.choice([i for i, s in enumerate(seqs) if s])
            v = seqs[src].pop(rng.randrange(len(seqs[src])))
            dst = rng.randrange(len(seqs))
            seqs[dst].insert(rng.randrange(len(seqs[dst]) + 1), v)
        elif kind < 0.7 and plan.unserved:
            v = rng.choice(plan.unserved).visit
            if all(v not in s for s in seqs):
                target = rng.choice(shifts)
                if target not in keys:
                    keys.append(target)
                    seqs.append([])
                i = keys.index(target)
                seqs[i].insert(rng.randrange(len(seqs[i]) + 1), v)
        elif any(len(s) > 1 for s in seqs):
            s = rng.choice([s for s in seqs if len(s) > 1])
            a, b = rng.sample(range(len(s)), 2)
            s[a], s[b] = s[b], s[a]
    return [Sequence(k[0], k[1], tuple(s)) for k, s in zip(keys, seqs, strict=True)]


@pytest.mark.parametrize(
    "raw",
    [district(seed=s, visits=40, staff=5, depots=3) for s in (1, 2)] + [planar(3, 30, 4)],
    ids=["district-1", "district-2", "planar-3"],
)
def test_feasibility_agrees_with_the_checker_on_random_moves(raw: dict[str, Any]) -> None:
    problem = Problem.model_validate(raw)
    m = travel.matrix(problem)
    plan = solve(problem, seconds=0.5)
    timed, breaches = feasibility.schedule(
        problem, m, feasibility.sequences(plan), unserved=plan.unserved
    )
    assert breaches == [] and check(raw, timed.model_dump(), m.durations, m.distances) == []
    assert timed.totals.distance == plan.totals.distance
    rng = random.Random(7)
    verdicts = set()
    for _ in range(150):
        proposed, breaches = feasibility.schedule(
            problem, m, _shuffled(plan, problem, rng), unserved=plan.unserved
        )
        broken = check(raw, proposed.model_dump(), m.durations, m.distances)
        assert bool(breaches) == bool(broken), (breaches, broken)
        assert proposed.feasible == (not breaches)
        verdicts.add(bool(breaches))
    assert verdicts == {True, False}  # both kinds of move were tried


# -- the HTTP flow


async def _accepted(
    operator: User, coordinator: User, seq: int, *, item: str = "RS-005", **who: Any
) -> int:
    resident = await register(operator, who.pop("years", 82), seq, **who)
    rid = (await created(operator, resident, item))["id"]
    await step(coordinator, rid, "accept", {"note": ""})
    return rid


async def _staff(settings: Settings) -> dict[str, int]:
    rows = await sql(
        settings, "SELECT username, id FROM staff WHERE username IN ('field.t07', 'field.t07.b')"
    )
    return {u: i for u, i in rows}


def _where(plan: dict[str, Any], key: str) -> tuple[str, int, int] | None:
    for r in plan["plan"]["routes"]:
        for s in r["stops"]:
            if s["visit"] == key:
                return r["staff"], r["shift"], s["start"]
    return None


async def _plan(coordinator: User, town: int, **extra: Any) -> dict[str, Any]:
    body = {"site_id": town, "day": DAY.isoformat(), "seconds": 0.3, **extra}
    resp = await coordinator.post("/api/v1/plans", json=body)
    assert resp.status == 201, await resp.text()
    return (await resp.json())[0]


async def _versions(user: User, town: int) -> list[dict[str, Any]]:
    resp = await user.get("/api/v1/plans", params={"site_id": town, "day": DAY.isoformat()})
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def test_plan_lock_move_replan_and_publish(
    as_user: Any, settings: Settings, sms: Any
) -> None:
    operator = await as_user("operator")
    coordinator = await as_user("coordinator.t07")
    town = (await site_by_code(coordinator, "T07"))["id"]
    people = await _staff(settings)
    plain, skilled = f"s{people['field.t07']}", f"s{people['field.t07.b']}"
    r1 = await _accepted(operator, coordinator, 801)
    r2 = await _accepted(operator, coordinator, 802, years=65)
    r3 = await _accepted(operator, coordinator, 803, community="T07-C02")
    # A disability benefit: 60 minutes, and only a visitor who can assess a disability.
    r4 = await _accepted(operator, coordinator, 804, item="MZ-009", years=45, disabled=True)

    v1 = await _plan(coordinator, town)
    assert (v1["version"], v1["status"], v1["change"]) == (1, "draft", "plan")
    assert v1["plan"]["totals"]["served"] == 4 and v1["plan"]["unserved"] == []
    assert _where(v1, f"r{r4}")[0] == skilled  # type: ignore[index]
    visits = {v["key"]: v for v in v1["visits"]}
    # aged 80 or over +3, and +1 for each day waited by the day planned (asked two days ago)
    assert visits[f"r{r1}"]["priority"] == 3 + 2
    assert visits[f"r{r2}"]["priority"] == 2
    assert visits[f"r{r4}"]["duration"] == 3600
    assert visits[f"r{r4}"]["skills"] == ["disability_assessment"]
    assert visits[f"r{r1}"]["windows"] == [[9 * 3600, 12 * 3600]]

    # Lock r1: the next version, the same routes.
    resp = await coordinator.post(
        f"/api/v1/plans/{v1['id']}/locks", json={"visits": [f"r{r1}"], "locked": True}
    )
    assert resp.status == 201, await resp.text()
    v2 = await resp.json()
    assert (v2["version"], v2["change"], v2["locked"]) == (2, "lock", [f"r{r1}"])
    assert v2["plan"]["routes"] == v1["plan"]["routes"]
    # Editing an older version is refused: changes go on the latest.
    resp = await coordinator.post(
        f"/api/v1/plans/{v1['id']}/locks", json={"visits": [f"r{r2}"], "locked": True}
    )
    await expect_error(resp, 409, "plans.not_latest")

    # Moves that break a rule are refused with the reason, and change nothing.
    async def refused(move: dict[str, Any], code: str) -> None:
        resp = await coordinator.post(f"/api/v1/plans/{v2['id']}/move/check", json=move)
        assert resp.status == 200, await resp.text()
        checked = await resp.json()
        assert checked["feasible"] is False
        assert code in {b["code"] for b in checked["breaches"]}, checked["breaches"]
        resp = await coordinator.post(f"/api/v1/plans/{v2['id']}/move", json=move)
        body = await expect_error(resp, 422, "plans.move")
        assert body["message"]

    await refused({"visit": f"r{r4}", "staff": plain, "shift": 0, "position": 0}, "skill")
    await refused(
        {"visit": f"r{r2}", "staff": plain, "shift": 0, "position": 99, "start": "11:45"}, "window"
    )
    await refused(
        {"visit": f"r{r2}", "staff": plain, "shift": 0, "position": 99, "start": "11:30"}, "shift"
    )
    await refused({"visit": f"r{r2}", "staff": plain, "shift": 1, "position": 0}, "window")
    assert [v["version"] for v in await _versions(coordinator, town)] == [2, 1]

    # A move that keeps every rule: its cost shown first, then the next version.
    move = {"visit": f"r{r3}", "staff": plain, "shift": 0, "position": 0}
    checked = await (
        await coordinator.post(f"/api/v1/plans/{v2['id']}/move/check", json=move)
    ).json()
    assert checked["feasible"] is True and checked["breaches"] == []
    resp = await coordinator.post(f"/api/v1/plans/{v2['id']}/move", json=move)
    assert resp.status == 201, await resp.text()
    v3 = await resp.json()
    assert v3["version"] == 3 and _where(v3, f"r{r3}")[:2] == (plain, 0)  # type: ignore[index]
    assert (
        v3["plan"]["totals"]["distance"] - v2["plan"]["totals"]["distance"]
        == (checked["distance_delta"])
    )

    # Publish: the visits are scheduled through the home-service lifecycle, residents told.
    resp = await coordinator.post(f"/api/v1/plans/{v3['id']}/publish")
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["status"] == "published"
    rows = await sql(
        settings,
        "SELECT r.id, r.status, v.staff_id, v.planned_by FROM home_request r "
        "JOIN home_visit v ON v.request_id = r.id WHERE v.status = 'scheduled' ORDER BY r.id",
    )
    assert [(r[0], r[1], r[3]) for r in rows] == [
        (r, "scheduled", "planner") for r in (r1, r2, r3, r4)
    ]
    assert [r[2] for r in rows if r[0] == r3] == [people["field.t07"]]
    told = [m for m in sms[0].sent if m.kind == "home.scheduled"]
    assert len(told) == 4
    resp = await coordinator.post(f"/api/v1/plans/{v3['id']}/publish")
    await expect_error(resp, 409, "plans.published")

    # A cancellation and an urgent request: the rest of the day is re-planned; the locked
    # visit keeps its visitor and its time, the cancelled one drops out.
    await step(coordinator, r2, "cancel", {"text": "居民临时住院"})
    r5 = await _accepted(operator, coordinator, 805, years=70)
    resp = await coordinator.post(
        f"/api/v1/plans/{v3['id']}/replan", json={"urgent": [r5], "seconds": 0.3}
    )
    assert resp.status == 201, await resp.text()
    v4 = await resp.json()
    assert (v4["version"], v4["change"]) == (4, "replan")
    assert _where(v4, f"r{r1}") == _where(v3, f"r{r1}")
    assert f"r{r1}" in v4["locked"]
    assert f"r{r2}" not in {v["key"] for v in v4["visits"]}
    assert _where(v4, f"r{r2}") is None
    assert _where(v4, f"r{r5}") is not None
    urgent = {v["key"]: v for v in v4["visits"]}[f"r{r5}"]
    assert urgent["urgent"] is True and urgent["priority"] >= 10
    # Published again: only the new or moved visits are told again.
    before = len([m for m in sms[0].sent if m.kind == "home.scheduled"])
    resp = await coordinator.post(f"/api/v1/plans/{v4['id']}/publish")
    assert resp.status == 200, await resp.text()
    again = [m for m in sms[0].sent if m.kind == "home.scheduled"][before:]
    moved = {k for k in (f"r{r1}", f"r{r3}", f"r{r4}") if _where(v4, k) != _where(v3, k)}
    assert len(again) == 1 + len(moved)
    statuses = [v["status"] for v in await _versions(coordinator, town)]
    assert statuses == ["published", "superseded", "draft", "draft"]
    audit = await sql(
        settings, "SELECT action FROM audit_log WHERE action LIKE 'plan.%' ORDER BY id"
    )
    assert [a for (a,) in audit] == [
        "plan.plan",
        "plan.lock",
        "plan.move",
        "plan.publish",
        "plan.replan",
        "plan.publish",
    ]


async def test_plans_are_scoped_to_the_coordinators_area(as_user: Any, settings: Settings) -> None:
    operator = await as_user("operator")
    coordinator = await as_user("coordinator.t07")
    town = (await site_by_code(coordinator, "T07"))["id"]
    await _accepted(operator, coordinator, 811)
    v1 = await _plan(coordinator, town)
    stranger = await as_user("coordinator.t01")
    assert (await stranger.get(f"/api/v1/plans/{v1['id']}")).status == 404
    resp = await stranger.post(
        f"/api/v1/plans/{v1['id']}/locks", json={"visits": ["r1"], "locked": True}
    )
    assert resp.status == 404
    assert (await stranger.post(f"/api/v1/plans/{v1['id']}/publish")).status == 404
    resp = await stranger.get("/api/v1/plans", params={"site_id": town, "day": DAY.isoformat()})
    assert resp.status == 404
    resp = await stranger.post(
        "/api/v1/plans", json={"site_id": town, "day": DAY.isoformat(), "seconds": 0.3}
    )
    assert resp.status == 404
    areas = await (await stranger.get("/api/v1/plans/areas")).json()
    assert [a["name"] for a in areas] == ["高桥镇"] or town not in {a["id"] for a in areas}
    # The district's coordinator plans any town; other roles may not plan at all.
    district = await as_user("coordinator")
    assert (await district.get(f"/api/v1/plans/{v1['id']}")).status == 200
    for who in ("field.t07", "clerk", "operator"):
        user = await as_user(who)
        assert (await user.get(f"/api/v1/plans/{v1['id']}")).status == 403
    # Bad input: a clear 4xx, nothing written.
    for body in (
        {"site_id": town, "day": "2001-01-01"},
        {"site_id": town, "day": DAY.isoformat(), "days": 9},
        {"site_id": town, "day": DAY.isoformat(), "staff_ids": [1]},
        {"site_id": town, "day": DAY.isoformat(), "surprise": 1},
    ):
        assert (await coordinator.post("/api/v1/plans", json=body)).status == 422
    move = {"visit": "r999999", "staff": "s1", "shift": 0, "position": 0}
    resp = await coordinator.post(f"/api/v1/plans/{v1['id']}/move", json=move)
    await expect_error(resp, 422, "plans.no_visit")
    assert [v["version"] for v in await _versions(coordinator, town)] == [1]


async def test_the_visit_day_route_check_in_and_the_number_at_the_door(
    as_user: Any, sock: Any, settings: Settings, monkeypatch: Any
) -> None:
    operator = await as_user("operator")
    coordinator = await as_user("coordinator.t07")
    town = (await site_by_code(coordinator, "T07"))["id"]
    people = await _staff(settings)
    rid = await _accepted(operator, coordinator, 821)
    v1 = await _plan(coordinator, town, staff_ids=[people["field.t07"]])
    assert (await coordinator.post(f"/api/v1/plans/{v1['id']}/publish")).status == 200

    field = await as_user("field.t07")
    resp = await field.get("/api/v1/field/route", params={"day": DAY.isoformat()})
    assert resp.status == 200, await resp.text()
    day = await resp.json()
    assert day["depot"]["name"] == "高桥镇便民服务中心" or day["depot"]["key"] == "T07"
    (stop,) = day["stops"]
    assert stop["request_id"] == rid and stop["address"].startswith("高桥镇幸福路821号")
    assert stop["nav_url"].startswith("geo:") and day["tile_url"] == ""
    start = _where(v1, f"r{rid}")[2]  # type: ignore[index]
    local = dt.datetime.fromisoformat(stop["starts_at"]).astimezone(
        dt.timezone(dt.timedelta(hours=8))
    )
    assert local.hour * 3600 + local.minute * 60 + local.second == start
    viewed = await sql(settings, "SELECT count(*) FROM audit_log WHERE action = 'field.route.view'")
    assert viewed[0][0] == 1
    other = await as_user("field.t07.b")
    empty = await (await other.get("/api/v1/field/route", params={"day": DAY.isoformat()})).json()
    assert empty["stops"] == []

    # A number at the door needs the check-in first.
    s = await sock("field.t07")
    take = {"line_id": 1, "item_code": "x", "site_id": 1, "consent": True}
    err = await s.err("ticket:take", {**take, "home_visit_id": stop["visit_id"]})
    assert err["code"] == "field.check_in_first"

    url = f"/api/v1/field/visits/{stop['visit_id']}/check-in"
    gps = {"lat": 29.86, "lng": 121.46, "accuracy_m": 12.0}
    assert (await other.post(url, json=gps)).status == 404  # not their visit
    await expect_error(await field.post(url, json=gps), 409, "field.not_today")
    monkeypatch.setattr("scheduler.field.today", lambda _settings: DAY)
    assert (await field.post(url, json={"lat": 95, "lng": 0})).status == 422
    resp = await field.post(url, json=gps)
    assert resp.status == 201, await resp.text()
    await expect_error(await field.post(url, json=gps), 409, "field.checked_in")
    rows = await sql(settings, "SELECT lat, lng, accuracy_m FROM visit_check_in")
    assert [tuple(r) for r in rows] == [(29.86, 121.46, 12.0)]
    audit = await sql(
        settings, "SELECT target_id, actor_id FROM audit_log WHERE action = 'field.check_in'"
    )
    assert [(str(a), b) for a, b in audit] == [(str(stop["visit_id"]), people["field.t07"])]
    checked = await (await coordinator.get(f"/api/v1/plans/{v1['id']}")).json()
    assert {v["key"]: v for v in checked["visits"]}[f"r{rid}"]["checked_in_at"]

    # At the home the visitor is a mobile service point: a number for the visit's case,
    # served first, on the line the case was routed to.
    service = await (await field.get(f"/api/v1/field/visits/{stop['visit_id']}/service")).json()
    assert service["checked_in"] is True and service["case_id"] == stop["case_id"]
    ticket = await s.ok("ticket:take", {**take, "home_visit_id": stop["visit_id"]})
    assert (ticket["case_id"], ticket["priority_reason"]) == (stop["case_id"], "home_visit")
    assert ticket["line_id"] == service["line_id"]
    stranger = await sock("field.t07.b")
    err = await stranger.err("ticket:take", {**take, "home_visit_id": stop["visit_id"]})
    assert err["code"] == "not_found"
