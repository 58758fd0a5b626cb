"""Periodic work exactly once per period across nodes: one leased row per (job, period).

Every node runs the same runner. For each job whose current period has begun, a node tries to
claim that period's row with one conditional statement: insert it, or take it over when it is
unfinished and its lease has run out. The node that wins runs the job, renews the lease while
the job runs, and marks the period finished. A node that dies mid-run stops renewing; once the
lease has run out, the next tick of any node takes the same period over with the next attempt
number. Renewing and finishing are conditional on that attempt number, so a node that was
taken for dead and wakes up can neither extend nor finish a period another node now holds.

What a job does must be idempotent on its own (unique keys, ON CONFLICT DO NOTHING, updates
conditional on the state they read): a period retaken after a death runs again, and must not
repeat what the first attempt already committed. docs/architecture.md ("Periodic work") says
why leases in the database, not a task queue.

Use:

    jobs = Jobs(db, node_id="node-a")
    jobs.add("reminders.daily", Daily(dt.time(8), "Asia/Shanghai"), run_reminders,
             lease=dt.timedelta(minutes=5))
    await jobs.run_forever()        # in a cleanup context; or `await jobs.tick()` in a test

A job is `async def fn(run: Run) -> Mapping[str, Any] | None`; what it returns is kept on the
period's row as its outcome (JSON).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from sqlalchemy import JSON, delete, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Field, SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.db import Database, UTCDateTime, utcnow

log = logging.getLogger("cloudwindow.jobs")

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
MAX_NAME = 64
# A job's lease is renewed this many times per lease: a renewal that is late by up to two
# intervals (a slow database, a busy loop) still lands before the lease runs out.
RENEWALS_PER_LEASE = 3


class JobRun(SQLModel, table=True):
    """One period of one job: who holds it, until when, and whether it is done."""

    __tablename__ = "job_run"
    name: str = Field(primary_key=True, max_length=MAX_NAME)
    period_start: dt.datetime = Field(primary_key=True, sa_type=UTCDateTime)
    attempt: int = Field(default=1)
    claimed_by: str = Field(max_length=100)
    claimed_at: dt.datetime = Field(sa_type=UTCDateTime, nullable=False)
    lease_until: dt.datetime = Field(sa_type=UTCDateTime, nullable=False)
    finished_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    outcome: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    error: str = Field(default="", max_length=500)


# -- schedules: how time is cut into periods (every node cuts it alike)


class Schedule(Protocol):
    def period_start(self, now: dt.datetime) -> dt.datetime:
        """The start (UTC) of the period that holds `now`."""
        ...


@dataclass(frozen=True)
class Every:
    """Periods of a fixed number of seconds, counted from the Unix epoch."""

    seconds: int

    def __post_init__(self) -> None:
        if self.seconds < 1:
            raise ValueError("a period is at least one second")

    def period_start(self, now: dt.datetime) -> dt.datetime:
        n = int((now - EPOCH).total_seconds() // self.seconds)
        return EPOCH + dt.timedelta(seconds=n * self.seconds)


@dataclass(frozen=True)
class Daily:
    """One period a day, starting at a time of day on the local wall clock of `tz`."""

    at: dt.time
    tz: str

    def period_start(self, now: dt.datetime) -> dt.datetime:
        zone = ZoneInfo(self.tz)
        local = now.astimezone(zone)
        start = dt.datetime.combine(local.date(), self.at, zone)
        if start > local:
            start = dt.datetime.combine(local.date() - dt.timedelta(days=1), self.at, zone)
        return start.astimezone(dt.UTC)


# -- what a job is given, and what a tick reports


Clock = Callable[[], dt.datetime]


@dataclass(frozen=True)
class Run:
    """The period a job runs for, on this node; `now()` is the runner's (settable) clock."""

    name: str
    period_start: dt.datetime
    attempt: int
    node_id: str
    db: Database
    clock: Clock

    def now(self) -> dt.datetime:
        return self.clock()

    @property
    def retaken(self) -> bool:
        """Another attempt at this period died or failed before this one."""
        return self.attempt > 1


JobFn = Callable[[Run], Awaitable[Mapping[str, Any] | None]]


@dataclass(frozen=True)
class Job:
    name: str
    schedule: Schedule
    fn: JobFn
    lease: dt.timedelta
    retry_after: dt.timedelta


class Status(StrEnum):
    finished = "finished"  # this node ran the period to the end
    failed = "failed"  # the job raised; any node retries after retry_after
    lost = "lost"  # the lease passed to another node before this one finished
    held = "held"  # another node holds the period's lease
    done = "done"  # the period was already finished


@dataclass(frozen=True)
class Outcome:
    name: str
    period_start: dt.datetime
    status: Status
    attempt: int = 0
    outcome: Mapping[str, Any] = field(default_factory=dict)
    error: str = ""


def _insert(session: AsyncSession) -> Any:
    dialect = session.bind.dialect.name if session.bind else "sqlite"
    return (postgresql if dialect == "postgresql" else sqlite).insert(JobRun)


def _this(name: str, period: dt.datetime, attempt: int) -> list[Any]:
    """The row of the period as this attempt holds it (the fencing condition)."""
    return [
        col(JobRun.name) == name,
        col(JobRun.period_start) == period,
        col(JobRun.attempt) == attempt,
        col(JobRun.finished_at).is_(None),
    ]


# -- the runner


class Jobs:
    """The periodic jobs of one node; every node registers the same ones."""

    def __init__(
        self,
        db: Database,
        *,
        node_id: str,
        clock: Clock = utcnow,
        poll_seconds: float = 5.0,
        history: dt.timedelta = dt.timedelta(days=7),
    ) -> None:
        self.db = db
        self.node_id = node_id[:100]
        self.clock = clock
        self.poll_seconds = poll_seconds
        self.history = history
        self._jobs: dict[str, Job] = {}
        self._done: dict[str, dt.datetime] = {}  # the last period seen finished, per job
        self._running: dict[str, asyncio.Task[Outcome]] = {}
        self._pruned_at: float | None = None

    def add(
        self,
        name: str,
        schedule: Schedule,
        fn: JobFn,
        *,
        lease: dt.timedelta = dt.timedelta(minutes=5),
        retry_after: dt.timedelta = dt.timedelta(minutes=1),
    ) -> None:
        """Register a job; `lease` must exceed any pause the node may take between renewals."""
        if not name or len(name) > MAX_NAME:
            raise ValueError(f"a job name has 1 to {MAX_NAME} characters")
        if name in self._jobs:
            raise ValueError(f"job {name!r} is registered twice")
        if lease < dt.timedelta(seconds=1):
            raise ValueError("a lease is at least one second")
        self._jobs[name] = Job(name, schedule, fn, lease, retry_after)

    @property
    def names(self) -> list[str]:
        return sorted(self._jobs)

    async def tick(self) -> list[Outcome]:
        """One pass: run every job whose current period is due and not held, and wait."""
        started = self._start_due()
        if not started:
            return []
        return list(await asyncio.gather(*started))

    async def run_once(self, name: str) -> Outcome:
        """Claim and run the current period of one job here (tests, the command line)."""
        return await self._attempt(self._jobs[name])

    async def run_forever(self) -> None:
        """Tick every poll_seconds until cancelled; then give up the leases this node holds."""
        try:
            while True:
                # First wait, then tick: a node starting up serves requests before it claims.
                await asyncio.sleep(self.poll_seconds)
                self._start_due()
                await self._prune()
        finally:
            tasks = list(self._running.values())
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def _start_due(self) -> list[asyncio.Task[Outcome]]:
        started = []
        now = self.clock()
        for job in self._jobs.values():
            if job.name in self._running:
                continue  # this node is still running its last period
            if self._done.get(job.name) == job.schedule.period_start(now):
                continue
            task = asyncio.create_task(self._attempt(job), name=f"job:{job.name}")
            self._running[job.name] = task
            task.add_done_callback(lambda _t, n=job.name: self._running.pop(n, None))
            started.append(task)
        return started

    async def _attempt(self, job: Job) -> Outcome:
        now = self.clock()
        period = job.schedule.period_start(now)
        try:
            claimed = await self._claim(job, period, now)
            if isinstance(claimed, Status):
                if claimed is Status.done:
                    self._done[job.name] = period
                return Outcome(job.name, period, claimed)
            run = Run(job.name, period, claimed, self.node_id, self.db, self.clock)
            return await self._run(job, run)
        except Exception as e:  # the database is away: the next tick tries again
            log.warning("job %s: %s", job.name, e)
            return Outcome(job.name, period, Status.failed, error=str(e)[:500])

    async def _claim(self, job: Job, period: dt.datetime, now: dt.datetime) -> int | Status:
        """The attempt number if this node took the period, else why not.

        One conditional statement decides between nodes; the read before it only spares a
        write when the period is plainly held or done.
        """
        async with self.db.session() as session:
            row = await session.get(JobRun, (job.name, period))
            if row is not None:
                if row.finished_at is not None:
                    return Status.done
                if row.lease_until >= now:
                    return Status.held
            ins = _insert(session)
            table = JobRun.__table__  # type: ignore[attr-defined]
            stmt = (
                ins.values(
                    name=job.name,
                    period_start=period,
                    attempt=1,
                    claimed_by=self.node_id,
                    claimed_at=now,
                    lease_until=now + job.lease,
                    outcome={},
                    error="",
                )
                .on_conflict_do_update(
                    index_elements=["name", "period_start"],
                    set_={
                        "attempt": table.c.attempt + 1,
                        "claimed_by": ins.excluded.claimed_by,
                        "claimed_at": ins.excluded.claimed_at,
                        "lease_until": ins.excluded.lease_until,
                    },
                    where=table.c.finished_at.is_(None)
                    & (table.c.lease_until < ins.excluded.claimed_at),
                )
                .returning(table.c.attempt)
            )
            won = (await session.exec(stmt)).first()  # type: ignore[call-overload]
            await session.commit()
        return Status.held if won is None else int(won[0])

    async def _run(self, job: Job, run: Run) -> Outcome:
        began = time.perf_counter()
        work = asyncio.create_task(job.fn(run), name=f"job:{job.name}:work")
        keeper = asyncio.create_task(self._keep(job, run), name=f"job:{job.name}:lease")
        try:
            await asyncio.wait({work, keeper}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            # The node is shutting down: stop, and let another node take the period at once.
            work.cancel()
            keeper.cancel()
            await asyncio.gather(work, keeper, return_exceptions=True)
            await self._release(run)
            raise
        if not work.done():
            work.cancel()  # the lease passed to another node: stop working for it
            await asyncio.gather(work, return_exceptions=True)
            log.warning("job %s attempt %d: lease lost, stopped", job.name, run.attempt)
            return Outcome(job.name, run.period_start, Status.lost, run.attempt)
        keeper.cancel()
        await asyncio.gather(keeper, return_exceptions=True)
        error = work.exception()
        if error is not None:
            log.error("job %s attempt %d failed", job.name, run.attempt, exc_info=error)
            await self._failed(job, run, error)
            return Outcome(
                job.name, run.period_start, Status.failed, run.attempt, error=str(error)[:500]
            )
        outcome = dict(work.result() or {})
        if not await self._finish(run, outcome):
            log.warning("job %s attempt %d: finished after losing its lease", job.name, run.attempt)
            return Outcome(job.name, run.period_start, Status.lost, run.attempt, outcome)
        self._done[job.name] = run.period_start
        log.info(
            "job %s period %s attempt %d finished in %.2f s: %s",
            job.name,
            run.period_start.isoformat(),
            run.attempt,
            time.perf_counter() - began,
            outcome,
        )
        return Outcome(job.name, run.period_start, Status.finished, run.attempt, outcome)

    async def _keep(self, job: Job, run: Run) -> None:
        """Renew the lease until the work ends; return as soon as the lease is not ours."""
        interval = job.lease.total_seconds() / RENEWALS_PER_LEASE
        while True:
            await asyncio.sleep(interval)
            try:
                if not await self._update(run, lease_until=self.clock() + job.lease):
                    return
            except Exception as e:  # the database is away: try again before the lease ends
                log.warning("job %s: lease renewal failed: %s", job.name, e)

    async def _update(self, run: Run, **values: Any) -> bool:
        async with self.db.session() as session:
            stmt = update(JobRun).where(*_this(run.name, run.period_start, run.attempt))
            done = await session.exec(stmt.values(**values))  # type: ignore[call-overload]
            await session.commit()
        return bool(done.rowcount)

    async def _finish(self, run: Run, outcome: dict[str, Any]) -> bool:
        now = self.clock()
        return await self._update(run, finished_at=now, lease_until=now, outcome=outcome, error="")

    async def _failed(self, job: Job, run: Run, error: BaseException) -> None:
        try:
            await self._update(
                run,
                lease_until=self.clock() + job.retry_after,
                error=f"{type(error).__name__}: {error}"[:500],
            )
        except Exception:
            log.exception("job %s: could not record the failure", job.name)

    async def _release(self, run: Run) -> None:
        try:
            # The epoch: free to any node's clock at once.
            await asyncio.shield(self._update(run, lease_until=EPOCH))
        except Exception:  # the lease then runs out by itself
            log.warning("job %s: lease not released at shutdown", run.name)

    async def _prune(self) -> None:
        """Drop finished periods older than `history`, at most once an hour per node."""
        if self._pruned_at is not None and time.monotonic() - self._pruned_at < 3600:
            return
        self._pruned_at = time.monotonic()
        cutoff = self.clock() - self.history
        try:
            async with self.db.session() as session:
                for name in self._jobs:
                    await session.exec(
                        delete(JobRun).where(  # type: ignore[call-overload]
                            col(JobRun.name) == name,
                            col(JobRun.period_start) < cutoff,
                            col(JobRun.finished_at).is_not(None),
                        )
                    )
                await session.commit()
        except Exception as e:
            log.warning("job history not pruned: %s", e)


async def history(db: Database, name: str, *, limit: int = 20) -> list[JobRun]:
    """The latest periods of one job, newest first (operations, tests)."""
    async with db.session() as session:
        rows = await session.exec(
            select(JobRun)
            .where(JobRun.name == name)
            .order_by(col(JobRun.period_start).desc())
            .limit(limit)
        )
        return list(rows.all())
