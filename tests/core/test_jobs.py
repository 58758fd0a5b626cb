"""Periodic work exactly once: leased periods on SQLite and PostgreSQL, two nodes, a killed node."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import signal
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from core.db import Database
from core.jobs import Daily, Every, JobRun, Jobs, Run, Status, history

pytestmark = pytest.mark.dataset("empty")

REPO = Path(__file__).resolve().parents[2]
# Inside an hour, so every clock the tests set falls in the same Every(3600) period.
T0 = dt.datetime(2026, 3, 2, 9, 10, tzinfo=dt.UTC)
HOURLY = Every(3600)
LEASE = dt.timedelta(seconds=60)


class Clock:
    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **kw: float) -> None:
        self.now += dt.timedelta(**kw)


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    database = Database(db_url)
    async with database.engine.begin() as conn:
        await conn.execute(
            text("CREATE TABLE job_effect (period VARCHAR(40) PRIMARY KEY, node VARCHAR(40))")
        )
    yield database
    await database.dispose()


async def effects(db: Database) -> list[tuple[str, str]]:
    async with db.engine.connect() as conn:
        rows = await conn.execute(text("SELECT period, node FROM job_effect ORDER BY period"))
        return [(r[0], r[1]) for r in rows]


async def record_effect(run: Run) -> dict[str, Any]:
    """Idempotent work: one row per period, whoever writes it first."""
    async with run.db.engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO job_effect (period, node) VALUES (:p, :n) "
                "ON CONFLICT (period) DO NOTHING"
            ),
            {"p": run.period_start.isoformat(), "n": run.node_id},
        )
    return {"node": run.node_id}


def test_every_cuts_periods_from_the_epoch() -> None:
    every = Every(600)
    assert every.period_start(T0) == T0.replace(minute=10)
    assert every.period_start(T0 + dt.timedelta(minutes=9, seconds=59)) == T0
    assert every.period_start(T0 + dt.timedelta(minutes=10)) == T0 + dt.timedelta(minutes=10)
    with pytest.raises(ValueError):
        Every(0)


def test_daily_starts_at_the_local_time_of_day() -> None:
    daily = Daily(dt.time(8, 0), "Asia/Shanghai")  # 08:00 in Shanghai is 00:00 UTC
    morning = dt.datetime(2026, 3, 2, 0, 30, tzinfo=dt.UTC)
    assert daily.period_start(morning) == dt.datetime(2026, 3, 2, 0, 0, tzinfo=dt.UTC)
    before = dt.datetime(2026, 3, 1, 23, 59, tzinfo=dt.UTC)  # 07:59 local: yesterday's period
    assert daily.period_start(before) == dt.datetime(2026, 3, 1, 0, 0, tzinfo=dt.UTC)


async def test_a_period_runs_once_and_the_next_period_again(db: Database) -> None:
    clock = Clock(T0)
    jobs = Jobs(db, node_id="a", clock=clock)
    calls: list[dt.datetime] = []

    async def job(run: Run) -> dict[str, Any]:
        calls.append(run.period_start)
        return await record_effect(run)

    jobs.add("test.hourly", HOURLY, job, lease=LEASE)
    [first] = await jobs.tick()
    assert first.status is Status.finished and first.attempt == 1
    assert first.outcome == {"node": "a"}
    assert await jobs.tick() == []  # known done on this node: not even read again
    clock.advance(minutes=40)
    other = Jobs(db, node_id="b", clock=clock)
    other.add("test.hourly", HOURLY, job, lease=LEASE)
    [again] = await other.tick()
    assert again.status is Status.done  # another node reads that the period is done
    clock.advance(minutes=20)  # the next hour
    [second] = await jobs.tick()
    assert second.status is Status.finished
    assert calls == [T0.replace(minute=0), T0.replace(minute=0) + dt.timedelta(hours=1)]
    rows = await history(db, "test.hourly")
    assert [r.finished_at is not None for r in rows] == [True, True]
    assert rows[0].outcome == {"node": "a"}


async def test_two_nodes_at_the_same_moment_run_a_period_once(db: Database, db_url: str) -> None:
    """Two nodes (two connection pools) tick together, period after period: one run each."""
    other = Database(db_url)
    try:
        clock = Clock(T0)
        ran: list[tuple[str, dt.datetime]] = []
        both = asyncio.Barrier(2)

        def make(node: str, database: Database) -> Jobs:
            jobs = Jobs(database, node_id=node, clock=clock)

            async def job(run: Run) -> dict[str, Any]:
                ran.append((run.node_id, run.period_start))
                return await record_effect(run)

            jobs.add("test.together", Every(60), job, lease=LEASE)
            return jobs

        a, b = make("a", db), make("b", other)

        async def at_once(jobs: Jobs) -> list[Any]:
            await both.wait()
            return await jobs.tick()

        for _ in range(10):
            outcomes = await asyncio.gather(at_once(a), at_once(b))
            statuses = [o.status for out in outcomes for o in out]
            assert statuses.count(Status.finished) == 1, statuses
            assert set(statuses) - {Status.finished} <= {Status.held, Status.done}, statuses
            assert len([r for r in ran if r[1] == Every(60).period_start(clock())]) == 1
            clock.advance(minutes=1)
        assert len(ran) == 10
        assert len(await effects(db)) == 10
    finally:
        await other.dispose()


async def test_a_node_that_loses_its_lease_cannot_finish_the_period(db: Database) -> None:
    clock_a, clock_b = Clock(T0), Clock(T0)
    release = asyncio.Event()

    async def slow(run: Run) -> dict[str, Any]:
        await record_effect(run)
        await release.wait()  # a node that stalls (a long pause, a partition)
        return {"by": run.node_id}

    async def quick(run: Run) -> dict[str, Any]:
        return await record_effect(run)

    a = Jobs(db, node_id="a", clock=clock_a)
    a.add("test.fenced", HOURLY, slow, lease=LEASE)
    b = Jobs(db, node_id="b", clock=clock_b)
    b.add("test.fenced", HOURLY, quick, lease=LEASE)

    stalled = asyncio.create_task(a.tick())
    for _ in range(200):
        await asyncio.sleep(0.01)
        if await effects(db):
            break
    assert [o.status for o in await b.tick()] == [Status.held]  # A's lease still runs
    clock_b.advance(seconds=61)
    [taken] = await b.tick()
    assert taken.status is Status.finished and taken.attempt == 2
    release.set()
    [late] = await stalled
    assert late.status is Status.lost and late.attempt == 1
    [row] = await history(db, "test.fenced")
    assert row.claimed_by == "b" and row.attempt == 2 and row.outcome == {"node": "b"}
    assert len(await effects(db)) == 1


async def test_a_failed_run_is_retried_after_its_pause(db: Database) -> None:
    clock = Clock(T0)
    tries: list[int] = []

    async def flaky(run: Run) -> dict[str, Any]:
        tries.append(run.attempt)
        if run.attempt == 1:
            raise RuntimeError("carrier away")
        return {"ok": True}

    jobs = Jobs(db, node_id="a", clock=clock)
    jobs.add("test.flaky", HOURLY, flaky, lease=LEASE, retry_after=dt.timedelta(minutes=2))
    [failed] = await jobs.tick()
    assert failed.status is Status.failed and "carrier away" in failed.error
    [row] = await history(db, "test.flaky")
    assert row.finished_at is None and row.error == "RuntimeError: carrier away"
    assert [o.status for o in await jobs.tick()] == [Status.held]
    clock.advance(minutes=2, seconds=1)
    [retried] = await jobs.tick()
    assert retried.status is Status.finished and tries == [1, 2]


async def test_shutdown_gives_the_lease_up(db: Database) -> None:
    clock = Clock(T0)
    started = asyncio.Event()

    async def forever(run: Run) -> dict[str, Any]:
        started.set()
        await asyncio.Event().wait()
        return {}

    a = Jobs(db, node_id="a", clock=clock, poll_seconds=0.01)
    a.add("test.shutdown", HOURLY, forever, lease=LEASE)
    runner = asyncio.create_task(a.run_forever())
    await asyncio.wait_for(started.wait(), 10)
    runner.cancel()
    await asyncio.gather(runner, return_exceptions=True)
    b = Jobs(db, node_id="b", clock=clock)
    b.add("test.shutdown", HOURLY, record_effect, lease=LEASE)
    [taken] = await b.tick()  # at once: no waiting for the lease to run out
    assert taken.status is Status.finished and taken.attempt == 2


def test_jobs_refuse_bad_registrations(tmp_path: Path) -> None:
    jobs = Jobs(Database(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}"), node_id="a")
    jobs.add("a", HOURLY, record_effect)
    with pytest.raises(ValueError):
        jobs.add("a", HOURLY, record_effect)
    with pytest.raises(ValueError):
        jobs.add("x" * 65, HOURLY, record_effect)
    with pytest.raises(ValueError):
        jobs.add("b", HOURLY, record_effect, lease=dt.timedelta(0))
    assert jobs.names == ["a"]


# A node in a process of its own: claims the period at T0, does the first half of its work
# (committed), says so, then hangs until it is killed.
NODE = textwrap.dedent(
    """
    import asyncio, datetime as dt, sys
    from sqlalchemy import text
    from core.db import Database
    from core.jobs import Every, Jobs

    async def main(url, at):
        db = Database(url)
        now = dt.datetime.fromisoformat(at)
        jobs = Jobs(db, node_id="doomed", clock=lambda: now)

        async def work(run):
            async with db.engine.begin() as conn:
                await conn.execute(
                    text("INSERT INTO job_effect (period, node) VALUES (:p, :n)"),
                    {"p": run.period_start.isoformat(), "n": run.node_id},
                )
            print("half done", flush=True)
            await asyncio.Event().wait()

        jobs.add("test.killed", Every(3600), work, lease=dt.timedelta(seconds=60))
        await jobs.tick()

    asyncio.run(main(sys.argv[1], sys.argv[2]))
    """
)


async def test_a_node_killed_mid_run_leaves_the_period_to_another(
    db: Database, db_url: str
) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        NODE,
        db_url,
        T0.isoformat(),
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 60)
        assert line.strip() == b"half done"
    finally:
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
    [row] = await history(db, "test.killed")
    assert row.claimed_by == "doomed" and row.finished_at is None

    clock = Clock(T0)
    survivor = Jobs(db, node_id="survivor", clock=clock)
    survivor.add("test.killed", HOURLY, record_effect, lease=LEASE)
    assert [o.status for o in await survivor.tick()] == [Status.held]
    clock.advance(seconds=61)  # the dead node's lease has run out
    [taken] = await survivor.tick()
    assert taken.status is Status.finished and taken.attempt == 2
    [row] = await history(db, "test.killed")
    assert (row.claimed_by, row.attempt) == ("survivor", 2) and row.finished_at is not None
    # The work is idempotent: the half the dead node committed is not done twice.
    assert await effects(db) == [(T0.replace(minute=0).isoformat(), "doomed")]


async def test_old_finished_periods_are_pruned(db: Database) -> None:
    clock = Clock(T0)
    jobs = Jobs(db, node_id="a", clock=clock, history=dt.timedelta(days=1))
    jobs.add("test.prune", HOURLY, record_effect, lease=LEASE)
    await jobs.tick()
    clock.advance(days=2)
    await jobs.tick()
    await jobs._prune()
    rows = await history(db, "test.prune")
    assert [r.period_start for r in rows] == [HOURLY.period_start(clock())]
    assert isinstance(rows[0], JobRun)
