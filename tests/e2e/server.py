"""A `cloudwindow serve` process with its own data directory, migrated and demo-seeded."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import aiohttp

from tests.signaling.nodes import ROOT, free_port

__all__ = ["ROOT", "Server"]


class Server:
    def __init__(self, data_dir: Path, **settings: str) -> None:
        """`settings`: extra CLOUDWINDOW_* variables, e.g. RECORDING_SEGMENT_SECONDS="2"."""
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = data_dir / "server.log"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("CLOUDWINDOW_")}
        self.env.update(
            CLOUDWINDOW_DATA_DIR=str(data_dir),
            CLOUDWINDOW_PORT=str(self.port),
            CLOUDWINDOW_SECRET_KEY="test-secret-key-not-for-production",
            CLOUDWINDOW_PASSWORD_HASH_TIME_COST="1",
            CLOUDWINDOW_PASSWORD_HASH_MEMORY_KIB="64",
            CLOUDWINDOW_LOG_LEVEL="WARNING",
            CLOUDWINDOW_LOG_FORMAT="text",
            # Logins of many tests come from one address within minutes.
            CLOUDWINDOW_LOGIN_MAX_FAILURES_PER_IP="1000",
        )
        self.env.update({f"CLOUDWINDOW_{k.upper()}": v for k, v in settings.items()})
        self.proc: subprocess.Popen[bytes] | None = None

    def cli(self, *args: str) -> None:
        subprocess.run(
            [sys.executable, "-m", "web.cli", *args],
            cwd=ROOT,
            env=self.env,
            check=True,
            stdout=subprocess.DEVNULL,
        )

    def start(self) -> None:
        self.cli("migrate")
        self.cli("seed", "--demo")
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "web.cli", "serve"],
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    async def ready(self, within: float = 60) -> None:
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
                await asyncio.sleep(0.2)
        raise TimeoutError(self.log.read_text()[-2000:])

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
