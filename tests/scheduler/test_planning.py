"""Home-visit planning: every plan checked independently; the problem format's refusals; the
CLI; road travel times from an OSRM-compatible server; the worker process."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from pydantic import ValidationError

from core.errors import Invalid, Unavailable
from scheduler.planning import travel
from scheduler.planning.problem import Problem
from scheduler.planning.solver import solve
from scheduler.planning.worker import Planner
from tests.scheduler.checker import check
from tests.scheduler.instances import district, planar

ROOT = Path(__file__).resolve().parents[2]


def plan_and_check(raw: dict[str, Any], seconds: float = 1.0) -> dict[str, Any]:
    problem = Problem.model_validate(raw)
    plan = solve(problem, seconds=seconds).model_dump()
    m = travel.matrix(problem)
    assert check(raw, plan, m.durations, m.distances) == []
    assert plan["feasible"]
    return plan


def tiny(**visit: Any) -> dict[str, Any]:
    """One depot, one staff member on two shifts, and the visits given."""
    return {
        "depots": [{"id": "town", "x": 0, "y": 0}],
        "staff": [
            {
                "id": "wang",
                "depot": "town",
                "shifts": [{"start": "09:00", "end": "12:00"}, {"start": "14:00", "end": "17:30"}],
            }
        ],
        "visits": [],
        "travel": {"kind": "coordinates", "speed_kmh": 36, "detour": 1.0},  # 10 m/s
        **visit,
    }


def at(vid: str, x: float, *, windows: list[dict[str, str]] | None = None, **kw: Any) -> dict:
    return {
        "id": vid,
        "x": x,
        "y": 0,
        "duration": 1800,
        "windows": windows or [{"start": "09:00", "end": "17:30"}],
        **kw,
    }


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_district_plans_keep_every_rule(seed: int) -> None:
    raw = district(seed, visits=70, staff=8, depots=6)
    plan = plan_and_check(raw)
    # Required visits (urgent) are all in the plan, and most others too.
    required = {v["id"] for v in raw["visits"] if v["required"]}
    served = {s["visit"] for r in plan["routes"] for s in r["stops"]}
    assert required <= served
    assert plan["totals"]["served"] >= 40
    # Every reason given for a visit left out is one the coordinator can read.
    assert {u["reason"] for u in plan["unserved"]} <= {"no_staff_skill", "unreachable", "day_full"}


@pytest.mark.parametrize("seed", [4, 5])
def test_planar_vrptw_plans_keep_every_rule(seed: int) -> None:
    plan_and_check(planar(seed, visits=50, vehicles=6))


def test_the_visit_of_higher_priority_wins_the_last_place() -> None:
    raw = tiny(visits=[at("plain", 1000), at("aged-82", 1200, priority=3)])
    raw["staff"][0]["shifts"] = [{"start": "09:00", "end": "12:00", "max_visits": 1}]
    plan = plan_and_check(raw)
    assert [s["visit"] for r in plan["routes"] for s in r["stops"]] == ["aged-82"]
    assert plan["unserved"] == [
        {
            "visit": "plain",
            "required": False,
            "reason": "day_full",
            "detail": "the day's shifts are full with visits of higher priority; moves to the "
            "next day",
        }
    ]
    assert plan["totals"]["served_priority"] == 3


def test_a_visit_only_possible_at_lunch_is_unreachable() -> None:
    raw = tiny(visits=[at("noon", 500, windows=[{"start": "12:00", "end": "14:00"}])])
    plan = plan_and_check(raw)
    assert plan["routes"] == []
    assert plan["unserved"][0]["reason"] == "unreachable"


def test_the_window_chosen_is_one_the_visit_fits_and_times_add_up() -> None:
    # 2 km out at 10 m/s is 200 s; the resident is in only from 15:00.
    raw = tiny(
        visits=[
            at(
                "pm",
                2000,
                windows=[{"start": "10:00", "end": "10:20"}, {"start": "15:00", "end": "16:00"}],
            )
        ]
    )
    plan = plan_and_check(raw)
    (stop,) = plan["routes"][0]["stops"]
    assert stop["window"] == 1 and stop["start"] == 15 * 3600 and stop["end"] == 15 * 3600 + 1800
    assert plan["routes"][0]["distance"] == 4000


def test_skills_decide_who_goes() -> None:
    raw = tiny(visits=[at("assess", 800, skills=["disability_assessment"]), at("plain", 900)])
    raw["staff"].append(
        {
            "id": "li",
            "depot": "town",
            "shifts": [{"start": "09:00", "end": "12:00"}],
            "skills": ["disability_assessment"],
        }
    )
    plan = plan_and_check(raw)
    by_visit = {s["visit"]: r["staff"] for r in plan["routes"] for s in r["stops"]}
    assert by_visit["assess"] == "li"


def test_capacity_and_max_visits_hold() -> None:
    raw = tiny(visits=[at(f"v{i}", 300 * (i + 1), load=4, duration=600) for i in range(6)])
    raw["staff"][0]["capacity"] = 10  # two visits' load per shift
    plan = plan_and_check(raw)
    assert plan["totals"]["served"] == 4  # two per shift
    assert all(len(r["stops"]) <= 2 for r in plan["routes"])


def test_required_visits_that_cannot_all_fit_are_named() -> None:
    raw = tiny(
        visits=[
            at(
                f"urgent{i}",
                100 * (i + 1),
                required=True,
                windows=[{"start": "09:00", "end": "10:10"}],
            )
            for i in range(3)
        ]
    )
    plan = plan_and_check(raw)
    assert plan["totals"]["served"] == 2  # 2 x 30 min and the drives fit, a third cannot
    assert plan["totals"]["required_unserved"] == 1
    assert plan["unserved"][0]["required"] is True


def test_explicit_matrix_travel() -> None:
    raw = {
        "depots": [{"id": "d"}],
        "staff": [{"id": "s", "depot": "d", "shifts": [{"start": 0, "end": 3600}]}],
        "visits": [
            {"id": "a", "duration": 60, "windows": [{"start": 0, "end": 3600}]},
            {"id": "b", "duration": 60, "windows": [{"start": 0, "end": 3600}]},
        ],
        "travel": {
            "kind": "matrix",
            "durations": [[0, 100, 900], [100, 0, 100], [900, 100, 0]],
            "distances": [[0, 1000, 9000], [1000, 0, 1000], [9000, 1000, 0]],
        },
    }
    plan = solve(Problem.model_validate(raw), seconds=0.5).model_dump()
    m = raw["travel"]
    assert check(raw, plan, m["durations"], m["distances"]) == []
    assert plan["totals"]["distance"] == 11000  # d-a-b-d, the only order both ways cost alike


BAD = [
    ("unknown field", lambda p: p["visits"][0].update(colour="red"), "visits.0.colour"),
    (
        "window ends before it starts",
        lambda p: p["visits"][0]["windows"][0].update(start="11:00", end="10:00"),
        "must end after it starts",
    ),
    ("skill nobody has", lambda p: p["visits"][0].update(skills=["plumbing"]), "plumbing"),
    ("negative duration", lambda p: p["visits"][0].update(duration=-5), "visits.0.duration"),
    ("bad clock", lambda p: p["staff"][0]["shifts"][0].update(start="25:00"), "HH:MM"),
    ("unknown depot", lambda p: p["staff"][0].update(depot="moon"), "moon"),
    ("same id twice", lambda p: p["visits"].append(copy.deepcopy(p["visits"][0])), "twice"),
    (
        "window shorter than the visit",
        lambda p: p["visits"][0].update(windows=[{"start": "09:00", "end": "09:10"}]),
        "shorter",
    ),
    (
        "matrix of the wrong size",
        lambda p: p.update(travel={"kind": "matrix", "durations": [[0]], "distances": [[0]]}),
        "2×2",
    ),
    (
        "overlapping shifts",
        lambda p: p["staff"][0]["shifts"].append({"start": "11:00", "end": "13:00"}),
        "overlap",
    ),
]


@pytest.mark.parametrize(("what", "spoil", "says"), BAD, ids=[b[0] for b in BAD])
def test_bad_problems_are_refused_with_the_field(what: str, spoil: Any, says: str) -> None:
    raw = tiny(visits=[at("v1", 100)])
    spoil(raw)
    with pytest.raises(ValidationError) as e:
        Problem.model_validate(raw)
    text = "\n".join(
        ".".join(str(x) for x in err["loc"]) + ": " + err["msg"] for err in e.value.errors()
    )
    assert says in text, text


def test_cli_prints_a_plan_and_refuses_a_bad_file(tmp_path: Path) -> None:
    raw = district(7, visits=25, staff=4, depots=3)
    f = tmp_path / "problem.json"
    f.write_text(json.dumps(raw), "utf-8")
    env = {**os.environ, "CLOUDWINDOW_DATA_DIR": str(tmp_path)}
    cmd = [sys.executable, "-m", "web.cli", "plan-visits", "--problem", str(f), "--seconds", "1"]
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    plan = json.loads(out.stdout)
    m = travel.matrix(Problem.model_validate(raw))
    assert check(raw, plan, m.durations, m.distances) == []
    raw["visits"][3]["windows"][0]["end"] = "06:00"
    f.write_text(json.dumps(raw), "utf-8")
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and out.stdout == ""
    assert "visits.3.windows.0" in out.stderr and "end after it starts" in out.stderr
    assert "Traceback" not in out.stderr


# -- road travel times from an OSRM-compatible /table service


@pytest.fixture
async def osrm(aiohttp_server: Any) -> AsyncIterator[dict[str, Any]]:
    """A local server speaking OSRM's table API: coordinates in the path, lon,lat;..."""
    state: dict[str, Any] = {"requests": [], "fail": False}

    async def table(request: web.Request) -> web.Response:
        state["requests"].append(request)
        if state["fail"]:
            return web.json_response({"code": "TooBig", "message": "too many"}, status=400)
        assert request.query.get("annotations") == "duration,distance"
        pts = [tuple(map(float, p.split(","))) for p in request.match_info["coords"].split(";")]
        # a road 1.5x the straight line, driven at 10 m/s, in OSRM's float seconds/metres
        dist = [[abs(a[0] - b[0]) * 1.5e5 + abs(a[1] - b[1]) * 1.5e5 for b in pts] for a in pts]
        return web.json_response(
            {"code": "Ok", "distances": dist, "durations": [[d / 10 for d in r] for r in dist]}
        )

    app = web.Application()
    app.router.add_get("/table/v1/driving/{coords}", table)
    server = await aiohttp_server(app)
    state["url"] = str(server.make_url("/"))
    yield state


async def test_road_router_matrix_feeds_the_plan(osrm: dict[str, Any]) -> None:
    raw = district(3, visits=12, staff=3, depots=2)
    problem = Problem.model_validate(raw)
    m = await travel.RoadRouter(osrm["url"]).table(travel.points(problem))
    assert len(osrm["requests"]) == 1
    assert len(m.durations) == 14 and m.durations[0][0] == 0
    plan = solve(problem, seconds=0.5, matrix=m).model_dump()
    assert check(raw, plan, m.durations, m.distances) == []


async def test_road_router_down_is_a_clear_error(osrm: dict[str, Any]) -> None:
    problem = Problem.model_validate(district(3, visits=3, staff=2, depots=2))
    osrm["fail"] = True
    with pytest.raises(Unavailable) as e:
        await travel.RoadRouter(osrm["url"]).table(travel.points(problem))
    assert e.value.status == 503 and "TooBig" in e.value.message("en")
    with pytest.raises(Unavailable):
        await travel.RoadRouter("http://127.0.0.1:9", timeout_s=2).table(travel.points(problem))
    planar_problem = Problem.model_validate(tiny(visits=[at("v", 10)]))
    with pytest.raises(Invalid):
        await travel.RoadRouter(osrm["url"]).table(travel.points(planar_problem))


async def test_the_worker_process_solves_off_the_event_loop() -> None:
    raw = district(9, visits=20, staff=3, depots=2)
    planner = Planner(workers=1)
    try:
        plan = await planner.plan(Problem.model_validate(raw), seconds=0.5)
        assert planner.pool is not None
        pids = {p.pid for p in planner.pool._processes.values()}
        assert os.getpid() not in pids and len(pids) == 1
    finally:
        planner.close()
    m = travel.matrix(Problem.model_validate(raw))
    assert check(raw, plan.model_dump(), m.durations, m.distances) == []


async def test_coordinators_solve_over_http_and_bad_problems_change_nothing(as_user: Any) -> None:
    raw = district(11, visits=15, staff=3, depots=2)
    coordinator = await as_user("coordinator")
    resp = await coordinator.post("/api/v1/planning/solve?seconds=0.5", json=raw)
    assert resp.status == 200, await resp.text()
    plan = await resp.json()
    m = travel.matrix(Problem.model_validate(raw))
    assert check(raw, plan, m.durations, m.distances) == []
    assert plan["totals"]["served"] + plan["totals"]["unserved"] == 15

    raw["visits"][0]["duration"] = -1
    resp = await coordinator.post("/api/v1/planning/solve?seconds=0.5", json=raw)
    assert resp.status == 422
    body = await resp.json()
    details = body["error"]["details"]
    assert [d["loc"] for d in details] == [["visits", "0", "duration"]], body
    resp = await coordinator.post("/api/v1/planning/solve?seconds=9999", json=raw)
    assert resp.status == 422
    clerk = await as_user("clerk")
    resp = await clerk.post("/api/v1/planning/solve", json=raw)
    assert resp.status == 403
