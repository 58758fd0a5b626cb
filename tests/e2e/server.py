"""A `cloudwindow serve` process with its own data directory, migrated and demo-seeded."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.signaling.nodes import ROOT, Node, server_env

__all__ = ["ROOT", "UI_E2E", "Server"]

# The UI built with its test hooks (npm run build:e2e); `make test` builds it. CW_TEST_UI_DIR
# points the browser tests at another build of it (one per working copy of the UI).
UI_E2E = Path(os.environ.get("CW_TEST_UI_DIR") or ROOT / "web" / "ui" / "dist-e2e")


class Server(Node):
    """One node on its own SQLite database serving the e2e UI; `settings`: more CLOUDWINDOW_*."""

    def __init__(self, data_dir: Path, **settings: str) -> None:
        # Logins of many tests come from one address within minutes.
        settings = {"login_max_failures_per_ip": "1000", "ui_dir": str(UI_E2E), **settings}
        env = server_env(data_dir, **settings)
        super().__init__("e2e", env, data_dir)
        self.data_dir = data_dir

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
        super().start()

    async def ready(self, within: float = 60) -> None:
        await super().ready(within)
