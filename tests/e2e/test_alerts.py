"""The department head's side of alerts: a long wait or a busy line appears on the supervisor
page by itself, they take it on with a note, and it closes when its cause is gone; a bad
rating's follow-up is called back and rectified, and its overdue alert is on the same list;
the thresholds of the area are edited in both languages."""

from __future__ import annotations

import datetime as dt
import re
import sqlite3
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest

from tests.conftest import User
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
from tests.factories import site_by_code

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


async def _bad_rating(server: Server) -> str:
    """A finished case of 高桥镇·民政 rated 2 with a complaint, by the worker through the API
    (the call that finishes a case is other tests' business); its number."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        worker = User(http, server.base)
        assert (await worker.login("worker")).status == 200
        resp = await worker.post(
            "/api/v1/residents",
            json={"name": "赵桂兰", "id_number": resident_id(82), "phone": "13800138077"},
        )
        assert resp.status == 201, await resp.text()
        resident = (await resp.json())["id"]
        point = await site_by_code(worker, "T07-C01")
        item = (await (await worker.get("/api/v1/items", params={"q": "高龄津贴"})).json())[0]
        resp = await worker.post(
            "/api/v1/cases",
            json={"item_code": item["code"], "site_id": point["id"], "resident_id": resident},
        )
        assert resp.status == 201, await resp.text()
        case = await resp.json()
        with sqlite3.connect(server.data_dir / "cloudwindow.db") as conn:
            conn.execute("UPDATE service_case SET status = 'completed' WHERE id = ?", (case["id"],))
        resp = await worker.post(
            f"/api/v1/cases/{case['id']}/rating",
            json={"score": 2, "comment": "等了很久也没人解释", "complaint": True},
        )
        assert resp.status == 201, await resp.text()
        return str(case["number"])


def _overdue(server: Server, case_number: str) -> None:
    """The follow-up's deadline passes (instead of waiting five working days)."""
    past = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)).strftime("%Y-%m-%d %H:%M:%S.%f")
    with sqlite3.connect(server.data_dir / "cloudwindow.db") as conn:
        conn.execute(
            "UPDATE rating_followup SET due_at = ? WHERE case_id = "
            "(SELECT id FROM service_case WHERE number = ?)",
            (past, case_number),
        )


async def test_a_bad_rating_is_called_back_and_rectified_and_its_overdue_alert_taken_on(
    browser: Any, server: Server
) -> None:
    head = await new_page(browser, server, DESKTOP)
    await login(head, "supervisor.t07", "/supervisor")
    await head.click("#tab-alerts2")
    await expect(head.locator("[data-test=followups]")).to_be_visible()

    # The rating arrives: its follow-up shows up in the open tab by itself.
    number = await _bad_rating(server)
    row = head.locator("[data-test=followup-row]", has_text=number)
    await expect(row).to_be_visible()
    await expect(row).to_contain_text("投诉")
    await expect(row).to_contain_text("不满意")
    await expect(row.locator("[data-test=followup-state]")).to_have_text("待回访")
    await shoot(head, "supervisor-followups", [DESKTOP])

    # The case link opens the case.
    await row.locator("[data-test=followup-case]").click()
    await expect(head.locator("[data-test=case-dialog]")).to_contain_text(number)
    await head.keyboard.press("Escape")
    await expect(head.locator("[data-test=case-dialog]")).to_be_hidden()

    # Its deadline passes: the board lists the overdue follow-up with the other alerts.
    _overdue(server, number)
    await expect(row.locator("[data-test=followup-overdue]")).to_be_visible()
    await head.click("#tab-board")
    alert = head.locator("[data-test=followup-alert]", has_text=number)
    await expect(alert).to_be_visible()
    await expect(alert).to_contain_text("回访超时")
    await alert.locator("[data-test=alert-note]").fill("今天下午回访")
    await alert.locator("[data-test=alert-ack]").click()
    await expect(alert).to_have_attribute("data-state", "acknowledged")
    await expect(head.locator("[data-test=count-followups-opened] .fig")).not_to_have_text("0")

    # The record form: closing needs the call-back and the rectification.
    await head.click("#tab-alerts2")
    await row.locator("[data-test=followup-record]").click()
    dialog = head.locator("[data-test=followup-dialog]")
    await expect(dialog).to_contain_text("等了很久也没人解释")
    await dialog.locator("[data-test=followup-phone]").click()
    await expect(dialog).to_contain_text("13800138077")
    await expect(dialog.locator("[data-test=followup-close]")).to_be_disabled()
    await dialog.locator("[data-test=followup-reached]").click()
    await dialog.locator("[data-test=followup-save]").click()  # reached, but said nothing
    await expect(dialog.locator("[data-test=followup-error]")).to_contain_text("居民的意见")
    await dialog.locator("[data-test=followup-note]").fill("希望叫号时说明等候原因")
    await dialog.locator("[data-test=followup-save]").click()
    await expect(row.locator("[data-test=followup-state]")).to_have_text("已回访，待整改")
    await shoot(head, "supervisor-followup-dialog", [DESKTOP])
    await dialog.locator("[data-test=followup-rectification]").fill(
        "已在等候区增设叫号说明，并对窗口人员进行服务规范培训"
    )
    await dialog.locator("[data-test=followup-close]").click()
    await expect(dialog).to_be_hidden()
    await expect(row).to_have_count(0)  # no longer open

    # Closed: the overdue alert closed itself; the full list says it was closed late.
    await head.click("[data-test=followups-all]")
    await expect(row.locator("[data-test=followup-state]")).to_have_text("已办结（超时）")
    await head.click("#tab-board")
    await expect(head.locator("[data-test=followup-alert]", has_text=number)).to_have_count(0)

    # English, large text: the tab and the dialog.
    await head.click("#tab-alerts2")
    await head.click("[data-test=lang]")
    await head.click("[data-test=large-text]")
    await head.wait_for_selector("html[lang=en].large-text")
    await expect(row.locator("[data-test=followup-state]")).to_have_text("Closed (late)")
    await shoot(head, "supervisor-followups-en-large", [DESKTOP])
    await row.locator("[data-test=followup-record]").click()
    await expect(dialog).to_contain_text("Follow-up of case")
    await shoot(head, "supervisor-followup-dialog-en-large", [DESKTOP])
    await head.keyboard.press("Escape")
    await expect(dialog).to_be_hidden()
    await head.click("[data-test=lang]")
    await head.click("[data-test=large-text]")
    await head.wait_for_selector("html[lang=zh-CN]:not(.large-text)")


@pytest.fixture
def own_thresholds(server: Server) -> Iterator[None]:
    """Whatever the test sets is gone afterwards (other tests set their own)."""
    yield
    with sqlite3.connect(server.data_dir / "cloudwindow.db") as conn:
        conn.execute("DELETE FROM line_threshold")
        conn.execute("DELETE FROM department_threshold")


@pytest.mark.usefixtures("own_thresholds")
async def test_a_head_sets_a_lines_thresholds_in_both_languages(
    browser: Any, server: Server
) -> None:
    head = await new_page(browser, server, DESKTOP)
    await login(head, "supervisor.t07", "/supervisor")
    await head.click("#tab-alerts2")
    await head.click("#tab-thresholds")
    row = head.locator("[data-test=line-threshold][data-line='高桥镇·民政']")
    await expect(row).to_contain_text("15 分钟")
    await expect(row).to_contain_text("默认")
    await shoot(head, "supervisor-thresholds", [DESKTOP])

    await row.locator("[data-test=edit-line-threshold]").click()
    dialog = head.locator("[data-test=threshold-dialog]")
    await expect(dialog).to_be_visible()
    await shoot(head, "supervisor-threshold-dialog", [DESKTOP])
    await dialog.locator("[data-test=threshold-waiting_red]").fill("5")  # under yellow 10
    await dialog.locator("[data-test=threshold-save]").click()
    await expect(dialog.locator("[data-test=threshold-error]")).to_contain_text("不能低于黄色阈值")
    await dialog.locator("[data-test=threshold-wait_alert_seconds]").fill("10")
    await dialog.locator("[data-test=threshold-waiting_yellow]").fill("4")
    await dialog.locator("[data-test=threshold-save]").click()
    await expect(dialog).to_be_hidden()
    await expect(row).to_contain_text("10 分钟")
    await expect(row).to_contain_text("4 / 5")
    await expect(row).to_contain_text("本窗口")

    # A department row for the whole town, in English with large text.
    await head.click("[data-test=lang]")
    await head.click("[data-test=large-text]")
    await head.wait_for_selector("html[lang=en].large-text")
    await shoot(head, "supervisor-thresholds-en-large", [DESKTOP])
    await head.click("[data-test=add-department-threshold]")
    await expect(dialog).to_contain_text("Site")
    await shoot(head, "supervisor-threshold-dialog-en-large", [DESKTOP])
    await dialog.locator("[data-test=threshold-dept]").click()
    await head.locator(".el-select-dropdown__item", has_text="户籍").click()
    await dialog.locator("[data-test=threshold-taken_yellow]").fill("30")
    await dialog.locator("[data-test=threshold-save]").click()
    await expect(dialog).to_be_hidden()
    await expect(head.locator("[data-test=department-threshold]")).to_have_count(1)
    other = head.locator("[data-test=line-threshold]", has_text="高桥镇·户籍")
    await expect(other).to_contain_text("30 / 80")
    await head.click("[data-test=lang]")
    await head.click("[data-test=large-text]")
    await head.wait_for_selector("html[lang=zh-CN]:not(.large-text)")
