"""Synthetic planning problems: the demo district's shape, and random planar VRPTW.

Used by the tests (small ones) and bench/routing.py (full size). Deterministic per seed.
"""

from __future__ import annotations

import math
import random
from typing import Any

from web.demo.geography import TOWNS

MORNING = {"start": "09:00", "end": "12:00"}
AFTERNOON = {"start": "14:00", "end": "17:30"}
SKILLS = ("disability_assessment", "hukou_officer")


def _hm(seconds: int) -> str:
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}"


def _windows(rng: random.Random, duration: int) -> list[dict[str, str]]:
    """Residents say when they are in: a morning or afternoon span, sometimes two, or all day."""
    r = rng.random()
    if r < 0.12:
        return [{"start": "09:00", "end": "17:30"}]

    def span(lo: int, hi: int) -> dict[str, str]:
        length = rng.choice((2, 2, 3)) * 3600
        length = max(length, duration + 1800)
        start = rng.randrange(lo, max(lo + 1, hi - length), 900)
        return {"start": _hm(start), "end": _hm(min(hi, start + length))}

    am, pm = span(9 * 3600, 12 * 3600), span(14 * 3600, 17 * 3600 + 1800)
    if r < 0.42:
        return [am, pm]
    return [am] if r < 0.71 else [pm]


def district(
    seed: int = 1, visits: int = 300, staff: int = 20, depots: int = len(TOWNS)
) -> dict[str, Any]:
    """A day of the demo district: a depot per town centre, staff on two shifts with a lunch
    break, some with a skill, visits around the towns' communities."""
    rng = random.Random(seed)
    towns = TOWNS[:depots]
    problem_depots = [{"id": t["code"], "lat": t["lat"], "lon": t["lng"]} for t in towns]
    people = []
    for i in range(staff):
        town = towns[i % len(towns)]
        skills = [SKILLS[0]] if i % 4 == 0 else [SKILLS[1]] if i % 4 == 1 else []
        people.append(
            {
                "id": f"staff{i + 1:02d}",
                "depot": town["code"],
                "shifts": [dict(MORNING, max_visits=6), dict(AFTERNOON, max_visits=7)],
                "skills": skills,
            }
        )
    out = []
    for i in range(visits):
        town = rng.choice(towns)
        # ~1.5 km around the town centre (communities lie around it), 1 degree ~ 111 km
        r, a = 1500 * math.sqrt(rng.random()), rng.random() * 2 * math.pi
        lat = town["lat"] + r * math.cos(a) / 111_000
        lon = town["lng"] + r * math.sin(a) / (111_000 * math.cos(math.radians(town["lat"])))
        duration = rng.choice((10, 15, 15, 20, 20, 25, 30)) * 60
        x = rng.random()
        need = [SKILLS[0]] if x < 0.12 else [SKILLS[1]] if x < 0.2 else []
        aged80 = rng.random() < 0.25
        urgent = rng.random() < 0.04
        waited = rng.randrange(0, 6)
        out.append(
            {
                "id": f"v{i + 1:03d}",
                "lat": round(lat, 6),
                "lon": round(lon, 6),
                "duration": duration,
                "windows": _windows(rng, duration),
                "skills": need,
                "priority": (10 if urgent else 0) + (3 if aged80 else 0) + waited,
                "required": urgent,
            }
        )
    return {
        "depots": problem_depots,
        "staff": people,
        "visits": out,
        "travel": {"kind": "coordinates", "speed_kmh": 25, "detour": 1.3},
    }


def planar(seed: int = 1, visits: int = 200, vehicles: int = 25) -> dict[str, Any]:
    """Random VRPTW in the style of Solomon's R1 class: one central depot in a 20 km square,
    visits anywhere, one window each, a capacity per vehicle."""
    rng = random.Random(seed)
    side = 20_000
    horizon = (8 * 3600, 18 * 3600)
    out = []
    for i in range(visits):
        duration = 10 * 60
        start = rng.randrange(horizon[0], horizon[1] - 2 * 3600, 300)
        length = rng.choice((1, 1, 2)) * 3600
        out.append(
            {
                "id": f"c{i + 1:03d}",
                "x": rng.uniform(0, side),
                "y": rng.uniform(0, side),
                "duration": duration,
                "windows": [{"start": _hm(start), "end": _hm(min(horizon[1], start + length))}],
                "load": rng.randrange(1, 30),
            }
        )
    return {
        "depots": [{"id": "depot", "x": side / 2, "y": side / 2}],
        "staff": [
            {
                "id": f"car{i + 1:02d}",
                "depot": "depot",
                "shifts": [{"start": _hm(horizon[0]), "end": _hm(horizon[1])}],
                "capacity": 200,
            }
            for i in range(vehicles)
        ],
        "visits": out,
        "travel": {"kind": "coordinates", "speed_kmh": 30, "detour": 1.0},
    }
