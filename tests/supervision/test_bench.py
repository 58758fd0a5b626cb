"""bench/supervision.py still runs end to end (its figures are read by people, never asserted)."""

from __future__ import annotations

from tests.conftest import PG_ADMIN_URL, Templates
from tests.test_bench_smoke import _quick_run


def test_supervision_benchmark_quick_run_prints_every_figure(templates: Templates) -> None:
    templates.require_pg()
    figures = _quick_run("bench/supervision.py", {"CW_BENCH_POSTGRES_URL": PG_ADMIN_URL})
    for backend in ("postgresql", "sqlite"):
        got = figures[backend]
        assert got["history"]["tickets"] > 1000, got
        assert got["statistics"]["figures_equal_raw"], got["statistics"]
        assert len(got["statistics"]["scenarios"]) == 9
        assert [q["waiting"] for q in got["board"]["queues"]] == [0, 100, 1000]
