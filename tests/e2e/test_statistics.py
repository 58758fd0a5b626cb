"""A supervisor's statistics: the demo district's history in figures, charts and a table,
narrowed by a filter, downloaded as CSV; axe in both languages at both text sizes."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from typing import Any
from zoneinfo import ZoneInfo

from tests.e2e.conftest import DESKTOP, expect, in_english_large_text, login, new_page, shoot
from tests.e2e.server import Server

DAYS = 10
PER_YEAR = "60000"  # about 240 tickets a working day across the district: quick to write


async def test_statistics_of_the_district(browser: Any, server: Server) -> None:
    server.cli("seed", "--history", str(DAYS), "--per-year", PER_YEAR)
    today = dt.datetime.now(ZoneInfo("Asia/Shanghai")).date()
    first, last = today - dt.timedelta(days=DAYS), today - dt.timedelta(days=1)

    page = await new_page(browser, server, DESKTOP, accept_downloads=True)
    await login(page, "supervisor", "/supervisor")
    await page.get_by_role("tab", name="统计分析").click()
    panel = page.locator("[data-test=stats-panel]")
    await expect(panel).to_be_visible()
    await page.locator("[data-test=stats-period-custom]").click()
    await page.fill("[data-test=stats-start]", first.isoformat())
    await page.fill("[data-test=stats-end]", last.isoformat())
    status = page.locator("[data-test=stats-status]")
    await expect(status).to_contain_text(f"{first.isoformat()} 至 {last.isoformat()}")

    taken = page.locator("[data-test=fig-taken] .fig")
    await expect(taken).to_have_text(re.compile(r"^[1-9][0-9]*$"))
    district = int(await taken.inner_text())
    rows = page.locator("[data-test=stats-row]")
    await expect(rows.nth(50)).to_be_attached()  # a row per line of the district
    for chart in ("arrivals", "wait", "sl", "ratings"):
        box = page.locator(f"[data-test=chart-{chart}] [role=img]")
        await expect(box).to_have_attribute("aria-label", re.compile(r"\S"))
        await expect(box.locator("canvas").first).to_be_visible()

    # One department: fewer tickets, and a row per line of that department only.
    await page.locator("[data-test=stats-department]").click()
    await page.get_by_role("option", name="户籍", exact=True).click()
    await expect(taken).not_to_have_text(str(district))
    household = int(await taken.inner_text())
    assert 0 < household < district
    for name in await rows.locator("th").all_inner_texts():
        assert "户籍" in name, name

    async with page.expect_download() as info:
        await page.locator("[data-test=export-csv]").click()
    download = await info.value
    assert (download.suggested_filename or "").endswith(".csv")
    content = (await download.path()).read_text(encoding="utf-8-sig")
    table = list(csv.reader(io.StringIO(content)))
    assert table[0][:3] == ["窗口", "所属", "取号"]
    assert table[-1][0] == "合计" and int(table[-1][2]) == household

    await page.evaluate("window.scrollTo(0, 0)")
    await shoot(page, "supervisor-statistics", [DESKTOP])
    # The numbers behind a chart are a table too.
    await page.locator("[data-test=chart-ratings] summary").click()
    await expect(page.locator("[data-test=chart-ratings] table")).to_contain_text("非常满意")
    await shoot(page, "supervisor-statistics-data", [DESKTOP])
    await in_english_large_text(page, "supervisor-statistics")
    await page.click("[data-test=lang]")
    await expect(page.locator("[data-test=fig-taken]")).to_contain_text("Taken")
    await page.click("[data-test=lang]")
