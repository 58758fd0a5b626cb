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

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


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


def cluster_env(db_url: str, redis_url: str, data_dir: Path) -> dict[str, str]:
    return server_env(
        data_dir,
        database_url=db_url,
        redis_url=redis_url,
        # Each test its own Redis keys and channel, so parallel runs never cross.
        redis_namespace=f"cwtest-{uuid.uuid4().hex[:8]}",
    )
