"""Real CloudWindow server processes for multi-node tests."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Node:
    """`cloudwindow serve` in its own process, sharing the database and Redis with the others."""

    def __init__(self, name: str, env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = log_dir / f"{name}.log"
        self.env = {**env, "CLOUDWINDOW_PORT": str(self.port), "CLOUDWINDOW_NODE_ID": name}
        self.proc: subprocess.Popen[bytes] | None = None
        self.killed = False  # killed on purpose: its log may end anywhere

    def start(self) -> None:
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "web.cli", "serve"],
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    async def ready(self, within: float = 30) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        async with aiohttp.ClientSession() as http:
            while loop.time() < deadline:
                assert self.proc is not None and self.proc.poll() is None, self.log.read_text()
                try:
                    async with http.get(f"{self.base}/readyz") as resp:
                        if resp.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
        raise TimeoutError(f"{self.name} not ready: {self.log.read_text()[-2000:]}")

    def kill(self) -> None:
        """SIGKILL, as a crashed machine: nothing is drained or closed."""
        self.killed = True
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self, check: bool = True) -> None:
        """SIGTERM and wait; then fail if the server logged a traceback (unless killed)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if check:
            self.assert_no_tracebacks()

    def tracebacks(self) -> list[str]:
        """Tracebacks in the server's log, text or JSON lines, with a few lines around them."""
        if self.killed or not self.log.exists():
            return []
        lines = self.log.read_text(errors="replace").splitlines()
        return [
            "\n".join(lines[max(0, i - 2) : i + 12])
            for i, line in enumerate(lines)
            if "Traceback (most recent call last)" in line or '"exc":' in line
        ]

    def assert_no_tracebacks(self) -> None:
        found = self.tracebacks()
        assert not found, f"{self.name} logged {len(found)} traceback(s):\n" + "\n---\n".join(
            found[:3]
        )


def server_env(data_dir: Path, **settings: str) -> dict[str, str]:
    """The environment of a test server process: no CLOUDWINDOW_* of ours leaks in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLOUDWINDOW_")}
    env.update(
        CLOUDWINDOW_DATA_DIR=str(data_dir),
        CLOUDWINDOW_SECRET_KEY="test-secret-key-not-for-production",
        CLOUDWINDOW_PASSWORD_HASH_TIME_COST="1",
        CLOUDWINDOW_PASSWORD_HASH_MEMORY_KIB="64",
        CLOUDWINDOW_LOG_LEVEL="WARNING",
        CLOUDWINDOW_LOG_FORMAT="text",
    )
    env.update({f"CLOUDWINDOW_{k.upper()}": v for k, v in settings.items()})
    return env


def cluster_env(db_url: str, redis_url: str, data_dir: Path, **settings: str) -> dict[str, str]:
    return server_env(
        data_dir,
        database_url=db_url,
        redis_url=redis_url,
        # Each test its own Redis keys and channel, so parallel runs never cross.
        redis_namespace=f"cwtest-{uuid.uuid4().hex[:8]}",
        **settings,
    )
