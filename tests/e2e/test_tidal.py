"""A tidal window from both sides: 高桥镇's head sees 户籍 short and a cross-trained clerk to
spare, applies the suggestion with one click, and the clerk's console, open all along, shows
the new line without a reload; call next then serves a resident of 户籍. The tab passes axe
at normal and large text, in Chinese and English."""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from sqlmodel import select

from core.db import Database, utcnow
from core.models import WindowLine
from supervision.models import TidalShortfall
from supervision.tidal import previous_window, window_start
from tests.conftest import User
from tests.e2e.conftest import DESKTOP, expect, in_english_large_text, login, new_page, shoot
from tests.e2e.server import Server
from tests.signaling.helpers import Sock

TARGET = "T07-household"  # 高桥镇·户籍; its own clerk is not logged in
MOVER = "clerk.t07.s"  # 高桥镇·市场监管, trained for 户籍 too
TZ = "Asia/Shanghai"  # the server's default CLOUDWINDOW_TIMEZONE
WINDOW_MIN = 30  # and CLOUDWINDOW_TIDAL_WINDOW_MINUTES


@pytest.fixture
async def short_household(server: Server) -> AsyncIterator[dict[str, Any]]:
    """A resident waiting on 高桥镇·户籍 (taken by the point, over its socket), and the line
    recorded short in the previous window, as the sweep there would have left it."""
    db_file = server.data_dir / "cloudwindow.db"
    with sqlite3.connect(db_file) as conn:
        conn.execute("UPDATE staff SET skills = ? WHERE username = ?", ('["户籍"]', MOVER))
    db = Database(f"sqlite+aiosqlite:///{db_file}")
    http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    worker = User(http, server.base)
    point: Sock | None = None
    try:
        async with db.session() as s:
            line = (await s.exec(select(WindowLine).where(WindowLine.code == TARGET))).one()
            now = utcnow()
            before = previous_window(
                window_start(now, minutes=WINDOW_MIN, tz=TZ), minutes=30, tz=TZ
            )
            # The server's own sweep may have recorded that window already (the server runs
            # for the whole session): that row becomes the shortfall, else a new one.
            found = (
                await s.exec(
                    select(TidalShortfall).where(
                        TidalShortfall.line_id == line.id, TidalShortfall.window_start == before
                    )
                )
            ).first()
            row = found or TidalShortfall(line_id=line.id or 0, window_start=before)
            row.arrivals_per_hour = 4.0
            row.handling_seconds = 480
            row.clerks = 0
            row.needed = 1
            row.service_level = 0.0
            row.short = True
            row.updated_at = now - dt.timedelta(minutes=WINDOW_MIN)
            s.add(row)
            await s.commit()
        assert (await worker.login("worker")).status == 200
        point = await Sock(worker).connect()
        site = next(
            x
            for x in await (await worker.get("/api/v1/sites", params={"kind": "community"})).json()
            if x["code"] == "T07-C01"
        )
        ticket = await point.ok(
            "ticket:take",
            {
                "line_id": line.id,
                "item_code": "HJ-001",  # 户口迁移, handled at the town's 户籍 line
                "site_id": site["id"],
                "resident_id": None,
                "consent": True,
            },
        )
        yield {"line_id": line.id, "ticket": ticket, "point": point}
    finally:
        if point is not None:
            await point.close()
        await http.close()
        async with db.session() as s:
            rows = await s.exec(select(TidalShortfall))
            for row in rows.all():
                await s.delete(row)
            await s.commit()
        await db.dispose()


async def test_the_head_applies_a_suggestion_and_the_clerk_serves_the_new_line_live(
    browser: Any, server: Server, short_household: dict[str, Any]
) -> None:
    number = short_household["ticket"]["number"]
    clerk = await new_page(browser, server, DESKTOP)
    await login(clerk, MOVER, "/clerk")
    cards = clerk.locator("[data-test=line-card]")
    await expect(cards).to_have_count(1)  # 高桥镇·市场监管 only
    await expect(cards.filter(has_text="高桥镇·户籍")).to_have_count(0)

    head = await new_page(browser, server, DESKTOP)
    await login(head, "supervisor.t07", "/supervisor")
    await head.get_by_role("tab", name="潮汐窗口").click()
    panel = head.locator("[data-test=tidal-panel]")
    await expect(panel.locator("[data-test=tidal-rough-note]")).to_contain_text("不足 5 名人员")
    short = panel.locator("[data-test=tidal-line]", has_text="高桥镇·户籍")
    await expect(short).to_contain_text("连续两个时段缺员")
    suggestion = panel.locator("[data-test=tidal-suggestion]", has_text="高桥镇·市场监管窗口")
    text = suggestion.locator("[data-test=tidal-suggestion-text]")
    await expect(text).to_contain_text("从 高桥镇·市场监管 调往 高桥镇·户籍")
    await expect(text).to_contain_text("高桥镇·户籍 达标率 0% →")
    await shoot(head, "supervisor-tidal", [DESKTOP])
    await in_english_large_text(head, "supervisor-tidal")
    await expect(text).to_contain_text("从 高桥镇·市场监管 调往 高桥镇·户籍")  # back in Chinese

    opened = head.locator("[data-test=count-tidal] .fig")
    before = int((await opened.text_content() or "0").strip())
    await suggestion.locator("[data-test=tidal-apply]").click()
    move = panel.locator("[data-test=tidal-move]", has_text="高桥镇·市场监管窗口")
    await expect(move).to_contain_text("高桥镇·市场监管 → 高桥镇·户籍")
    await expect(panel.locator("[data-test=tidal-suggestion]")).to_have_count(0)
    # The period's counts on the board tab follow: one more tidal-window opening.
    await head.get_by_role("tab", name="实时监控").click()
    await expect(opened).to_have_text(str(before + 1))
    await head.get_by_role("tab", name="潮汐窗口").click()

    # The clerk's console, never reloaded: the new line and the notice appear by themselves.
    await expect(cards.filter(has_text="高桥镇·户籍")).to_have_count(1)
    await expect(clerk.locator("[data-test=tidal-banner]")).to_contain_text("支援 高桥镇·户籍")
    await expect(clerk.locator("[data-test=queue]")).to_contain_text(number)
    await clerk.click("[data-test=call-next]")
    await expect(clerk.locator("[data-test=serving-number]")).to_have_text(number)
    # Returned (the point of this test is a python socket, not a tablet that answers).
    await clerk.click("[data-test=outcome-returned]")
    await clerk.fill("#finish-reason", "测试潮汐窗口")
    await clerk.click("[data-test=finish]")
    await expect(clerk.locator("[data-test=serving-number]")).to_have_count(0)

    # The head ends the move by hand; the console drops the line again, live.
    await move.locator("[data-test=tidal-close]").click()
    await expect(panel.locator("[data-test=tidal-move]")).to_have_count(0)
    await expect(cards.filter(has_text="高桥镇·户籍")).to_have_count(0)
    await expect(clerk.locator("[data-test=tidal-banner]")).to_have_count(0)
