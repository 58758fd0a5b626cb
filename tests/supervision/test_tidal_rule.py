"""The tidal rule on its own: the blend of arrivals, the windows, the donor floor and the rules
that keep clerks from being moved back and forth."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from core.settings import Settings
from supervision.models import TidalFit
from supervision.tidal import (
    COMPREHENSIVE,
    Candidate,
    LineState,
    Situation,
    blend,
    default_until,
    previous_window,
    suggest,
    window_start,
)

TZ = "Asia/Shanghai"
UNTIL = dt.datetime(2026, 3, 3, 3, 30, tzinfo=dt.UTC)
NAMES = {"household": {"household", "户籍"}, "civil_affairs": {"civil_affairs", "民政"}}


def test_blend_weights_the_current_window_against_the_mean_of_history() -> None:
    assert blend(20.0, [10.0, 14.0], 0.6) == pytest.approx(0.6 * 20 + 0.4 * 12)
    assert blend(20.0, [], 0.6) == 20.0  # no history: the current window alone
    assert blend(20.0, [8.0], 1.0) == 20.0
    assert blend(20.0, [8.0], 0.0) == 8.0


def test_windows_run_from_local_midnight() -> None:
    # 10:47 in Shanghai is 02:47 UTC: the 30-minute window began at 10:30 local.
    now = dt.datetime(2026, 3, 3, 2, 47, 12, tzinfo=dt.UTC)
    start = window_start(now, minutes=30, tz=TZ)
    assert start == dt.datetime(2026, 3, 3, 2, 30, tzinfo=dt.UTC)
    assert previous_window(start, minutes=30, tz=TZ) == dt.datetime(2026, 3, 3, 2, 0, tzinfo=dt.UTC)
    # Just after local midnight (16:05 UTC the day before) the previous window is 23:30 local.
    late = dt.datetime(2026, 3, 2, 16, 5, tzinfo=dt.UTC)
    first = window_start(late, minutes=30, tz=TZ)
    assert first == dt.datetime(2026, 3, 2, 16, 0, tzinfo=dt.UTC)
    assert previous_window(first, minutes=30, tz=TZ) == dt.datetime(
        2026, 3, 2, 15, 30, tzinfo=dt.UTC
    )


def test_the_default_end_is_rounded_up_to_a_window_boundary_within_the_allowed_stay() -> None:
    s = Settings(tidal_window_minutes=30, tidal_default_stay_minutes=60, tidal_min_stay_minutes=30)
    now = dt.datetime(2026, 3, 3, 2, 47, tzinfo=dt.UTC)  # 10:47 local
    assert default_until(now, s) == dt.datetime(2026, 3, 3, 4, 0, tzinfo=dt.UTC)  # 12:00
    on_boundary = dt.datetime(2026, 3, 3, 2, 30, tzinfo=dt.UTC)
    assert default_until(on_boundary, s) == dt.datetime(2026, 3, 3, 3, 30, tzinfo=dt.UTC)
    capped = Settings(tidal_default_stay_minutes=60, tidal_max_stay_minutes=45)
    assert default_until(now, capped) == now + dt.timedelta(minutes=45)


def line(line_id: int, dept: str, *, per_hour: float, clerks: int, **kw: Any) -> LineState:
    values: dict[str, Any] = {
        "line_id": line_id,
        "line_name": f"高桥镇·{dept}",
        "department": dept,
        "department_name": dept,
        "current_per_hour": per_hour,
        "history": [],
        "arrivals_per_hour": per_hour,
        "handling_seconds": 480,
        "handling_measured": True,
        "waiting": 0,
        "clerks": clerks,
        "target_seconds": 900,
        "target_level": 0.8,
    }
    return LineState(**(values | kw))


def clerk(staff_id: int, *line_ids: int, skills: tuple[str, ...] = ()) -> Candidate:
    return Candidate(staff_id, f"张{staff_id}", skills, frozenset(line_ids))


HOUSEHOLD, CIVIL, CIVIL_DISTRICT, MARKET = 1, 2, 3, 4


def lines() -> dict[int, LineState]:
    """户籍 is swamped (one clerk, 12 an hour at 8 minutes each); 民政 here and at the district
    have clerks to spare; 市场监管 is idle."""
    return {
        HOUSEHOLD: line(HOUSEHOLD, "household", per_hour=12, clerks=1),
        CIVIL: line(CIVIL, "civil_affairs", per_hour=4, clerks=3),
        CIVIL_DISTRICT: line(CIVIL_DISTRICT, "civil_affairs", per_hour=2, clerks=2),
        MARKET: line(MARKET, "market", per_hour=0, clerks=1),
    }


def run(
    states: dict[int, LineState],
    candidates: list[Candidate],
    *,
    before: set[int] | None = None,
    moves: Situation | None = None,
) -> list[Any]:
    return suggest(
        states=states,
        before={HOUSEHOLD} if before is None else before,
        candidates=candidates,
        moves=moves or Situation(),
        department_names=NAMES,
        until=UNTIL,
    )


def test_a_short_line_gets_the_fitting_clerks_it_needs_with_the_figures() -> None:
    states = lines()
    hh = states[HOUSEHOLD]
    assert hh.short and hh.needed == 3
    found = run(
        states,
        [clerk(12, CIVIL_DISTRICT, skills=("户籍",)), clerk(11, CIVIL, skills=("户籍",))],
    )
    # The donor left with most slack goes first: 民政 here keeps 99%, the district's 93%.
    assert [(s.staff_id, s.from_line_id, s.to_line_id, s.fit) for s in found] == [
        (11, CIVIL, HOUSEHOLD, TidalFit.skill),
        (12, CIVIL_DISTRICT, HOUSEHOLD, TidalFit.skill),
    ]
    first, second = found
    # Each figure follows from the one before: 1 -> 2 clerks, then 2 -> 3.
    assert first.target_sl_before == pytest.approx(hh.sl(1), abs=1e-4)
    assert first.target_sl_after == pytest.approx(hh.sl(2), abs=1e-4)
    assert second.target_sl_before == first.target_sl_after
    assert second.target_sl_after == pytest.approx(hh.sl(3), abs=1e-4)
    assert second.target_sl_after >= 0.8
    assert first.donor_sl_before == pytest.approx(states[CIVIL].sl(3), abs=1e-4)
    assert first.donor_sl_after == pytest.approx(states[CIVIL].sl(2), abs=1e-4)
    assert first.until == UNTIL


def test_the_donor_never_drops_below_its_own_goal() -> None:
    states = lines()
    # 民政 with 14 an hour on 3 clerks: with 2 it would call under 80% within 15 minutes.
    states[CIVIL] = line(CIVIL, "civil_affairs", per_hour=14, clerks=3)
    assert states[CIVIL].sl(3) >= 0.8 > states[CIVIL].sl(2)
    assert run(states, [clerk(11, CIVIL, skills=("户籍",))]) == []
    # A donor gives clerks only down to its floor: 民政 at 4 an hour spares one of its three.
    states = lines()
    civil = states[CIVIL]
    assert civil.sl(2) >= 0.8 > civil.sl(1)
    trio = [clerk(i, CIVIL, skills=("户籍",)) for i in (11, 12, 13)]
    taken = run(states, trio)
    assert [s.staff_id for s in taken] == [11]
    assert taken[0].donor_sl_after >= 0.8
    # A line nobody is coming to may give its only clerk (who keeps serving it as well).
    found = run(states, [clerk(14, MARKET, skills=(COMPREHENSIVE,))])
    assert [(s.staff_id, s.fit, s.donor_sl_after) for s in found] == [
        (14, TidalFit.qualification, 1.0)
    ]


def test_the_same_department_elsewhere_fits_first_and_a_clerk_who_fits_nothing_is_not_moved() -> (
    None
):
    states = lines()
    states[CIVIL_DISTRICT] = line(CIVIL_DISTRICT, "household", per_hour=2, clerks=2)
    found = run(
        states,
        [
            clerk(11, CIVIL, skills=("户籍",)),
            clerk(12, CIVIL_DISTRICT),  # 户籍 at the district: same department
            clerk(13, CIVIL),  # no skill for 户籍: never moved there
        ],
    )
    assert [(s.staff_id, s.fit) for s in found] == [
        (12, TidalFit.department),
        (11, TidalFit.skill),
    ]


def test_a_shortfall_must_persist_across_two_windows() -> None:
    states = lines()
    candidates = [clerk(11, CIVIL, skills=("户籍",))]
    assert run(states, candidates, before=set()) == []  # short now only: wait a window
    assert len(run(states, candidates, before={HOUSEHOLD})) == 1
    # Short before but not now: nothing either.
    states[HOUSEHOLD] = line(HOUSEHOLD, "household", per_hour=1, clerks=1)
    assert not states[HOUSEHOLD].short
    assert run(states, candidates, before={HOUSEHOLD}) == []


def test_no_thrashing_while_moves_run() -> None:
    states = lines()
    candidates = [clerk(11, CIVIL, skills=("户籍",))]
    # A line that gave a clerk to a running move is not given one back from elsewhere...
    assert run(states, candidates, moves=Situation(giving={HOUSEHOLD})) == []
    # ...and a line that received one does not give one away.
    assert run(states, candidates, moves=Situation(receiving={CIVIL})) == []
    # Clerks on a move or just back from one are not candidates (overview() leaves them out).
    assert len(run(states, candidates)) == 1


def test_a_clerk_already_on_the_target_line_is_not_suggested() -> None:
    states = lines()
    assert run(states, [clerk(11, CIVIL, HOUSEHOLD, skills=("户籍",))]) == []
