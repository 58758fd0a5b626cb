"""Times and rules of a plan whose routes were given by hand (a coordinator's move).

`schedule()` takes the visits of each route in order and works out when each one is reached
and served, the way the solver's plans are timed: leave the depot so as to reach the first door
when its window opens, serve each visit in the first of its windows it fits, wait when early.
It names every rule the routes break, the rules tests/scheduler/checker.py checks: skills,
windows, the shift's end (lunch breaks are the gaps between shifts), max_visits and capacity.
Cheap (no solver): it runs in the request, like the matrix from coordinates.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from scheduler.planning.problem import (
    Matrix,
    Plan,
    Problem,
    Route,
    Stop,
    Totals,
    Unserved,
    Visit,
)


@dataclass(frozen=True)
class Sequence:
    """One route as the coordinator wants it: a shift of a staff member and its visits."""

    staff: str
    shift: int
    visits: tuple[str, ...]
    # A start time asked for a visit (seconds after midnight); others start when they can.
    starts: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Breach:
    """A rule the routes break: a code, the visit (or None for the route) and the numbers."""

    code: str  # skill | window | time | shift | max_visits | capacity | unknown | twice
    staff: str
    visit: str | None = None
    at: int | None = None  # the time it happens (an end, a return), seconds after midnight
    limit: int | None = None  # the limit broken (a window's end, the shift's end, a count)


def sequences(plan: Plan) -> list[Sequence]:
    return [Sequence(r.staff, r.shift, tuple(s.visit for s in r.stops)) for r in plan.routes]


def schedule(
    problem: Problem,
    m: Matrix,
    routes: list[Sequence],
    *,
    unserved: list[Unserved] = (),  # type: ignore[assignment]
) -> tuple[Plan, list[Breach]]:
    """The plan of these routes, timed, and every rule they break ([] when none).

    Visits in no route are listed as unserved: with the reason given in `unserved`, else
    `day_full` (left out by hand)."""
    nd = len(problem.depots)
    depot_at = {d.id: i for i, d in enumerate(problem.depots)}
    visit_at = {v.id: (nd + i, v) for i, v in enumerate(problem.visits)}
    staff = {s.id: s for s in problem.staff}
    breaches: list[Breach] = []
    out: list[Route] = []
    seen: set[str] = set()
    for seq in routes:
        s = staff.get(seq.staff)
        if s is None or not 0 <= seq.shift < len(s.shifts):
            breaches.append(Breach("unknown", seq.staff))
            continue
        if not seq.visits:
            continue
        sh = s.shifts[seq.shift]
        home = depot_at[s.depot]
        stops: list[Stop] = []
        t, here, dist, load = sh.start, home, 0, 0
        for vid in seq.visits:
            if vid not in visit_at:
                breaches.append(Breach("unknown", s.id, vid))
                continue
            if vid in seen:
                breaches.append(Breach("twice", s.id, vid))
                continue
            seen.add(vid)
            p, v = visit_at[vid]
            if not set(v.skills) <= set(s.skills):
                breaches.append(Breach("skill", s.id, vid))
            arrival = t + m.durations[here][p]
            dist += m.distances[here][p]
            window, start, problem_code = _place(v, arrival, seq.starts.get(vid))
            if problem_code:
                limit = seq.starts.get(vid) if problem_code == "time" else v.windows[window].end
                breaches.append(Breach(problem_code, s.id, vid, at=start + v.duration, limit=limit))
            stops.append(
                Stop(visit=vid, window=window, arrival=arrival, start=start, end=start + v.duration)
            )
            load += v.load
            t, here = start + v.duration, p
        if not stops:
            continue
        back = t + m.durations[here][home]
        dist += m.distances[here][home]
        if back > sh.end:
            breaches.append(Breach("shift", s.id, at=back, limit=sh.end))
        if sh.max_visits is not None and len(stops) > sh.max_visits:
            breaches.append(Breach("max_visits", s.id, at=len(stops), limit=sh.max_visits))
        if s.capacity is not None and load > s.capacity:
            breaches.append(Breach("capacity", s.id, at=load, limit=s.capacity))
        # Leave as late as the first visit allows, so nobody waits at the first door.
        first = visit_at[stops[0].visit][0]
        leave = max(sh.start, stops[0].start - m.durations[home][first])
        shift_by = leave - sh.start
        stops[0] = stops[0].model_copy(update={"arrival": stops[0].arrival + shift_by})
        out.append(
            Route(
                staff=s.id,
                shift=seq.shift,
                depot=s.depot,
                start=leave,
                end=back,
                distance=dist,
                duration=back - leave,
                stops=stops,
            )
        )
    given = {u.visit: u for u in unserved}
    left = [
        given.get(v.id)
        or Unserved(
            visit=v.id,
            required=v.required,
            reason="day_full",
            detail="left out of the day's routes",
        )
        for v in problem.visits
        if v.id not in seen
    ]
    served = {st.visit for r in out for st in r.stops}
    out.sort(key=lambda r: (r.staff, r.shift))
    plan = Plan(
        routes=out,
        unserved=left,
        totals=Totals(
            distance=sum(r.distance for r in out),
            duration=sum(r.duration for r in out),
            served=len(served),
            unserved=len(left),
            served_priority=sum(v.priority for v in problem.visits if v.id in served),
            required_unserved=sum(1 for u in left if u.required),
        ),
        feasible=not breaches,
        seconds=0.0,
        solver="by_hand",
    )
    return plan, breaches


def _place(v: Visit, arrival: int, asked: int | None) -> tuple[int, int, str]:
    """(window index, start, breach code or "") for a visit reached at `arrival`."""
    if asked is not None:
        start = max(arrival, asked)
        for i, w in enumerate(v.windows):
            if w.start <= start and start + v.duration <= w.end:
                return i, start, "" if arrival <= asked else "time"
        return 0, start, "time" if arrival > asked else "window"
    for i, w in enumerate(v.windows):
        start = max(arrival, w.start)
        if start + v.duration <= w.end:
            return i, start, ""
    # It fits no window: timed in the last window it could reach (or the first), and named.
    reachable = [i for i, w in enumerate(v.windows) if arrival < w.end]
    i = reachable[0] if reachable else len(v.windows) - 1
    return i, max(arrival, v.windows[i].start), "window"
