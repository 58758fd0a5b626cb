"""The benchmarks still run end to end (their figures are read by people, never asserted)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.conftest import PG_ADMIN_URL, Templates

ROOT = Path(__file__).resolve().parents[1]


def test_signaling_benchmark_quick_run_prints_every_figure(templates: Templates) -> None:
    templates.require_pg()
    figures = _quick_run("bench/signaling.py", {"CW_BENCH_POSTGRES_URL": PG_ADMIN_URL})
    text = json.dumps(figures)
    for key in ("relay", "call_next", "memory"):
        assert key in text, f"{key} missing from {sorted(figures)}"
    assert "error" not in figures


def test_uploads_benchmark_quick_run_prints_every_figure() -> None:
    figures = _quick_run("bench/uploads.py")
    assert set(figures) == {"local_10MB", "local_100MB", "s3_10MB"}
    for name in ("local_10MB", "local_100MB"):
        assert figures[name]["upload_MBps"] > 0 and figures[name]["file_write_MBps"] > 0
    # Only the slot request and the confirm reach the app; the bytes go straight to S3.
    assert figures["s3_10MB"]["app_requests_per_upload"] == 2


def test_recording_benchmark_quick_run_prints_both_figures() -> None:
    figures = _quick_run("bench/recording.py")
    ours, stock = figures["compare"]["ours"], figures["compare"]["stock"]
    assert ours["cpu_s_per_media_s"] > 0 and stock["cpu_s_per_media_s"] > 0
    assert ours["undecodable"] == 0
    assert figures["max_participants_without_loss"] >= 1


def test_call_setup_benchmark_quick_run_prints_ours_and_the_floor() -> None:
    from tests.e2e.conftest import _require_tools

    _require_tools()
    figures = _quick_run("bench/call_setup.py")
    text = json.dumps(figures)
    assert "floor" in text and "ratio" in text, text[:500]


def _quick_run(script: str, extra_env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run a benchmark with --quick; its last line is the JSON of every figure."""
    proc = subprocess.run(
        [sys.executable, script, "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**_env(), **(extra_env or {})},
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("CLOUDWINDOW_")}
