"""The statistics recomputed straight from the ticket rows with plain SQL (a GROUP BY over
tickets, calls, ratings and the timeline): what the rollups must equal. Written apart from
supervision/rollup.py on purpose: it shares no code with what it checks."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import math
from collections import defaultdict
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import text

from core.db import Database


def _secs(dialect: str, a: str, b: str) -> str:
    if dialect == "postgresql":
        return f"EXTRACT(EPOCH FROM ({a} - {b}))"
    return f"((julianday({a}) - julianday({b})) * 86400.0)"


def day_range(
    first: dt.date, last: dt.date, tz: str = "Asia/Shanghai"
) -> tuple[dt.datetime, dt.datetime]:
    z = ZoneInfo(tz)
    start = dt.datetime.combine(first, dt.time(), z).astimezone(dt.UTC)
    end = dt.datetime.combine(last + dt.timedelta(days=1), dt.time(), z).astimezone(dt.UTC)
    return start, end


def _ts(dialect: str, v: dt.datetime) -> Any:
    return v if dialect == "postgresql" else v.replace(tzinfo=None).isoformat(" ", "microseconds")


async def recompute(
    url: str,
    *,
    start: dt.datetime,
    end: dt.datetime,
    line_ids: list[int] | None = None,
    item_id: int | None = None,
    clerk_id: int | None = None,
    target_s: float = 900.0,
) -> dict[str, Any]:
    """The figures of the tickets taken in [start, end) on the lines (and of the item, called
    by the clerk), with an exact p50/p90 of the waits."""
    db = Database(url)
    try:
        async with db.session() as s:
            d = db.dialect
            called_at = "COALESCE(c.created_at, t.called_at)"
            where = ["t.created_at >= :start", "t.created_at < :end"]
            params: dict[str, Any] = {"start": _ts(d, start), "end": _ts(d, end)}
            if item_id is not None:
                where.append(f"t.item_id = {int(item_id)}")
            ev_where = " AND ".join(where)  # a transfer counts on the line it left
            if line_ids is not None:
                where.append(f"t.line_id IN ({', '.join(str(int(i)) for i in line_ids) or '0'})")
            clerk_where = list(where)
            if clerk_id is not None:
                clerk_where.append(f"t.called_by = {int(clerk_id)}")
            w = " AND ".join(clerk_where)
            wait = _secs(d, called_at, "t.waiting_since")
            gave_up = _secs(d, "t.finished_at", "t.waiting_since")
            row = (
                await s.exec(
                    text(
                        f"""
SELECT count(*),
  SUM(CASE WHEN t.status = 'done' THEN 1 ELSE 0 END),
  SUM(CASE WHEN t.status = 'no_show' THEN 1 ELSE 0 END),
  SUM(CASE WHEN t.status = 'cancelled' THEN 1 ELSE 0 END),
  SUM(CASE WHEN t.status IN ('waiting', 'called', 'serving') THEN 1 ELSE 0 END),
  SUM(CASE WHEN {called_at} IS NOT NULL THEN 1 ELSE 0 END),
  AVG({wait}),
  SUM(CASE WHEN {wait} <= {target_s} THEN 1 ELSE 0 END),
  SUM(CASE WHEN t.status = 'cancelled' AND {called_at} IS NULL AND {gave_up} > {target_s}
      THEN 1 ELSE 0 END),
  AVG(CASE WHEN t.status = 'done' THEN {_secs(d, "t.finished_at", "t.answered_at")} END),
  count(r.score), AVG(r.score),
  SUM(CASE WHEN r.score = 5 THEN 1 ELSE 0 END), SUM(CASE WHEN r.score = 4 THEN 1 ELSE 0 END),
  SUM(CASE WHEN r.score = 3 THEN 1 ELSE 0 END), SUM(CASE WHEN r.score = 2 THEN 1 ELSE 0 END),
  SUM(CASE WHEN r.score = 1 THEN 1 ELSE 0 END)
FROM ticket t LEFT JOIN call c ON c.id = t.call_id LEFT JOIN case_rating r ON r.case_id = t.case_id
WHERE {w}"""
                    ),
                    params=params,
                )
            ).one()
            waits = sorted(
                float(x)
                for (x,) in (
                    await s.exec(
                        text(
                            f"SELECT {wait} FROM ticket t LEFT JOIN call c ON c.id = t.call_id "
                            f"WHERE {w} AND {called_at} IS NOT NULL"
                        ),
                        params=params,
                    )
                ).all()
            )
            calls = (
                await s.exec(
                    text(
                        f"""
SELECT count(*), SUM(CASE WHEN c.connected_at IS NOT NULL THEN 1 ELSE 0 END),
  AVG({_secs(d, "c.connected_at", "c.created_at")})
FROM call c JOIN ticket t ON t.id = c.ticket_id WHERE {w}"""
                    ),
                    params=params,
                )
            ).one()
            quality = [
                json.loads(q) if isinstance(q, str) else q
                for (q,) in (
                    await s.exec(
                        text(
                            "SELECT c.quality FROM call c JOIN ticket t ON t.id = c.ticket_id"
                            f" WHERE {w}"
                        ),
                        params=params,
                    )
                ).all()
            ]
            # Transfers: the line each left is the one named by the ticket's line event before.
            events = (
                await s.exec(
                    text(
                        f"""
SELECT e.case_id, e.id, e.kind, e.data, e.actor_id FROM case_event e
JOIN ticket t ON t.case_id = e.case_id
WHERE {ev_where} AND e.kind IN ('created', 'ticket.taken', 'status.transferred')
ORDER BY e.case_id, e.id"""
                    ),
                    params=params,
                )
            ).all()
            codes = {
                c: i for i, c in (await s.exec(text("SELECT id, code FROM window_line"))).all()
            }
    finally:
        await db.dispose()
    by_case: dict[int, list[Any]] = defaultdict(list)
    for case_id, _id, kind, data, actor in events:
        by_case[case_id].append((kind, json.loads(data) if isinstance(data, str) else data, actor))
    transferred: dict[int, int] = defaultdict(int)
    for evs in by_case.values():
        for prev, cur in itertools.pairwise(evs):
            if cur[0] == "status.transferred" and prev[1].get("line") in codes:
                if clerk_id is None or cur[2] == clerk_id:
                    transferred[codes[prev[1]["line"]]] += 1
    lines = set(line_ids) if line_ids is not None else None
    n = lambda v: int(v or 0)  # noqa: E731
    called = n(row[5])
    basis = called + n(row[8])
    poor = sum(
        1
        for q in quality
        if (q.get("packet_loss_pct") or 0) > 5
        or (q.get("rtt_ms") or 0) > 400
        or (q.get("fps") is not None and q["fps"] < 10)
    )
    return {
        "taken": n(row[0]),
        "served": n(row[1]),
        "no_shows": n(row[2]),
        "cancelled": n(row[3]),
        "open": n(row[4]),
        "called": called,
        "wait_mean_s": float(row[6]) if row[6] is not None else None,
        "service_level": n(row[7]) / basis if basis else None,
        "abandoned_after_target": n(row[8]),
        "handling_mean_s": float(row[9]) if row[9] is not None else None,
        "rated": n(row[10]),
        "mean_score": float(row[11]) if row[11] is not None else None,
        "levels": [n(row[12]), n(row[13]), n(row[14]), n(row[15]), n(row[16])],
        "p50": exact(waits, 0.5),
        "p90": exact(waits, 0.9),
        "calls": n(calls[0]),
        "calls_connected": n(calls[1]),
        "setup_mean_s": float(calls[2]) if calls[2] is not None else None,
        "calls_poor": poor,
        "transferred": sum(v for k, v in transferred.items() if lines is None or k in lines),
    }


def exact(values: list[float], q: float) -> float | None:
    """The q-th quantile as the value at rank ceil(q * n)."""
    if not values:
        return None
    return values[max(0, math.ceil(q * len(values)) - 1)]


def close(a: float | None, b: float | None, tol: float = 1e-6) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return abs(a - b) <= tol * max(1.0, abs(a), abs(b))


def assert_matches(api: dict[str, Any], raw: dict[str, Any]) -> None:
    """The API's figures (StatsRead.totals as JSON) against the raw recomputation."""
    got = {
        "taken": api["taken"],
        "served": api["served"],
        "no_shows": api["no_shows"],
        "cancelled": api["cancelled"],
        "open": api["open"],
        "called": api["wait"]["called"],
        "abandoned_after_target": api["abandoned_after_target"],
        "rated": api["ratings"]["rated"],
        "levels": [lv["count"] for lv in api["ratings"]["levels"]],
        "calls": api["calls"]["calls"],
        "calls_connected": api["calls"]["connected"],
        "calls_poor": api["calls"]["poor"],
        "transferred": api["transferred"],
    }
    want = {k: raw[k] for k in got}
    assert got == want
    for name, value in (
        ("wait_mean_s", api["wait"]["mean_s"]),
        ("service_level", api["service_level"]),
        ("handling_mean_s", api["handling_mean_s"]),
        ("mean_score", api["ratings"]["mean_score"]),
        ("setup_mean_s", api["calls"]["setup_mean_s"]),
    ):
        assert close(value, raw[name], 1e-6), (name, value, raw[name])
    # Percentiles interpolate inside a one-minute bin below 30 minutes: half a bin at most.
    for q in ("p50", "p90"):
        exact_v, rolled = raw[q], api["wait"][f"{q}_s"]
        assert (exact_v is None) == (rolled is None)
        if exact_v is not None and exact_v <= 1800:
            assert abs(rolled - exact_v) <= 60, (q, rolled, exact_v)
