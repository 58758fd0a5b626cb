"""Plan home visits with PyVRP (pinned: its model API changed in 0.14).

The model (docs/planning.md):
- each shift of each staff member is one vehicle, from and back to the staff member's depot
  (their town centre) within the shift; a lunch break is the gap between two shifts;
- load dimensions: [visits, load, one per skill]. A shift carries max_visits, the staff
  member's capacity, and for each skill either room for every visit (has it) or 0 (lacks it),
  which is how PyVRP's documentation models skills;
- a visit with several time windows is one client per window in a mutually exclusive group;
- a visit that may move to the next day is optional with a prize (PRIZE_BASE scaled by its
  priority), so the solver serves every visit that fits, higher priority first;
- the objective is distance; durations only constrain.
CPU-heavy: call `solve` in a worker process (scheduler/planning/worker.py), never in the
server's event loop or its thread pool.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass

from pyvrp import Model, PenaltyParams, Result, SolveParams
from pyvrp.exceptions import PenaltyBoundWarning
from pyvrp.stop import MaxRuntime, MultipleCriteria, NoImprovement

from scheduler.planning import travel
from scheduler.planning.problem import (
    REASONS,
    Matrix,
    Plan,
    Problem,
    Route,
    Staff,
    Stop,
    Totals,
    Unserved,
    Visit,
)

# A prize worth more than any detour: serving a visit that fits always beats leaving it out.
# Priority p multiplies it by (10 + p) / 10, so a visit of priority 10 outweighs two of 0.
PRIZE_PRIORITY_STEP = 10
ROOM = 1_000_000  # "no limit" on a load dimension (PyVRP wants integers)


@dataclass(frozen=True)
class ShiftRef:
    staff: Staff
    shift: int


def _prize_base(m: Matrix) -> int:
    longest = max((max(row) for row in m.distances), default=0)
    return 2 * longest + 1


def _prize(visit: Visit, base: int) -> int:
    return base * (PRIZE_PRIORITY_STEP + visit.priority) // PRIZE_PRIORITY_STEP


def _skills(problem: Problem) -> list[str]:
    return sorted({k for s in problem.staff for k in s.skills})


def _eligible(problem: Problem, visit: Visit) -> list[ShiftRef]:
    need = set(visit.skills)
    return [
        ShiftRef(s, i) for s in problem.staff if need <= set(s.skills) for i in range(len(s.shifts))
    ]


def _reachable(problem: Problem, m: Matrix, visit: Visit, v: int) -> bool:
    """Whether some eligible shift can go out, serve the visit in a window and come back."""
    depot_index = {d.id: i for i, d in enumerate(problem.depots)}
    for ref in _eligible(problem, visit):
        sh = ref.staff.shifts[ref.shift]
        d = depot_index[ref.staff.depot]
        if sh.max_visits == 0 or (
            ref.staff.capacity is not None and visit.load > ref.staff.capacity
        ):
            continue
        for w in visit.windows:
            start = max(sh.start + m.durations[d][v], w.start)
            end = start + visit.duration
            if end <= w.end and end + m.durations[v][d] <= sh.end:
                return True
    return False


def solve(problem: Problem, *, seconds: float, seed: int = 1, matrix: Matrix | None = None) -> Plan:
    """The plan of `problem` within about `seconds` of solver time (blocking: CPU-bound)."""
    t0 = time.perf_counter()
    m = matrix or travel.matrix(problem)
    nd = len(problem.depots)
    skills = _skills(problem)
    unserved: list[Unserved] = []
    planned: list[tuple[int, Visit]] = []  # (point index, visit)
    for i, v in enumerate(problem.visits):
        point = nd + i
        if not _eligible(problem, v):
            unserved.append(_unserved(v, "no_staff_skill"))
        elif not _reachable(problem, m, v, point):
            unserved.append(_unserved(v, "unreachable"))
        else:
            planned.append((point, v))
    result, clients = _run(problem, m, planned, skills, seconds, seed, relax=False)
    if not result.is_feasible() and any(v.required for _, v in planned):
        # Required visits that cannot all fit together: plan the rest and say which are out.
        result, clients = _run(problem, m, planned, skills, seconds, seed, relax=True)
    return _plan(problem, m, result, clients, planned, unserved, time.perf_counter() - t0)


def _unserved(v: Visit, reason: str) -> Unserved:
    return Unserved(visit=v.id, required=v.required, reason=reason, detail=REASONS[reason][1])


def _run(
    problem: Problem,
    m: Matrix,
    planned: list[tuple[int, Visit]],
    skills: list[str],
    seconds: float,
    seed: int,
    *,
    relax: bool,
) -> tuple[Result, list[tuple[int, int]]]:
    """Build and solve the model; `clients[k]` = (visit position in `planned`, window)."""
    model = Model()
    used = [*range(len(problem.depots)), *(p for p, _ in planned)]
    locs = {p: model.add_location(0, 0) for p in used}
    for p in used:
        for q in used:
            if p != q:
                model.add_edge(
                    locs[p], locs[q], distance=m.distances[p][q], duration=m.durations[p][q]
                )
    depots = {d.id: model.add_depot(locs[i], name=d.id) for i, d in enumerate(problem.depots)}
    base = _prize_base(m)
    dims = 2 + len(skills)
    clients: list[tuple[int, int]] = []
    for k, (p, v) in enumerate(planned):
        delivery = [1, v.load] + [1 if s in v.skills else 0 for s in skills]
        required = v.required and not relax
        prize = _prize(v, base) * (10 if v.required else 1)
        windows = [(w_i, w) for w_i, w in enumerate(v.windows) if w.end - w.start >= v.duration]
        group = model.add_client_group(required=required) if len(windows) > 1 else None
        for w_i, w in windows:
            model.add_client(
                locs[p],
                delivery=delivery,
                service_duration=v.duration,
                tw_early=w.start,
                tw_late=w.end - v.duration,
                prize=0 if required else prize,
                required=required and group is None,
                group=group,
                name=f"{v.id}#{w_i}",
            )
            clients.append((k, w_i))
    for s in problem.staff:
        for i, sh in enumerate(s.shifts):
            cap = [
                ROOM if sh.max_visits is None else sh.max_visits,
                ROOM if s.capacity is None else s.capacity,
            ] + [ROOM if k in s.skills else 0 for k in skills]
            assert len(cap) == dims
            model.add_vehicle_type(
                1,
                capacity=cap,
                start_depot=depots[s.depot],
                end_depot=depots[s.depot],
                tw_early=sh.start,
                tw_late=sh.end,
                name=f"{s.id}#{i}",
            )
    stop = MultipleCriteria([MaxRuntime(seconds), NoImprovement(20_000)])
    # Prizes are large next to distances, so a breach (time warp, excess load) must be able to
    # cost more than a prize, or the search keeps breaches to collect prizes (PyVRP's
    # PenaltyBoundWarning). The default bound is 100,000.
    biggest = max((_prize(v, base) * (10 if v.required else 1) for _, v in planned), default=0)
    params = SolveParams(penalty=PenaltyParams(max_penalty=max(100_000.0, 10.0 * biggest)))
    with warnings.catch_warnings():
        # Raised when required visits cannot all fit; solve() then plans without them.
        warnings.simplefilter("ignore", PenaltyBoundWarning)
        result = model.solve(stop, seed=seed, display=False, collect_stats=False, params=params)
    return result, clients


def _plan(
    problem: Problem,
    m: Matrix,
    result: Result,
    clients: list[tuple[int, int]],
    planned: list[tuple[int, Visit]],
    unserved: list[Unserved],
    elapsed: float,
) -> Plan:
    shifts = [(s, i) for s in problem.staff for i in range(len(s.shifts))]
    routes: list[Route] = []
    served: set[int] = set()
    feasible = result.is_feasible()
    for r in result.best.routes() if feasible else []:
        staff, shift = shifts[r.vehicle_type()]
        stops = []
        for a in r.schedule():
            if not a.is_client():
                continue
            k, w_i = clients[a.idx]
            served.add(k)
            stops.append(
                Stop(
                    visit=planned[k][1].id,
                    window=w_i,
                    arrival=a.start_time - a.wait_duration,
                    start=a.start_time,
                    end=a.end_time,
                )
            )
        routes.append(
            Route(
                staff=staff.id,
                shift=shift,
                depot=staff.depot,
                start=r.start_time(),
                end=r.end_time(),
                distance=r.distance(),
                duration=r.duration(),
                stops=stops,
            )
        )
    for k, (_, v) in enumerate(planned):
        if k not in served:
            unserved.append(_unserved(v, "day_full"))
    order = {v.id: i for i, v in enumerate(problem.visits)}
    unserved.sort(key=lambda u: order[u.visit])
    routes.sort(key=lambda r: (r.staff, r.shift))
    served_ids = {s.visit for r in routes for s in r.stops}
    return Plan(
        routes=routes,
        unserved=unserved,
        totals=Totals(
            distance=sum(r.distance for r in routes),
            duration=sum(r.duration for r in routes),
            served=len(served_ids),
            unserved=len(unserved),
            served_priority=sum(v.priority for v in problem.visits if v.id in served_ids),
            required_unserved=sum(1 for u in unserved if u.required),
        ),
        feasible=feasible,
        seconds=round(elapsed, 3),
    )
