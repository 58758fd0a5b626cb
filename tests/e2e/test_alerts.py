"""The department head's side of a long wait: the alert appears on the supervisor page by
itself, they take it on with a note, and it closes when the resident is called."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.conftest import (
    DESKTOP,
    TABLET_LANDSCAPE,
    expect,
    login,
    new_page,
    resident_id,
    shoot,
)
from tests.e2e.flow import take_ticket
from tests.e2e.server import Server
from tests.e2e.test_story import no_serious

# A threshold of seconds instead of 15 minutes, for the lines of this test only.
THRESHOLD_S = 3


@pytest.fixture
def quick_alerts(server: Server) -> Iterator[None]:
    """Every line alerts after THRESHOLD_S seconds while the test runs."""
    db = server.data_dir / "cloudwindow.db"
    with sqlite3.connect(db) as conn:
        conn.execute(
            "INSERT INTO line_threshold (line_id, wait_alert_seconds) "
            "SELECT id, ? FROM window_line",
            (THRESHOLD_S,),
        )
    yield
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM line_threshold")


@pytest.mark.usefixtures("quick_alerts")
async def test_a_long_wait_alerts_the_head_who_takes_it_on(browser: Any, server: Server) -> None:
    head = await new_page(browser, server, DESKTOP)
    await login(head, "supervisor.t07", "/supervisor")
    await expect(head.locator("[data-test=alerts]")).to_be_visible()
    point = await new_page(browser, server, TABLET_LANDSCAPE)
    await login(point, "worker", "/point")
    number = await take_ticket(point, resident_id(81))

    # No reload: the alert arrives over the socket once the wait passes the threshold.
    alert = head.locator("[data-test=alert]", has_text=number)
    await expect(alert).to_be_visible()
    await expect(alert).to_have_attribute("data-state", "raised")
    await expect(alert).to_contain_text("高龄津贴")
    await no_serious(head, "supervisor-alert")
    await shoot(head, "supervisor-alert", [DESKTOP])

    await alert.locator("[data-test=alert-note]").fill("已加开潮汐窗口")
    await alert.locator("[data-test=alert-ack]").click()
    await expect(alert).to_have_attribute("data-state", "acknowledged")
    await expect(alert.locator("[data-test=alert-acknowledged]")).to_have_text(
        re.compile("已加开潮汐窗口")
    )
    # Closed by hand here (the clerk would otherwise call the resident and it closes itself).
    await alert.locator("[data-test=alert-resolve]").click()
    await expect(alert).to_have_count(0)
    await point.locator("button", has_text="取消排队").click()
    await point.locator(".el-message-box button", has_text="取消排队").click()
    await expect(point.locator("#item-q")).to_be_visible()


@pytest.fixture
def quick_line_alerts(server: Server) -> Iterator[None]:
    """Every line turns yellow at one person waiting while the test runs."""
    db = server.data_dir / "cloudwindow.db"
    with sqlite3.connect(db) as conn:
        conn.execute(
            "INSERT INTO line_threshold (line_id, waiting_yellow, waiting_red, taken_yellow, "
            "taken_red) SELECT id, 1, 1000, 1000, 2000 FROM window_line"
        )
    yield
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM line_threshold")


@pytest.mark.usefixtures("quick_line_alerts")
async def test_a_busy_line_turns_yellow_on_the_board_and_is_taken_on(
    browser: Any, server: Server
) -> None:
    head = await new_page(browser, server, DESKTOP)
    await login(head, "supervisor.t07", "/supervisor")
    await expect(head.locator("[data-test=alert-counts]")).to_be_visible()
    point = await new_page(browser, server, TABLET_LANDSCAPE)
    await login(point, "worker", "/point")
    await take_ticket(point, resident_id(83))

    # The level is said in words, not only in colour.
    alert = head.locator("[data-test=line-alert]", has_text="民政").first
    await expect(alert).to_be_visible()
    await expect(alert).to_have_attribute("data-level", "yellow")
    await expect(alert).to_contain_text("黄色预警")
    await expect(alert).to_contain_text("等候 1 人")
    await expect(head.locator("[data-test=count-yellow] .fig")).not_to_have_text("0")
    await no_serious(head, "supervisor-line-alert")
    await shoot(head, "supervisor-line-alert", [DESKTOP])

    await alert.locator("[data-test=alert-note]").fill("已调配窗口")
    await alert.locator("[data-test=alert-ack]").click()
    await expect(alert).to_have_attribute("data-state", "acknowledged")
    await expect(alert.locator("[data-test=alert-acknowledged]")).to_have_text(
        re.compile("已调配窗口")
    )
    # The resident leaves the queue: the line is back under yellow and the alert closes itself.
    await point.locator("button", has_text="取消排队").click()
    await point.locator(".el-message-box button", has_text="取消排队").click()
    await expect(point.locator("#item-q")).to_be_visible()
    await expect(head.locator("[data-test=line-alert]", has_text="民政")).to_have_count(0)
