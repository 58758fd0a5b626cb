"""The home-visit planning problem and its plan, as JSON (docs/planning.md).

One format for the CLI (`cloudwindow plan-visits`), the API, the UI and bench/routing.py.
Clock times are "HH:MM" (or seconds after midnight); durations are integer seconds; distances
integer metres. Everything is checked before a solver sees it: an unknown field, a window that
ends before it starts, a skill no staff member has or a negative duration is refused with the
field's path.
"""

from __future__ import annotations

import itertools
import re
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

DAY_S = 24 * 3600
MAX_VISITS = 5_000
MAX_STAFF = 500
MAX_DEPOTS = 500
_CLOCK = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)(?::([0-5]\d))?$")


def _clock(v: object) -> object:
    """ "HH:MM" or "HH:MM:SS" to seconds after midnight; an int is taken as seconds already."""
    if isinstance(v, str):
        m = _CLOCK.match(v.strip())
        if not m:
            raise ValueError("a time of day is written HH:MM, e.g. 09:30")
        return int(m[1]) * 3600 + int(m[2]) * 60 + int(m[3] or 0)
    return v


Clock = Annotated[int, BeforeValidator(_clock), Field(ge=0, le=2 * DAY_S)]
Seconds = Annotated[int, Field(ge=0, le=DAY_S)]
Key = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
Skill = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Window(Strict):
    """A span of the day; a visit must start and finish inside one of its windows."""

    start: Clock
    end: Clock

    @model_validator(mode="after")
    def _ordered(self) -> Window:
        if self.end <= self.start:
            raise ValueError("a window must end after it starts")
        return self


class Depot(Strict):
    """Where staff start and end a shift: their town centre."""

    id: Key
    lat: float | None = Field(default=None, ge=-90, le=90)
    lon: float | None = Field(default=None, ge=-180, le=180)
    x: float | None = Field(default=None, ge=-1e8, le=1e8)  # planar metres
    y: float | None = Field(default=None, ge=-1e8, le=1e8)


class Shift(Window):
    """One stretch of work; a lunch break is the gap between two shifts."""

    max_visits: int | None = Field(default=None, ge=0, le=1000)


class Staff(Strict):
    id: Key
    depot: Key
    shifts: list[Shift] = Field(min_length=1, max_length=6)
    skills: list[Skill] = Field(default_factory=list, max_length=32)
    capacity: int | None = Field(default=None, ge=0, le=1_000_000)  # of the visits' load

    @model_validator(mode="after")
    def _shifts_apart(self) -> Staff:
        spans = sorted((s.start, s.end) for s in self.shifts)
        if any(a[1] > b[0] for a, b in itertools.pairwise(spans)):
            raise ValueError("a staff member's shifts must not overlap")
        return self


class Visit(Depot):
    duration: Seconds  # service time at the door
    windows: list[Window] = Field(min_length=1, max_length=8)
    skills: list[Skill] = Field(default_factory=list, max_length=8)
    # Higher is served first when not everything fits (urgent, aged 80+, days waited).
    priority: int = Field(default=0, ge=0, le=1000)
    # A required visit must be in the plan; the others may move to the next day.
    required: bool = False
    load: int = Field(default=0, ge=0, le=1_000_000)

    @model_validator(mode="after")
    def _fits_a_window(self) -> Visit:
        if all(w.end - w.start < self.duration for w in self.windows):
            raise ValueError("every window is shorter than the visit's duration")
        return self


class Coordinates(Strict):
    """Travel from coordinates: great-circle (lat/lon) or straight-line (x/y) distance, times
    a detour factor, at a speed."""

    kind: Literal["coordinates"] = "coordinates"
    speed_kmh: float = Field(default=25.0, gt=0, le=200)
    detour: float = Field(default=1.3, ge=1.0, le=3.0)


class Matrix(Strict):
    """Travel given outright, indexed by depots then visits in the order of the problem."""

    kind: Literal["matrix"]
    durations: list[list[Annotated[int, Field(ge=0, le=10 * DAY_S)]]]
    distances: list[list[Annotated[int, Field(ge=0, le=10**8)]]]


class Problem(Strict):
    depots: list[Depot] = Field(min_length=1, max_length=MAX_DEPOTS)
    staff: list[Staff] = Field(min_length=1, max_length=MAX_STAFF)
    visits: list[Visit] = Field(default_factory=list, max_length=MAX_VISITS)
    travel: Coordinates | Matrix = Field(default_factory=Coordinates, discriminator="kind")

    @model_validator(mode="after")
    def _consistent(self) -> Problem:
        _unique("depots", [d.id for d in self.depots])
        _unique("staff", [s.id for s in self.staff])
        _unique("visits", [v.id for v in self.visits])
        depots = {d.id for d in self.depots}
        for i, s in enumerate(self.staff):
            if s.depot not in depots:
                raise ValueError(f"staff[{i}].depot: no depot {s.depot!r}")
        known = {k for s in self.staff for k in s.skills}
        for i, v in enumerate(self.visits):
            missing = sorted(set(v.skills) - known)
            if missing:
                raise ValueError(f"visits[{i}].skills: no staff member has {', '.join(missing)}")
        points = [*self.depots, *self.visits]
        if isinstance(self.travel, Matrix):
            n = len(points)
            for name in ("durations", "distances"):
                rows = getattr(self.travel, name)
                if len(rows) != n or any(len(r) != n for r in rows):
                    raise ValueError(f"travel.{name}: must be {n}×{n} (depots, then visits)")
        else:
            geo = [p.lat is not None and p.lon is not None for p in points]
            flat = [p.x is not None and p.y is not None for p in points]
            if not (all(geo) or all(flat)):
                raise ValueError(
                    "every depot and visit needs lat/lon (or every one x/y) for coordinate travel"
                )
        return self


def _unique(what: str, ids: list[str]) -> None:
    seen: set[str] = set()
    for i, k in enumerate(ids):
        if k in seen:
            raise ValueError(f"{what}[{i}].id: {k!r} appears twice")
        seen.add(k)


# -- the plan


class Stop(Strict):
    visit: str
    window: int  # which of the visit's windows it is served in
    arrival: int  # seconds after midnight
    start: int
    end: int


class Route(Strict):
    staff: str
    shift: int  # index into the staff member's shifts
    depot: str
    start: int
    end: int
    distance: int  # metres
    duration: int  # seconds, from leaving the depot to coming back
    stops: list[Stop]


class Unserved(Strict):
    visit: str
    required: bool
    reason: str  # a code, see REASONS
    detail: str


# Why a visit is not in the plan, in words a coordinator reads (zh-CN, en).
REASONS = {
    "no_staff_skill": ("没有具备所需技能且在岗的人员", "nobody on shift has the skills it needs"),
    "unreachable": (
        "在任何班次内都无法按预约时段到达并完成",
        "no shift can reach it and finish within its time windows",
    ),
    "day_full": (
        "当天的班次已排满，顺延到下一天",
        "the day's shifts are full with visits of higher priority; moves to the next day",
    ),
}


class Totals(Strict):
    distance: int
    duration: int
    served: int
    unserved: int
    served_priority: int
    required_unserved: int


class Plan(Strict):
    routes: list[Route]
    unserved: list[Unserved]
    totals: Totals
    feasible: bool
    seconds: float  # solver time used
    solver: str = "pyvrp"
