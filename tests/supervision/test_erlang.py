"""Erlang C against published tables and the identities the formula must keep."""

from __future__ import annotations

import math

import pytest

from supervision.erlang import agents_needed, erlang_c, mean_wait, service_level


# Published Erlang C values C(N, A) (e.g. the tables in Cooper, Introduction to Queueing
# Theory; any Erlang C calculator gives the same to 4 places).
@pytest.mark.parametrize(
    ("agents", "load", "expected"),
    [
        (1, 0.5, 0.5),  # M/M/1: C = ρ
        (2, 1.0, 0.3333),
        (3, 2.0, 0.4444),
        (5, 3.0, 0.2362),
        (10, 8.0, 0.4092),
        (3, 1.5, 0.2368),
        (4, 3.0, 0.5094),
        (6, 5.0, 0.5875),
        (7, 5.0, 0.3241),
        (22, 20.0, 0.5679),
    ],
)
def test_erlang_c_matches_published_values(agents: int, load: float, expected: float) -> None:
    assert erlang_c(agents, load) == pytest.approx(expected, abs=5e-4)


def _closed_form(agents: int, load: float) -> float:
    """C(N, A) by the textbook sum, independent of the recurrence the module uses."""
    top = load**agents / math.factorial(agents) * agents / (agents - load)
    return top / (sum(load**k / math.factorial(k) for k in range(agents)) + top)


def test_a_large_line_agrees_with_the_closed_form() -> None:
    """360 residents an hour at 4 minutes each is 24 erlangs."""
    lam, aht = 360 / 3600, 240.0
    for agents in (25, 28, 32):
        assert erlang_c(agents, lam * aht) == pytest.approx(_closed_form(agents, 24.0), rel=1e-9)
    n = agents_needed(lam, aht, 20, 0.8)
    assert service_level(n, lam, aht, 20) >= 0.8 > service_level(n - 1, lam, aht, 20)
    assert mean_wait(n, lam, aht) == pytest.approx(erlang_c(n, 24.0) * aht / (n - 24.0))


def test_edges_and_monotonicity() -> None:
    assert erlang_c(3, 0.0) == 0.0 and erlang_c(2, 2.0) == 1.0 and erlang_c(2, 3.0) == 1.0
    assert service_level(2, 1 / 60, 300, 900) == 0.0  # load 5 on 2 clerks: never keeps up
    assert math.isinf(mean_wait(2, 1 / 60, 300))
    assert agents_needed(0.0, 300, 900, 0.9) == 0
    levels = [service_level(n, 1 / 120, 480, 900) for n in range(5, 12)]
    assert levels == sorted(levels) and levels[-1] > 0.99
    # A cloud-window line: one resident every 6 minutes, 8 minutes each, 15-minute target.
    assert agents_needed(1 / 360, 480, 900, 0.9) == 3


# The worked example of call-centre staffing guides: 100 calls in 30 minutes, 180 s each
# (10 erlangs), a target of 80% answered within 20 s. Their table, agent by agent: the
# probability of waiting, the service level and the mean wait (ASA).
@pytest.mark.parametrize(
    ("agents", "waits", "level", "asa"),
    [
        (11, 0.6821, 0.3896, 122.8),
        (12, 0.4494, 0.6402, 40.4),
        (13, 0.2853, 0.7956, 17.1),
        (14, 0.1741, 0.8884, 7.8),
        (15, 0.1020, 0.9415, 3.7),
    ],
)
def test_the_published_worked_example(agents: int, waits: float, level: float, asa: float) -> None:
    lam, aht = 100 / 1800, 180.0
    assert erlang_c(agents, lam * aht) == pytest.approx(waits, abs=5e-4)
    assert service_level(agents, lam, aht, 20) == pytest.approx(level, abs=5e-4)
    assert mean_wait(agents, lam, aht) == pytest.approx(asa, abs=0.05)


def test_the_worked_example_needs_fourteen_agents() -> None:
    assert agents_needed(100 / 1800, 180.0, 20, 0.8) == 14
