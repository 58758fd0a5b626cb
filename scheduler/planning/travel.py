"""Travel times and distances between the points of a problem (depots, then visits).

Offline, the default: great-circle distance (or straight-line, for planar x/y) times a detour
factor, at a speed. When a road router is configured, an OSRM-compatible `/table` service gives
real road durations and distances instead (docs/planning.md gives the reasons for the defaults).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import aiohttp
import numpy as np

from core.errors import Invalid, Unavailable
from scheduler.planning.problem import Coordinates, Depot, Matrix, Problem

EARTH_RADIUS_M = 6_371_008.8  # mean radius (IUGG)
# OSRM answers null for a pair it cannot route; such a pair is made too long to be used.
UNROUTABLE_S = 10 * 24 * 3600
UNROUTABLE_M = 10**8
MAX_OSRM_POINTS = 1000  # osrm-routed's default --max-table-size is 100; servers raise it


def points(problem: Problem) -> list[Depot]:
    return [*problem.depots, *problem.visits]


def coordinate_matrix(pts: Sequence[Depot], travel: Coordinates) -> Matrix:
    """Durations (s) and distances (m) from coordinates, rounded to integers."""
    if pts and pts[0].lat is not None:
        lat = np.radians([p.lat for p in pts])
        lon = np.radians([p.lon for p in pts])
        dlat = lat[:, None] - lat[None, :]
        dlon = lon[:, None] - lon[None, :]
        a = np.sin(dlat / 2) ** 2 + np.cos(lat)[:, None] * np.cos(lat)[None, :] * (
            np.sin(dlon / 2) ** 2
        )
        straight = 2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))
    else:
        xy = np.array([[p.x, p.y] for p in pts], dtype=float).reshape(-1, 2)
        straight = np.hypot(xy[:, None, 0] - xy[None, :, 0], xy[:, None, 1] - xy[None, :, 1])
    metres = straight * travel.detour
    seconds = metres / (travel.speed_kmh / 3.6)
    return Matrix(
        kind="matrix",
        durations=np.rint(seconds).astype(np.int64).tolist(),
        distances=np.rint(metres).astype(np.int64).tolist(),
    )


def matrix(problem: Problem) -> Matrix:
    if isinstance(problem.travel, Matrix):
        return problem.travel
    return coordinate_matrix(points(problem), problem.travel)


class RoadRouter:
    """An OSRM-compatible table service (`GET {url}/table/v1/{profile}/{lon,lat;...}`)."""

    def __init__(self, url: str, *, profile: str = "driving", timeout_s: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.profile = profile
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)

    async def table(self, pts: Sequence[Depot]) -> Matrix:
        if len(pts) > MAX_OSRM_POINTS:
            raise Invalid("planning.too_many_points", n=len(pts), max=MAX_OSRM_POINTS)
        if any(p.lat is None or p.lon is None for p in pts):
            raise Invalid("planning.road_needs_lat_lon")
        coords = ";".join(f"{p.lon:.6f},{p.lat:.6f}" for p in pts)
        url = f"{self.url}/table/v1/{self.profile}/{coords}"
        try:
            async with aiohttp.ClientSession(timeout=self.timeout) as http:
                async with http.get(url, params={"annotations": "duration,distance"}) as r:
                    body = await r.json(content_type=None)
        except (TimeoutError, aiohttp.ClientError, ValueError) as e:
            raise Unavailable("planning.router_unavailable", reason=type(e).__name__) from e
        if not isinstance(body, dict) or body.get("code") != "Ok":
            code = body.get("code") if isinstance(body, dict) else None
            raise Unavailable("planning.router_unavailable", reason=str(code or r.status)[:40])
        n = len(pts)
        return Matrix(
            kind="matrix",
            durations=_grid(body.get("durations"), n, UNROUTABLE_S),
            distances=_grid(body.get("distances"), n, UNROUTABLE_M),
        )


def _grid(rows: object, n: int, missing: int) -> list[list[int]]:
    if not isinstance(rows, list) or len(rows) != n:
        raise Unavailable("planning.router_unavailable", reason="table shape")
    out = []
    for row in rows:
        if not isinstance(row, list) or len(row) != n:
            raise Unavailable("planning.router_unavailable", reason="table shape")
        out.append(
            [missing if v is None or not math.isfinite(v) else min(round(v), missing) for v in row]
        )
    return out
