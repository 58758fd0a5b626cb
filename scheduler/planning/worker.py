"""Solves run in a separate worker process, never in the server's event loop or thread pool.

A 20-second PyVRP solve holds a CPU for 20 seconds; in-process it would stall every socket of
the node (bench/routing.py measures the socket-ack p99 while a solve runs). The pool is one
`spawn`ed process per node by default (setting planner_workers): spawn, not fork, because the
server process holds sockets, threads and an event loop that a fork would copy.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from concurrent.futures import ProcessPoolExecutor

from scheduler.planning.problem import Plan, Problem


def _solve_json(problem_json: str, seconds: float, seed: int) -> str:
    from scheduler.planning.solver import solve  # imported in the worker: PyVRP loads there

    return solve(
        Problem.model_validate_json(problem_json), seconds=seconds, seed=seed
    ).model_dump_json()


class Planner:
    """The node's planning pool; `plan()` awaits a solve without blocking the loop."""

    def __init__(self, workers: int = 1) -> None:
        self.workers = workers
        self.pool: ProcessPoolExecutor | None = None

    def start(self) -> None:
        if self.pool is None:
            ctx = multiprocessing.get_context("spawn")
            self.pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=ctx)

    async def plan(self, problem: Problem, *, seconds: float, seed: int = 1) -> Plan:
        self.start()
        assert self.pool is not None
        loop = asyncio.get_running_loop()
        out = await loop.run_in_executor(
            self.pool, _solve_json, problem.model_dump_json(), seconds, seed
        )
        return Plan.model_validate_json(out)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=False, cancel_futures=True)
            self.pool = None
