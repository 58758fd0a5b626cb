"""Supervision benchmarks: statistics over a year of the district, and the board against the queue.

    python bench/supervision.py [--quick] [--backends postgresql,sqlite] [--only stats,board]

1. A year of synthetic history (web/demo/history.py: at least 3 million tickets, with their
   cases, calls, ratings and follow-ups), written in bulk, and its rollups built.
2. Statistics latency (p50, p95) of the statistics service over that year for the district, a
   town, a department, an item and a clerk, each by line, department, item or clerk, against
   the same figures computed with plain GROUP BYs over the raw rows in the same run.
3. The board's refresh cost (supervision/board.py) with 0 to 10,000 residents waiting, against
   the path the page used before it: one line snapshot per line.

Each figure is printed against its baseline; the last line is one JSON object with every figure.
A missed target is reported, never turned into a failing exit status. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import statistics
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import asyncpg  # noqa: E402
import sqlalchemy as sa  # noqa: E402

from core.access import Principal  # noqa: E402
from core.db import Database, utcnow  # noqa: E402
from core.models import Role, Site, Staff, StaffLine, StaffSite, WindowLine  # noqa: E402
from core.settings import Settings  # noqa: E402
from core.staff import Passwords  # noqa: E402
from supervision import bulk, stats  # noqa: E402
from supervision.stats_models import StatsQuery  # noqa: E402
from web.demo.history import PER_YEAR, seed_history  # noqa: E402
from web.demo.seed import seed_demo  # noqa: E402
from web.schema import metadata, upgrade  # noqa: E402

PG_ADMIN_URL = (
    os.environ.get("CW_BENCH_POSTGRES_URL")
    or os.environ.get("CW_TEST_POSTGRES_URL")
    or "postgresql://postgres@127.0.0.1:5432/test"
)
ZONE = "Asia/Shanghai"
TARGET_P95_S = {"postgresql": 0.300, "sqlite": 1.0}


@dataclass(frozen=True)
class Sizes:
    days: int
    per_year: int
    variants: int  # simulated days per weekday; the others are copies of them
    repeats: int  # timed runs of each statistics query
    queues: tuple[int, ...]  # residents waiting for the board runs
    board_repeats: int


FULL = Sizes(
    days=365,
    per_year=PER_YEAR,
    variants=2,
    repeats=10,
    queues=(0, 100, 1000, 10000),
    board_repeats=20,
)
QUICK = Sizes(
    days=21, per_year=200_000, variants=1, repeats=3, queues=(0, 100, 1000), board_repeats=5
)


def p(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


# -- databases


async def _pg_admin(sql: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN_URL, timeout=10)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def make_db(backend: str, tmp: Path) -> tuple[str, Any]:
    """A migrated, demo-seeded database of its own, and how to drop it."""
    if backend == "postgresql":
        name = f"cw_bench_stats_{os.getpid()}"
        await _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await _pg_admin(f'CREATE DATABASE "{name}"')
        url = sa.engine.make_url(PG_ADMIN_URL).set(drivername="postgresql+asyncpg", database=name)
        dsn = url.render_as_string(hide_password=False)

        async def drop() -> None:
            await _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    else:
        dsn = f"sqlite+aiosqlite:///{tmp / 'bench-stats.db'}"

        async def drop() -> None:
            def unlink() -> None:
                for suffix in ("", "-wal", "-shm"):
                    Path(f"{tmp / 'bench-stats.db'}{suffix}").unlink(missing_ok=True)

            await asyncio.to_thread(unlink)

    await upgrade(dsn)
    return dsn, drop


def settings_for(url: str, tmp: Path) -> Settings:
    return Settings(
        database_url=url,
        data_dir=tmp,
        secret_key="bench-secret-key-not-for-production",
        password_hash_time_cost=1,
        password_hash_memory_kib=64,
        timezone=ZONE,
    )


# -- 1. the year


async def generate(db: Database, s: Settings, sizes: Sizes) -> dict[str, Any]:
    started = time.perf_counter()
    await seed_demo(db, Passwords(s), "bench-password-0", progress=False)
    summary = await seed_history(
        db, s, days=sizes.days, per_year=sizes.per_year, bulk=True, variants=sizes.variants
    )
    rows = summary.tickets * 2 + summary.calls + summary.ratings  # cases, tickets, calls, ratings
    out = {
        "days": summary.days,
        "tickets": summary.tickets,
        "calls": summary.calls,
        "ratings": summary.ratings,
        "followups": summary.followups,
        "write_s": round(summary.write_s, 1),
        "rows_per_s": round(rows / summary.write_s) if summary.write_s else None,
        "rollup_s": round(summary.rollup_s, 1),
        "total_s": round(time.perf_counter() - started, 1),
    }
    print(
        f"history   {out['tickets']:>9,} tickets over {out['days']} days "
        f"({out['calls']:,} calls, {out['ratings']:,} ratings): written in {out['write_s']} s "
        f"({out['rows_per_s']:,} rows/s), rollups built in {out['rollup_s']} s",
        flush=True,
    )
    return out


# -- 2. statistics: ours against plain GROUP BYs over the raw rows


async def principals(db: Database) -> dict[str, Principal]:
    async with db.session() as session:
        out = {}
        for username in ("supervisor", "supervisor.t07"):
            st = (
                await session.exec(sa.select(Staff).where(Staff.username == username))
            ).scalar_one()  # type: ignore[call-overload]
            sites = (
                await session.exec(sa.select(StaffSite.site_id).where(StaffSite.staff_id == st.id))  # type: ignore[call-overload]
            ).scalars()
            lines = (
                await session.exec(sa.select(StaffLine.line_id).where(StaffLine.staff_id == st.id))  # type: ignore[call-overload]
            ).scalars()
            out[username] = Principal(
                staff_id=st.id,
                username=username,
                display_name=st.display_name,
                role=Role(st.role),
                site_ids=frozenset(sites),
                line_ids=frozenset(lines),
            )
        return out


async def busiest(db: Database) -> tuple[int, int]:
    """The item and the clerk with the most tickets (the filters a head would pick)."""
    async with db.session() as session:
        item = (
            await session.exec(  # type: ignore[call-overload]
                sa.text(
                    "SELECT item_id FROM ticket GROUP BY item_id ORDER BY count(*) DESC LIMIT 1"
                )
            )
        ).scalar_one()
        clerk = (
            await session.exec(  # type: ignore[call-overload]
                sa.text(
                    "SELECT called_by FROM ticket WHERE called_by IS NOT NULL "
                    "GROUP BY called_by ORDER BY count(*) DESC LIMIT 1"
                )
            )
        ).scalar_one()
    return int(item), int(clerk)


def scenarios(
    sizes: Sizes, item: int, clerk: int, town_site: int
) -> list[tuple[str, str, dict[str, Any]]]:
    today = utcnow().astimezone(ZoneInfo(ZONE)).date()
    year = {"period": "custom", "start": today - dt.timedelta(days=sizes.days), "end": today}
    month = {"period": "custom", "start": today - dt.timedelta(days=30), "end": today}
    return [
        ("district year by line", "supervisor", {**year, "by": "line"}),
        ("district year by department", "supervisor", {**year, "by": "department"}),
        ("town year by line", "supervisor.t07", {**year, "by": "line"}),
        ("district year by clerk", "supervisor", {**year, "by": "clerk"}),
        ("district year by item", "supervisor", {**year, "by": "item"}),
        ("one item, year by line", "supervisor", {**year, "item_id": item}),
        ("one clerk, year by day", "supervisor", {**year, "clerk_id": clerk, "by": "day"}),
        (
            "household, month by hall",
            "supervisor",
            {**month, "department": "household", "by": "hall"},
        ),
        ("a town's month by day", "supervisor", {**month, "site_id": town_site, "by": "day"}),
    ]


def _secs(d: str, a: str, b: str) -> str:
    return (
        f"EXTRACT(EPOCH FROM ({a} - {b}))"
        if d == "postgresql"
        else f"((julianday({a}) - julianday({b})) * 86400.0)"
    )


def _local(d: str, col: str) -> tuple[str, str, str]:
    """Local day, weekday and hour of a timestamp (Asia/Shanghai: UTC+8, no daylight saving)."""
    if d == "postgresql":
        loc = f"({col} AT TIME ZONE '{ZONE}')"
        return f"CAST({loc} AS DATE)", f"EXTRACT(ISODOW FROM {loc})", f"EXTRACT(HOUR FROM {loc})"
    return (
        f"date({col}, '+8 hours')",
        f"strftime('%w', {col}, '+8 hours')",
        f"strftime('%H', {col}, '+8 hours')",
    )


async def baseline(db: Database, q: StatsQuery, scope: stats.Scope) -> dict[str, Any]:
    """The same figures from the raw rows: the breakdown, the calls, the daily series and the
    heat map as four GROUP BYs over tickets joined to their calls and ratings."""
    d = db.dialect
    called = "COALESCE(c.created_at, t.called_at)"
    wait = _secs(d, called, "t.waiting_since")
    where = ["t.created_at >= :start", "t.created_at < :end"]
    if not scope.all_lines:
        where.append(f"t.line_id IN ({', '.join(str(i) for i in scope.line_ids) or '0'})")
    if q.item_id:
        where.append(f"t.item_id = {int(q.item_id)}")
    if q.clerk_id:
        where.append(f"t.called_by = {int(q.clerk_id)}")
    w = " AND ".join(where)
    day, dow, hour = _local(d, "t.created_at")
    key = {
        "line": "t.line_id",
        "hall": "l.site_id",
        "department": "l.department",
        "item": "t.item_id",
        "clerk": "t.called_by",
        "day": day,
    }[str(q.by)]
    pct = (
        f", percentile_cont(0.5) WITHIN GROUP (ORDER BY {wait}), "
        f"percentile_cont(0.9) WITHIN GROUP (ORDER BY {wait})"
        if d == "postgresql"
        else ""
    )
    tickets = f"""
SELECT {key}, count(*), SUM(CASE WHEN t.status = 'done' THEN 1 ELSE 0 END),
  SUM(CASE WHEN t.status = 'no_show' THEN 1 ELSE 0 END),
  SUM(CASE WHEN t.status = 'cancelled' THEN 1 ELSE 0 END),
  AVG({wait}), SUM(CASE WHEN {wait} <= 900 THEN 1 ELSE 0 END),
  AVG(CASE WHEN t.status = 'done' THEN {_secs(d, "t.finished_at", "t.answered_at")} END),
  count(r.score), AVG(r.score), SUM(CASE WHEN r.score >= 4 THEN 1 ELSE 0 END),
  SUM(CASE WHEN r.score <= 2 THEN 1 ELSE 0 END){pct}
FROM ticket t JOIN window_line l ON l.id = t.line_id LEFT JOIN call c ON c.id = t.call_id
LEFT JOIN case_rating r ON r.case_id = t.case_id WHERE {w} GROUP BY {key}"""
    calls = f"""
SELECT {key}, count(*), SUM(CASE WHEN c.connected_at IS NOT NULL THEN 1 ELSE 0 END),
  AVG({_secs(d, "c.connected_at", "c.created_at")})
FROM call c JOIN ticket t ON t.id = c.ticket_id JOIN window_line l ON l.id = t.line_id
WHERE {w} GROUP BY {key}"""
    daily = f"""
SELECT {day}, count(*), AVG({wait}), SUM(CASE WHEN {wait} <= 900 THEN 1 ELSE 0 END)
FROM ticket t LEFT JOIN call c ON c.id = t.call_id WHERE {w} GROUP BY {day}"""
    heat = f"SELECT {dow}, {hour}, count(*) FROM ticket t WHERE {w} GROUP BY {dow}, {hour}"
    params: dict[str, Any] = {"start": scope.start, "end": scope.end}
    if d != "postgresql":
        params = {
            k: v.replace(tzinfo=None).isoformat(" ", "microseconds") for k, v in params.items()
        }
    out: dict[str, Any] = {}
    async with db.session() as session:
        for name, sql in (("tickets", tickets), ("calls", calls), ("daily", daily), ("heat", heat)):
            out[name] = list((await session.exec(sa.text(sql), params=params)).all())  # type: ignore[call-overload]
    return out


async def statistics_bench(db: Database, s: Settings, sizes: Sizes, backend: str) -> dict[str, Any]:
    who = await principals(db)
    item, clerk = await busiest(db)
    async with db.session() as session:
        town = (await session.exec(sa.select(Site.id).where(Site.code == "T07"))).scalar_one()  # type: ignore[call-overload]
    ours_all: list[float] = []
    base_all: list[float] = []
    rows = []
    checked = None
    for name, username, params in scenarios(sizes, item, clerk, town):
        q = StatsQuery.model_validate(params)
        times = []
        for _ in range(sizes.repeats):
            async with db.session() as session:
                t0 = time.perf_counter()
                got = await stats.statistics(
                    session=session, settings=s, principal=who[username], q=q
                )
                times.append(time.perf_counter() - t0)
        async with db.session() as session:
            scope = await stats.scope(session=session, settings=s, principal=who[username], q=q)
        t0 = time.perf_counter()
        raw = await baseline(db, q, scope)
        base = time.perf_counter() - t0
        raw_taken = sum(int(r[1]) for r in raw["tickets"])
        if checked is None:
            checked = (
                raw_taken == got.totals.taken
                and sum(int(r[1]) for r in raw["calls"]) == got.totals.calls.calls
            )
        ours_all += times
        base_all.append(base)
        row = {
            "scenario": name,
            "ours_p50_ms": round(1000 * p(times, 0.5), 1),
            "ours_p95_ms": round(1000 * p(times, 0.95), 1),
            "baseline_ms": round(1000 * base, 1),
            "speedup": round(base / p(times, 0.5), 1) if p(times, 0.5) else None,
            "taken": got.totals.taken,
            "raw_taken": raw_taken,
        }
        rows.append(row)
        print(
            f"  {name:<32} ours p50 {row['ours_p50_ms']:>8} ms  p95 {row['ours_p95_ms']:>8} ms  "
            f"GROUP BY {row['baseline_ms']:>9} ms  ({row['speedup']}x)  tickets {row['taken']:,}"
            + ("" if row["taken"] == raw_taken else f"  MISMATCH raw {raw_taken:,}"),
            flush=True,
        )
    target = TARGET_P95_S[backend]
    out = {
        "ours_p50_ms": round(1000 * p(ours_all, 0.5), 1),
        "ours_p95_ms": round(1000 * p(ours_all, 0.95), 1),
        "baseline_p50_ms": round(1000 * statistics.median(base_all), 1),
        "baseline_max_ms": round(1000 * max(base_all), 1),
        "target_p95_ms": 1000 * target,
        "target_met": p(ours_all, 0.95) <= target,
        "figures_equal_raw": bool(checked) and all(r["taken"] == r["raw_taken"] for r in rows),
        "scenarios": rows,
    }
    out["load_average"] = round(os.getloadavg()[0], 1)
    print(
        f"statistics {backend:<10} ours p95 {out['ours_p95_ms']} ms (p50 {out['ours_p50_ms']})  "
        f"plain GROUP BY p50 {out['baseline_p50_ms']} ms  "
        f"(<= {out['target_p95_ms']:.0f} ms p95)  {'MET' if out['target_met'] else 'NOT MET'}  "
        f"(load average {out['load_average']} on {os.cpu_count()} CPUs)",
        flush=True,
    )
    return out


# -- 3. the board against the queue


async def fill(db: Database, n: int, have: int) -> None:
    """Bring the residents waiting today to n, spread over the lines (cases and tickets)."""
    if n <= have:
        return
    from core.models import Case
    from signaling.models import Ticket

    now = utcnow()
    today = now.astimezone(ZoneInfo(ZONE)).date()
    async with db.session() as session:
        lines = list((await session.exec(sa.select(WindowLine.id, WindowLine.site_id))).all())  # type: ignore[call-overload]
        point = (
            (await session.exec(sa.select(Site.id).where(Site.kind == "community")))
            .scalars()
            .first()
        )  # type: ignore[call-overload]
        item = (await session.exec(sa.text("SELECT id FROM service_item LIMIT 1"))).scalar_one()  # type: ignore[call-overload]
        first_case = (
            int(
                (
                    await session.exec(sa.text("SELECT COALESCE(MAX(id), 0) FROM service_case"))
                ).scalar_one()
            )
            + 1
        )  # type: ignore[call-overload]
        first_ticket = (
            int(
                (
                    await session.exec(sa.text("SELECT COALESCE(MAX(id), 0) FROM ticket"))
                ).scalar_one()
            )
            + 1
        )  # type: ignore[call-overload]
        k = n - have
        cases, tickets = [], []
        for i in range(k):
            line_id = lines[(have + i) % len(lines)][0]
            at = now - dt.timedelta(seconds=(have + i) % 3000)
            cid, tid = first_case + i, first_ticket + i
            cases.append((cid, f"BQ{cid:09d}", item, point, line_id, "open", at, at, ""))
            tickets.append(
                (
                    tid,
                    line_id,
                    cid,
                    today,
                    5000 + have + i,
                    f"Q{have + i:05d}",
                    "waiting",
                    0,
                    "",
                    "assisted",
                    "",
                    "",
                    "",
                    "",
                    item,
                    point,
                    at,
                    at,
                    at,
                    0,
                    "",
                )
            )
        await bulk.insert_rows(
            session,
            Case.__table__,  # type: ignore[attr-defined]
            cases,
            [
                "id",
                "number",
                "item_id",
                "site_id",
                "line_id",
                "status",
                "created_at",
                "updated_at",
                "note",
            ],
        )
        await bulk.insert_rows(
            session,
            Ticket.__table__,  # type: ignore[attr-defined]
            tickets,
            [
                "id",
                "line_id",
                "case_id",
                "day",
                "seq",
                "number",
                "status",
                "priority",
                "priority_reason",
                "channel",
                "item_code",
                "item_name",
                "line_name",
                "case_number",
                "item_id",
                "point_site_id",
                "consent_at",
                "waiting_since",
                "created_at",
                "recalls",
                "outcome",
            ],
        )
        if db.dialect == "postgresql":
            for table in ("service_case", "ticket"):
                await session.exec(
                    sa.text(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                        f"(SELECT MAX(id) FROM {table}))"
                    )
                )  # type: ignore[call-overload]
        await session.commit()


async def board_bench(db: Database, s: Settings, sizes: Sizes) -> dict[str, Any]:
    from signaling import queue
    from supervision import board

    who = (await principals(db))["supervisor"]
    out: dict[str, Any] = {"queues": []}
    have = 0
    for n in sizes.queues:
        await fill(db, n, have)
        have = max(have, n)
        ours, before = [], []
        for _ in range(sizes.board_repeats):
            async with db.session() as session:
                t0 = time.perf_counter()
                await board.snapshot(session=session, principal=who, settings=s, now=utcnow())
                ours.append(time.perf_counter() - t0)
        # The page's path before the board reads each line's recent handling times through its
        # whole history: slow after a year, so three runs of it are enough.
        for _ in range(min(3, sizes.board_repeats)):
            async with db.session() as session:
                ids = (await session.exec(sa.select(WindowLine.id))).scalars().all()  # type: ignore[call-overload]
                t0 = time.perf_counter()
                for line_id in ids:
                    await queue.line_snapshot(session=session, settings=s, line_id=line_id)
                before.append(time.perf_counter() - t0)
        row = {
            "waiting": n,
            "board_ms": round(1000 * statistics.median(ours), 1),
            "per_line_snapshots_ms": round(1000 * statistics.median(before), 1),
        }
        out["queues"].append(row)
        print(
            f"  board with {n:>6} waiting: board {row['board_ms']:>8} ms   "
            f"one snapshot per line (before) {row['per_line_snapshots_ms']:>8} ms",
            flush=True,
        )
    first, last = out["queues"][0], out["queues"][-1]
    out["board_growth"] = (
        round(last["board_ms"] / first["board_ms"], 2) if first["board_ms"] else None
    )
    out["before_growth"] = (
        round(last["per_line_snapshots_ms"] / first["per_line_snapshots_ms"], 2)
        if first["per_line_snapshots_ms"]
        else None
    )
    print(
        f"board cost at {last['waiting']} waiting / at 0: board {out['board_growth']}x, "
        f"per-line snapshots {out['before_growth']}x",
        flush=True,
    )
    return out


# -- the run


async def run_backend(
    backend: str, sizes: Sizes, only: set[str], tmp: Path, keep: bool
) -> dict[str, Any]:
    url, drop = await make_db(backend, tmp)
    s = settings_for(url, tmp)
    db = Database(url)
    out: dict[str, Any] = {}
    try:
        print(f"== {backend}", flush=True)
        out["history"] = await generate(db, s, sizes)
        if "stats" in only:
            try:
                out["statistics"] = await statistics_bench(db, s, sizes, backend)
            except Exception as e:
                traceback.print_exc()
                out["statistics"] = {"error": repr(e)}
        if "board" in only:
            try:
                out["board"] = await board_bench(db, s, sizes)
            except Exception as e:
                traceback.print_exc()
                out["board"] = {"error": repr(e)}
    finally:
        await db.dispose()
        if not keep:
            await drop()
    return out


async def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="three weeks at a smaller volume")
    ap.add_argument("--backends", default="postgresql,sqlite")
    ap.add_argument("--only", default="stats,board")
    ap.add_argument("--days", type=int, help="days of history (default 365; quick 21)")
    ap.add_argument("--keep", action="store_true", help="keep the databases")
    args = ap.parse_args()
    sizes = QUICK if args.quick else FULL
    if args.days:
        sizes = Sizes(
            args.days,
            sizes.per_year,
            sizes.variants,
            sizes.repeats,
            sizes.queues,
            sizes.board_repeats,
        )
    metadata()
    started = time.perf_counter()
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="cw-bench-stats-") as tmp:
        for backend in args.backends.split(","):
            try:
                figures[backend] = await run_backend(
                    backend, sizes, set(args.only.split(",")), Path(tmp), args.keep
                )
            except Exception as e:
                traceback.print_exc()
                figures[backend] = {"error": repr(e)}
    figures["elapsed_s"] = round(time.perf_counter() - started, 1)
    print(json.dumps(figures, ensure_ascii=False, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
