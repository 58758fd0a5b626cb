"""Erlang C: how many clerks a line needs to call its residents within a target wait.

With arrivals λ per second, mean handling time AHT seconds and N clerks, the offered load is
A = λ·AHT erlangs. The probability that a resident has to wait at all is C(N, A); the share
called within t seconds is SL(t) = 1 − C(N, A)·e^(−(N−A)·t/AHT), and the mean wait is
ASA = C(N, A)·AHT/(N − A). The model assumes steady Poisson arrivals and patient residents,
so it is rough below about 5 clerks a line: it sizes, it does not promise.
"""

from __future__ import annotations

import math

# More clerks than any line has; the search for the smallest N stops here.
MAX_AGENTS = 200


def erlang_c(agents: int, load: float) -> float:
    """C(N, A): the probability that an arriving resident waits (1.0 when N <= A)."""
    if load <= 0:
        return 0.0
    if agents <= load:
        return 1.0
    # Erlang B by its stable recurrence, then C from B.
    b = 1.0
    for n in range(1, agents + 1):
        b = load * b / (n + load * b)
    return b / (1 - (load / agents) * (1 - b))


def service_level(agents: int, arrivals_per_s: float, aht_s: float, target_s: float) -> float:
    """SL(t): the share of residents called within target_s seconds."""
    load = arrivals_per_s * aht_s
    if load <= 0:
        return 1.0
    if agents <= load:
        return 0.0
    c = erlang_c(agents, load)
    return 1 - c * math.exp(-(agents - load) * target_s / aht_s)


def mean_wait(agents: int, arrivals_per_s: float, aht_s: float) -> float:
    """ASA: the mean wait in seconds (infinite when the line cannot keep up)."""
    load = arrivals_per_s * aht_s
    if load <= 0:
        return 0.0
    if agents <= load:
        return math.inf
    return erlang_c(agents, load) * aht_s / (agents - load)


def agents_needed(arrivals_per_s: float, aht_s: float, target_s: float, level: float) -> int:
    """The fewest clerks whose service level reaches `level` (0 when nobody arrives)."""
    if arrivals_per_s <= 0:
        return 0
    n = max(1, math.floor(arrivals_per_s * aht_s) + 1)
    while n < MAX_AGENTS and service_level(n, arrivals_per_s, aht_s, target_s) < level:
        n += 1
    return n
