"""Reminder benchmark: the daily run over a million licences on PostgreSQL, two nodes at once.

    python bench/reminders.py [--quick] [--licences N] [--keep]

Builds its own database (migrated, demo-seeded, then N licences of N/2 holders copied in),
and measures, each against a baseline in the same run:
1. finding today's due reminders: ours (one range scan per offset on ix_licence_due) against a
   plain full scan of the licence table that computes each licence's due dates;
2. the daily run (find, write and queue every due reminder in the SMS outbox, with a sign-in
   link each) started by two nodes' job runners at the same moment, checked exactly once;
3. the finish path: closing a ticket as it is (one statement, autocommit), against closing it
   and writing its licence in the same statement and in the same transaction.
The last line of output is one JSON object with every figure. A missed target is reported,
never turned into a failing exit status. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import datetime as dt
import json
import os
import pstats
import statistics
import sys
import time
import traceback
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import asyncpg  # noqa: E402
from sqlalchemy import JSON  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

PG_ADMIN_URL = (
    os.environ.get("CW_BENCH_POSTGRES_URL")
    or os.environ.get("CW_TEST_POSTGRES_URL")
    or "postgresql://postgres@127.0.0.1:5432/test"
)
TZ = "Asia/Shanghai"
TARGET_RUN_S = 10.0
FULL_LICENCES = 1_000_000
QUICK_LICENCES = 50_000
# Expiry dates spread over this many days around today: ~450 licences expire on each day of a
# million, so each offset of the policy finds ~450 due reminders a day.
SPREAD_DAYS = (-400, 1825)
OPTED_OUT_EVERY = 100  # one holder in a hundred stopped every reminder
RENEWED_EVERY = 10  # one licence in ten was renewed already
FINISHES = 300  # tickets closed per variant of the finish path


def log(msg: str) -> None:
    print(msg, flush=True)


# -- the database


def _url(name: str, driver: str = "postgresql+asyncpg") -> str:
    url = make_url(PG_ADMIN_URL).set(drivername=driver, database=name)
    return url.render_as_string(hide_password=False)


async def admin(sql: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def _defaults(table: Any, given: Iterable[str]) -> tuple[list[str], Callable[..., tuple]]:
    """The table's columns and a row builder: given values, else each column's own default
    (so columns other modules add keep working), JSON as text for COPY."""
    cols = [c for c in table.columns if c.name in given or not c.primary_key]
    fixed: dict[str, Any] = {}
    for c in cols:
        if c.name in given:
            continue
        d = c.default
        if d is None:
            fixed[c.name] = None
        elif d.is_callable:
            fixed[c.name] = d.arg(None)  # SQLAlchemy wraps a callable to take a context
        else:
            fixed[c.name] = d.arg
        if isinstance(c.type, JSON):
            fixed[c.name] = json.dumps(fixed[c.name])
        elif hasattr(fixed[c.name], "value"):  # a StrEnum default
            fixed[c.name] = fixed[c.name].value
    names = [c.name for c in cols]

    def row(**values: Any) -> tuple:
        return tuple(values[n] if n in values else fixed[n] for n in names)

    return names, row


async def build(url: str, licences: int, today: dt.date) -> dict[str, Any]:
    """Migrate, seed the demo district, then copy holders and licences in."""
    from core.db import Database
    from core.models import Resident
    from core.settings import Settings
    from core.staff import Passwords
    from outreach.models import Licence, ReminderOptOut
    from web.demo.seed import seed_demo
    from web.schema import upgrade

    await upgrade(url)
    db = Database(url)
    settings = Settings(password_hash_time_cost=1, password_hash_memory_kib=64)
    await seed_demo(db, Passwords(settings), "bench-password-0", progress=False)
    await db.dispose()
    raw = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    try:
        types = [r["id"] for r in await raw.fetch("SELECT id FROM licence_type ORDER BY id")]
        sites = [r["id"] for r in await raw.fetch("SELECT id FROM site WHERE kind = 'town'")]
        communities = [
            r["id"] for r in await raw.fetch("SELECT id FROM site WHERE kind = 'community'")
        ]
        holders = licences // 2
        now = dt.datetime.now(dt.UTC)
        names, resident = _defaults(
            Resident.__table__,  # type: ignore[attr-defined]
            {"name", "id_cipher", "id_hash", "id_masked", "birth_date", "sex", "phone"},
        )
        t0 = time.perf_counter()
        await raw.copy_records_to_table(
            "resident",
            columns=names,
            records=(
                resident(
                    name=f"居民{i}",
                    id_cipher="v1:bench",
                    id_hash=f"bench{i:012d}",
                    id_masked="3302**********0000",
                    birth_date=dt.date(1950, 1, 1) + dt.timedelta(days=i % 20000),
                    sex="male" if i % 2 else "female",
                    phone=f"139{i:08d}",
                    community_id=communities[i % len(communities)],
                    created_at=now,
                )
                for i in range(holders)
            ),
        )
        first_id = await raw.fetchval("SELECT min(id) FROM resident WHERE id_hash LIKE 'bench%'")
        log(f"  {holders:,} holders copied in {time.perf_counter() - t0:.1f} s")
        names, licence = _defaults(
            Licence.__table__,  # type: ignore[attr-defined]
            {"type_id", "number", "resident_id", "site_id", "issued_on", "expires_on", "source"},
        )
        low, high = SPREAD_DAYS
        span = high - low
        t0 = time.perf_counter()

        def licence_rows() -> Iterable[tuple]:
            for i in range(licences):
                expires = today + dt.timedelta(days=low + (i * 7919) % span)
                yield licence(
                    type_id=types[i % len(types)],
                    number=f"B{i:09d}",
                    resident_id=first_id + (i % holders),
                    site_id=sites[i % len(sites)],
                    issued_on=expires - dt.timedelta(days=1825),
                    expires_on=expires,
                    status="renewed" if i % RENEWED_EVERY == 0 else "active",
                    source="import",
                    created_at=now,
                )

        await raw.copy_records_to_table("licence", columns=names, records=licence_rows())
        log(f"  {licences:,} licences copied in {time.perf_counter() - t0:.1f} s")
        names, opt_out = _defaults(
            ReminderOptOut.__table__,  # type: ignore[attr-defined]
            {"resident_id", "source"},
        )
        await raw.copy_records_to_table(
            "reminder_opt_out",
            columns=names,
            records=(
                opt_out(resident_id=first_id + i, source="page", created_at=now, type_id=None)
                for i in range(0, holders, OPTED_OUT_EVERY)
            ),
        )
        await raw.execute("ANALYZE")
    finally:
        await raw.close()
    return {"licences": licences, "holders": holders, "types": len(types)}


# -- 1. finding today's due reminders


FULL_SCAN = """
SELECT count(*) FROM licence l
JOIN licence_reminder_offset o ON o.type_id = l.type_id
WHERE l.status = 'active'
  AND l.expires_on + o.offset_days BETWEEN $1 AND $2
  AND NOT EXISTS (SELECT 1 FROM reminder_opt_out x WHERE x.resident_id = l.resident_id
                  AND (x.type_id IS NULL OR x.type_id = l.type_id))
"""


async def find_due(url: str, settings: Any, now: dt.datetime) -> dict[str, Any]:
    """Our plan statements (rolled back) against the full scan, best of three each."""
    from core.db import Database
    from outreach import licences, reminders

    today = licences.local_date(now, settings)
    first = today - dt.timedelta(days=settings.reminder_catch_up_days)
    raw = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    try:
        scan_times, due = [], 0
        for _ in range(3):
            t0 = time.perf_counter()
            due = await raw.fetchval(FULL_SCAN, first, today)
            scan_times.append(time.perf_counter() - t0)
        plan = await raw.fetch(
            "EXPLAIN SELECT id FROM licence WHERE status = 'active' "
            "AND expires_on >= $1 AND expires_on <= $2",
            first,
            today,
        )
    finally:
        await raw.close()
    db = Database(url)
    ours_times, found = [], 0
    try:
        for _ in range(3):
            async with db.session() as session:
                t0 = time.perf_counter()
                found = await reminders.plan(session, settings=settings, now=now)
                ours_times.append(time.perf_counter() - t0)
                await session.rollback()
    finally:
        await db.dispose()
    plan_text = " ".join(r[0] for r in plan)
    return {
        "due": int(due),
        "found": found,
        "ours_s": round(min(ours_times), 4),
        "full_scan_s": round(min(scan_times), 4),
        "ratio": round(min(ours_times) / min(scan_times), 4),
        "uses_index": "ix_licence_due" in plan_text,
    }


# -- 2. the daily run on two nodes at once


async def days_before(url: str, settings: Any, now: dt.datetime) -> int:
    """The runs of the catch-up days before today, as a node running every day made them."""
    from core.db import Database
    from outreach import reminders
    from outreach.sms import OutboxSmsGateway

    db, queued = Database(url), 0
    try:
        for back in range(settings.reminder_catch_up_days, 0, -1):
            day = now - dt.timedelta(days=back)
            done = await reminders.daily_run(db, settings=settings, sms=OutboxSmsGateway(), now=day)
            queued += done["queued"]
    finally:
        await db.dispose()
    return queued


async def two_nodes(url: str, settings: Any, now: dt.datetime) -> dict[str, Any]:
    from core.db import Database
    from core.jobs import Jobs
    from outreach import reminders
    from outreach.sms import OutboxSmsGateway

    dbs = [Database(url), Database(url)]
    gateway = OutboxSmsGateway()
    runners = []
    for i, db in enumerate(dbs):
        jobs = Jobs(db, node_id=f"bench-node-{i}", clock=lambda: now)
        reminders.register_jobs(jobs, settings=settings, sms=lambda: gateway)
        runners.append(jobs)
    try:
        for db in dbs:  # connect both pools first: time the run, not the connects
            await db.ping()
        load = os.getloadavg()[0]
        t0, c0 = time.perf_counter(), time.process_time()
        outcomes = await asyncio.gather(*(j.run_once(reminders.DAILY) for j in runners))
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    finally:
        for db in dbs:
            await db.dispose()
    raw = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    try:
        today = "planned_at = $1"
        rows = await raw.fetchval(f"SELECT count(*) FROM licence_reminder WHERE {today}", now)
        queued = await raw.fetchval(
            f"SELECT count(*) FROM licence_reminder WHERE status = 'queued' AND {today}", now
        )
        messages = await raw.fetchval(
            "SELECT count(*) FROM sms_outbox o JOIN licence_reminder r ON r.sms_key = o.key "
            f"WHERE r.{today}",
            now,
        )
        doubled = await raw.fetchval(
            "SELECT count(*) FROM (SELECT licence_id, offset_days FROM licence_reminder "
            "GROUP BY 1, 2 HAVING count(*) > 1) d"
        )
        # A message of the outbox that no reminder row names would be a copy.
        orphans = await raw.fetchval(
            "SELECT count(*) FROM sms_outbox o WHERE kind = 'reminder.expiry' AND NOT EXISTS "
            "(SELECT 1 FROM licence_reminder r WHERE r.sms_key = o.key)"
        )
        runs = await raw.fetch(
            "SELECT claimed_by, attempt, finished_at IS NOT NULL AS done FROM job_run "
            "WHERE name = $1",
            reminders.DAILY,
        )
    finally:
        await raw.close()
    statuses = sorted(str(o.status) for o in outcomes)
    finished = [o for o in outcomes if str(o.status) == "finished"]
    return {
        "run_s": round(elapsed, 3),
        "cpu_s": round(cpu, 3),  # this process (both nodes), not PostgreSQL
        "load_average": round(load, 2),
        "node_outcomes": statuses,
        "outcome": dict(finished[0].outcome) if finished else {},
        "reminders": int(rows),
        "queued": int(queued),
        "messages": int(messages),
        "messages_without_reminder": int(orphans),
        "duplicates": int(doubled),
        "job_runs": [dict(r) for r in runs],
        "exactly_once": (
            len(finished) == 1
            and doubled == 0
            and messages == queued
            and orphans == 0
            and len(runs) == 1
            and runs[0]["attempt"] == 1
        ),
    }


# -- 2b. the same run with a gateway that keeps messages in memory


class Collecting:
    """An SMS gateway that queues nothing: what the run costs besides the outbox's inserts."""

    def __init__(self) -> None:
        self.count = 0

    async def send(self, session: Any, **_kw: Any) -> None:
        self.count += 1


async def without_outbox(url: str, settings: Any, now: dt.datetime) -> dict[str, Any]:
    from core.db import Database
    from outreach import reminders

    raw = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    try:  # today's run undone; the days before stay run
        await raw.execute(
            "DELETE FROM sms_outbox WHERE key IN "
            "(SELECT sms_key FROM licence_reminder WHERE planned_at = $1)",
            now,
        )
        await raw.execute("DELETE FROM licence_reminder WHERE planned_at = $1", now)
    finally:
        await raw.close()
    db, gateway = Database(url), Collecting()
    try:
        await db.ping()
        t0, c0 = time.perf_counter(), time.process_time()
        done = await reminders.daily_run(db, settings=settings, sms=gateway, now=now)  # type: ignore[arg-type]
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    finally:
        await db.dispose()
    return {"run_s": round(elapsed, 3), "cpu_s": round(cpu, 3), "queued": done["queued"]}


# -- 3. the finish path, and a licence written with it


CLOSE_WITH_LICENCE = """
WITH t AS (
    UPDATE ticket SET status = 'done', outcome = $1, finished_at = $2
    WHERE id = $3 AND status IN ('called', 'serving') AND (called_by = $4 OR $5)
    RETURNING ticket.*
), sc AS (
    UPDATE service_case
    SET status = $6, updated_at = $2, closed_at = $2,
        note = CASE WHEN $7 = '' THEN service_case.note ELSE $7 END
    FROM t WHERE service_case.id = t.case_id
    RETURNING service_case.id, service_case.number, service_case.site_id
), ev AS (
    INSERT INTO case_event (case_id, at, kind, actor_id, data)
    SELECT t.case_id, $2, $8, $4, $9::json FROM t
), lic AS (
    INSERT INTO licence (type_id, number, resident_id, site_id, issued_on, expires_on, status,
                         source, case_id, created_at)
    SELECT lt.id, sc.number, t.resident_id, sc.site_id, ($2 AT TIME ZONE 'Asia/Shanghai')::date,
           (($2 AT TIME ZONE 'Asia/Shanghai')::date
            + make_interval(months => lt.validity_months))::date,
           'active', 'case', t.case_id, $2
    FROM t JOIN sc ON sc.id = t.case_id
    JOIN service_item i ON i.id = t.item_id JOIN licence_type lt ON lt.id = i.licence_type_id
    WHERE t.resident_id IS NOT NULL
    ON CONFLICT DO NOTHING
)
SELECT t.id FROM t
"""


async def finish_path(url: str) -> dict[str, Any]:
    """Per-finish latency on one connection: as built, with the licence in the statement, and
    with the licence as a second statement in a transaction."""
    from signaling.queue import _CLOSE_PG

    raw = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    try:
        item = await raw.fetchrow(
            "SELECT i.id, i.code, i.name FROM service_item i WHERE i.licence_type_id IS NOT NULL "
            "ORDER BY i.id LIMIT 1"
        )
        line = await raw.fetchrow("SELECT id, site_id FROM window_line ORDER BY id LIMIT 1")
        point = await raw.fetchval("SELECT id FROM site WHERE kind = 'community' LIMIT 1")
        holder = await raw.fetchval("SELECT min(id) FROM resident")

        async def tickets(tag: str) -> list[tuple[int, int]]:
            """FINISHES clerks, each serving one ticket of a case for the licence item."""
            out = []
            now = dt.datetime.now(dt.UTC)
            for n in range(FINISHES):
                staff = await raw.fetchval(
                    "INSERT INTO staff (username, display_name, role, password_hash, skills, "
                    "phone, active, created_at) VALUES ($1, $1, 'clerk', 'x', '[]', '', true, $2) "
                    "RETURNING id",
                    f"bench.{tag}.{n}",
                    now,
                )
                case = await raw.fetchval(
                    "INSERT INTO service_case (number, item_id, resident_id, site_id, line_id, "
                    "status, created_at, updated_at, note) "
                    "VALUES ($1, $2, $3, $4, $5, 'in_service', $6, $6, '') RETURNING id",
                    f"B{tag[:3]}{n}{uuid.uuid4().hex[:8]}",
                    item["id"],
                    holder + n,
                    point,
                    line["id"],
                    now,
                )
                ticket = await _ticket(raw, tag, n, case, staff, item, line, point, holder + n)
                out.append((ticket, staff))
            return out

        async def close(sql: str, ticket: int, staff: int) -> None:
            data = json.dumps({"from": "in_service", "outcome": "completed"})
            args = ("completed", dt.datetime.now(dt.UTC), ticket, staff, False, "completed", "")
            row = await raw.fetchrow(sql, *args, "status.completed", data)
            assert row is not None

        async def as_built(ticket: int, staff: int) -> None:
            await close(_CLOSE_PG, ticket, staff)

        async def in_statement(ticket: int, staff: int) -> None:
            await close(CLOSE_WITH_LICENCE, ticket, staff)

        async def in_transaction(ticket: int, staff: int) -> None:
            async with raw.transaction():
                await close(_CLOSE_PG, ticket, staff)
                await raw.execute(
                    "INSERT INTO licence (type_id, number, resident_id, site_id, issued_on, "
                    "expires_on, status, source, case_id, created_at) "
                    "SELECT i.licence_type_id, c.number, c.resident_id, c.site_id, "
                    "current_date, current_date + 1826, 'active', 'case', c.id, now() "
                    "FROM ticket t JOIN service_case c ON c.id = t.case_id "
                    "JOIN service_item i ON i.id = c.item_id "
                    "WHERE t.id = $1 AND i.licence_type_id IS NOT NULL ON CONFLICT DO NOTHING",
                    ticket,
                )

        variants = {
            "as_built": as_built,
            "licence_in_statement": in_statement,
            "licence_in_transaction": in_transaction,
        }
        todo = {name: await tickets(name) for name in variants}
        times: dict[str, list[float]] = {name: [] for name in variants}
        # Interleaved, one finish of each in turn (rotating who goes first): a machine that
        # gets busier or quieter meanwhile weighs on every variant alike.
        names = list(variants)
        for i in range(FINISHES):
            for name in names[i % 3 :] + names[: i % 3]:
                ticket, staff = todo[name][i]
                t0 = time.perf_counter()
                await variants[name](ticket, staff)
                times[name].append(time.perf_counter() - t0)
        figures: dict[str, Any] = {
            name: {
                "median_ms": round(statistics.median(ts) * 1000, 3),
                "p90_ms": round(sorted(ts)[int(len(ts) * 0.9)] * 1000, 3),
            }
            for name, ts in times.items()
        }
        made = await raw.fetchval("SELECT count(*) FROM licence WHERE source = 'case'")
        figures["licences_written"] = int(made)
        base = figures["as_built"]["median_ms"]
        for name in ("licence_in_statement", "licence_in_transaction"):
            figures[name]["ratio"] = round(figures[name]["median_ms"] / base, 3)
        return figures
    finally:
        await raw.close()


async def _ticket(
    raw: Any, tag: str, n: int, case: int, staff: int, item: Any, line: Any, point: int, who: int
) -> int:
    from signaling.models import Ticket

    given = {
        "line_id": line["id"],
        "case_id": case,
        "day": dt.date.today(),
        "seq": n + 1 + 10_000 * (hash(tag) % 1000),
        "number": f"Z{n:04d}",
        "status": "serving",
        "item_id": item["id"],
        "item_code": item["code"],
        "item_name": item["name"],
        "resident_id": who,
        "point_site_id": point,
        "called_by": staff,
        "called_at": dt.datetime.now(dt.UTC),
    }
    names, row = _defaults(Ticket.__table__, given)  # type: ignore[attr-defined]
    values = row(**given)
    placeholders = ", ".join(f"${i}" for i in range(1, len(names) + 1))
    return int(
        await raw.fetchval(
            f"INSERT INTO ticket ({', '.join(names)}) VALUES ({placeholders}) RETURNING id",
            *values,
        )
    )


# -- the run


async def main(args: argparse.Namespace) -> dict[str, Any]:
    from core.settings import Settings

    name = f"cw_bench_rem_{os.getpid()}"
    url = _url(name)
    await admin(f'CREATE DATABASE "{name}"')
    out: dict[str, Any] = {}
    started = time.perf_counter()
    try:
        zone = ZoneInfo(TZ)
        today = dt.datetime.now(zone).date()
        # The run at 08:01 local time, the first of the day; every node's clock says so.
        now = dt.datetime.combine(today, dt.time(8, 1), zone).astimezone(dt.UTC)
        settings = Settings(secret_key="bench-secret-key-not-for-production", timezone=TZ)
        log(f"building {args.licences:,} licences in {name} ...")
        out["data"] = await build(url, args.licences, today)
        log("1. finding today's due reminders")
        out["find"] = find = await find_due(url, settings, now)
        log(
            f"   ours {find['ours_s']:.4f} s   full scan {find['full_scan_s']:.4f} s   "
            f"ratio {find['ratio']:.4f}   ({find['found']:,} due; scan counts {find['due']:,}; "
            f"index used: {find['uses_index']})"
        )
        log("   the days before today, run as every day (untimed) ...")
        out["days_before_queued"] = await days_before(url, settings, now)
        log("2. the daily run, two nodes at the same moment")
        profiler = cProfile.Profile() if args.profile else None
        if profiler:
            profiler.enable()
        out["run"] = run = await two_nodes(url, settings, now)
        if profiler:
            profiler.disable()
            pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
        met = run["run_s"] <= TARGET_RUN_S
        log(
            f"   {run['run_s']:.2f} s for {run['queued']:,} reminders queued "
            f"(target <= {TARGET_RUN_S:.0f} s) {'MET' if met else 'NOT MET'};  nodes "
            f"{run['node_outcomes']};  exactly once: {run['exactly_once']} "
            f"({run['messages']:,} messages, {run['duplicates']} duplicates)"
        )
        out["run"]["target_met"] = met
        out["run_without_outbox"] = bare = await without_outbox(url, settings, now)
        log(
            f"   the same run with messages kept in memory: {bare['run_s']:.2f} s "
            f"(cpu {bare['cpu_s']:.2f} s; with the outbox: cpu {run['cpu_s']:.2f} s; load "
            f"average {run['load_average']})"
        )
        log("3. the finish path (median per finish on one connection)")
        out["finish"] = fin = await finish_path(url)
        log(
            f"   as built {fin['as_built']['median_ms']:.3f} ms   licence in the statement "
            f"{fin['licence_in_statement']['median_ms']:.3f} ms "
            f"(x{fin['licence_in_statement']['ratio']})   licence in a transaction "
            f"{fin['licence_in_transaction']['median_ms']:.3f} ms "
            f"(x{fin['licence_in_transaction']['ratio']})"
        )
    finally:
        out["elapsed_s"] = round(time.perf_counter() - started, 1)
        if args.keep:
            log(f"kept database {name}")
        else:
            await admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    log("")
    find, run = out["find"], out["run"]
    log(
        f"find due s           ours {find['ours_s']:>9.4f}  full scan {find['full_scan_s']:>9.4f}"
        f"  ratio {find['ratio']:.4f}"
    )
    log(
        f"daily run s          two nodes {run['run_s']:>6.2f}  ({run['queued']:,} queued; "
        f"<= {TARGET_RUN_S:.0f} s)  {'MET' if run['target_met'] else 'NOT MET'}"
    )
    log(f"exactly once         {run['exactly_once']}")
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_LICENCES:,} licences")
    parser.add_argument("--licences", type=int, default=0)
    parser.add_argument("--keep", action="store_true", help="keep the database")
    parser.add_argument(
        "--profile", action="store_true", help="profile the daily run (its figure is then slower)"
    )
    ns = parser.parse_args()
    ns.licences = ns.licences or (QUICK_LICENCES if ns.quick else FULL_LICENCES)
    try:
        figures = asyncio.run(main(ns))
    except Exception as e:
        traceback.print_exc()
        print(json.dumps({"error": f"{type(e).__name__}: {e}"}))
        sys.exit(1)
    print(json.dumps(figures, default=str))
