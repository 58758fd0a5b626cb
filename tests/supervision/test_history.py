"""The demo district's synthetic history: busy mornings, quiet weekends, closed holidays, every
bad rating already followed up, written once per day, and rolled up for the statistics."""

from __future__ import annotations

import datetime as dt
import os
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text

from core.db import Database
from core.settings import Settings
from web.cli import main
from web.demo.history import seed_history

ZONE = ZoneInfo("Asia/Shanghai")
# A fortnight without public holidays (Monday 2 to Sunday 15 March 2026), at the deployed
# district's yearly volume scaled down to keep the test quick.
TODAY = dt.date(2026, 3, 16)
DAYS = 14
PER_YEAR = 150_000


async def _rows(db: Database, sql: str, **params: Any) -> list[Any]:
    async with db.session() as s:
        return list((await s.exec(text(sql), params=params)).all())  # type: ignore[call-overload]


async def test_arrivals_follow_the_week_and_the_day(settings: Settings) -> None:
    db = Database(settings.effective_database_url)
    try:
        summary = await seed_history(db, settings, days=DAYS, per_year=PER_YEAR, today=TODAY)
        assert summary.days == DAYS and summary.skipped == 0
        assert summary.tickets > 5000 and summary.transfers > 0
        days = {
            dt.date.fromisoformat(str(d)): n
            for d, n in await _rows(db, "SELECT day, count(*) FROM ticket GROUP BY day")
        }
        mondays = [n for d, n in days.items() if d.weekday() == 0]
        fridays = [n for d, n in days.items() if d.weekday() == 4]
        weekends = [n for d, n in days.items() if d.weekday() >= 5]
        assert min(mondays) > max(fridays) * 1.05
        # Weekends: only the halls open then (the district center on Saturday morning, and
        # 望江街道 on both mornings), so a fraction of a weekday.
        assert max(weekends) < min(fridays) / 4
        open_on = {dt.date(2026, 3, 7): ["D00", "T02"], dt.date(2026, 3, 8): ["T02"]}
        for d, open_halls in open_on.items():
            halls = await _rows(
                db,
                "SELECT DISTINCT s.code FROM ticket t JOIN window_line l ON l.id = t.line_id "
                "JOIN site s ON s.id = l.site_id WHERE t.day = :d ORDER BY s.code",
                d=d if db.dialect == "postgresql" else d.isoformat(),
            )
            assert [r[0] for r in halls] == open_halls

        hours = [0] * 24
        for (created,) in await _rows(db, "SELECT created_at FROM ticket"):
            t = created if isinstance(created, dt.datetime) else dt.datetime.fromisoformat(created)
            hours[t.replace(tzinfo=dt.UTC).astimezone(ZONE).hour] += 1
        assert hours[12] == 0 and hours[21] == 0 and hours[7] == 0  # lunch, night, early morning
        assert hours[9] + hours[10] > 1.3 * (hours[14] + hours[15])  # busy mornings

        # Every bad rating (1, 2) is already called back and closed, as the district works.
        bad = await _rows(db, "SELECT count(*) FROM case_rating WHERE score <= 2")
        closed = await _rows(db, "SELECT count(*) FROM rating_followup WHERE status = 'closed'")
        assert bad[0][0] > 0 and bad == closed

        # The statistics are rolled up for every day written.
        rolled = await _rows(db, "SELECT count(DISTINCT day) FROM stats_day")
        assert rolled[0][0] == DAYS
        for table in ("stats_day", "stats_month"):
            taken = await _rows(
                db, f"SELECT sum(taken) FROM {table} WHERE item_id = 0 AND clerk_id = 0"
            )
            assert taken[0][0] == summary.tickets, table

        # A second run leaves written days alone.
        again = await seed_history(db, settings, days=DAYS, per_year=PER_YEAR, today=TODAY)
        assert again.days == 0 and again.tickets == 0
    finally:
        await db.dispose()


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_seed_history_from_the_command_line(
    db_url: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    env = {
        "CLOUDWINDOW_DATABASE_URL": db_url,
        "CLOUDWINDOW_DATA_DIR": str(tmp_path),
        "CLOUDWINDOW_SECRET_KEY": "test-secret-key-not-for-production",
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert main(["seed", "--history", "3", "--per-year", "20000"]) == 0
    out = capsys.readouterr().out
    assert "history:" in out and "tickets" in out
    assert main(["seed"]) == 2
    with pytest.raises(SystemExit):
        main(["seed", "--history", "0"])
    assert os.environ["CLOUDWINDOW_DATABASE_URL"] == db_url
