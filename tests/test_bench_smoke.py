"""The benchmarks still run end to end (their figures are read by people, never asserted)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import PG_ADMIN_URL, Templates

ROOT = Path(__file__).resolve().parents[1]


def test_signaling_benchmark_quick_run_prints_every_figure(templates: Templates) -> None:
    templates.require_pg()
    proc = subprocess.run(
        [sys.executable, "bench/signaling.py", "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**_env(), "CW_BENCH_POSTGRES_URL": PG_ADMIN_URL},
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    figures = json.loads(proc.stdout.strip().splitlines()[-1])
    text = json.dumps(figures)
    for key in ("relay", "call_next", "memory"):
        assert key in text, f"{key} missing from {sorted(figures)}"
    assert "error" not in figures


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("CLOUDWINDOW_")}
