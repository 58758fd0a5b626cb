"""Licence-expiry reminders in Chromium: a resident opens the reminder's SMS link on a phone,
sees the licence and how to renew it, and stops reminders of its kind and of every kind; a
coordinator imports licences (a refused file listed row by row, then a good one) and opens one
licence's reminders. axe at normal and large text, in Chinese and English."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any
from zoneinfo import ZoneInfo

from core.db import Database
from outreach import reminders
from outreach.sms import RecordingSmsGateway
from tests.e2e.conftest import (
    DESKTOP,
    expect,
    in_english_large_text,
    login,
    new_page,
    resident_id,
    shoot,
)
from tests.e2e.server import Server
from tests.e2e.test_resident import (
    assert_elder_sizes,
    check_page,
    last_code,
    phone_page,
    register,
    settings_of,
    sql,
)

TZ = ZoneInfo("Asia/Shanghai")
HEADER = "证照编号,证照类型,持证人,身份证号,手机号,发证日期,到期日期"


def day(n: int) -> str:
    return (dt.datetime.now(TZ).date() + dt.timedelta(days=n)).isoformat()


async def run_reminders(server: Server) -> None:
    """The day's reminder run, as the job runner does it at 09:00 (outside quiet hours)."""
    settings = settings_of(server)
    db = Database(settings.effective_database_url)
    now = dt.datetime.combine(dt.datetime.now(TZ).date(), dt.time(9), TZ).astimezone(dt.UTC)
    try:
        await reminders.daily_run(db, settings=settings, sms=RecordingSmsGateway(), now=now)
    finally:
        await db.dispose()


async def import_csv(page: Any, name: str, body: str) -> None:
    """Choose a CSV file in the page's file input, and import it."""
    files = {"name": name, "mimeType": "text/csv", "buffer": body.encode()}
    await page.locator("[data-test=lp-file]").set_input_files(files)
    await page.click("[data-test=lp-import-go]")


async def test_a_resident_opens_the_reminder_link_and_stops_reminders(
    browser: Any, server: Server
) -> None:
    phone_no = "13911139401"
    rid, number = await register(server, 72, phone_no, "周阿公")
    desk = await new_page(browser, server, DESKTOP)
    await login(desk, "coordinator", "/coordinator")
    await desk.click("[data-test=nav-licences]")
    await desk.wait_for_url("**/licences")
    await desk.get_by_role("tab", name="导入证照").click()
    await desk.click("[data-test=lp-site]")
    await desk.get_by_role("option", name="高桥镇", exact=True).click()
    body = "\n".join(
        (
            HEADER,
            f"SP-E2E-1,食品经营许可证,周阿公,{number},{phone_no},2021-06-01,{day(30)}",
            f"JZ-E2E-1,居住证,周阿公,{number},{phone_no},,{day(200)}",
        )
    )
    await import_csv(desk, "mine.csv", body + "\n")
    await expect(desk.locator("[data-test=lp-imported]")).to_contain_text("已导入 2 张证照")

    await run_reminders(server)
    [(params,)] = await sql(
        server,
        "SELECT params FROM sms_outbox WHERE kind = 'reminder.expiry' AND phone = :p",
        p=phone_no,
    )
    params = params if isinstance(params, dict) else json.loads(params)
    assert params["when"] == "还有30天到期" and params["licence"] == "食品经营许可证"
    [(licence_id,)] = await sql(server, "SELECT id FROM licence WHERE number = 'SP-E2E-1'")

    # The SMS link: the code goes to the registered phone, then the reminder's page opens.
    page = await phone_page(browser, server)
    await page.goto(params["link"])
    await page.click("[data-test=send-code]")
    await page.locator("#res-link-code").wait_for()
    await page.fill("#res-link-code", await last_code(server, phone_no))
    await page.click("[data-test=sign-in]")
    await page.wait_for_url(f"**/resident/reminders?licence={licence_id}")
    card = page.locator(f"[data-test=rem-licence][data-licence='{licence_id}']")
    await expect(card).to_contain_text("食品经营许可证")
    await expect(card).to_contain_text("还有 30 天到期")
    await expect(card.locator("[data-test=rem-next]")).to_contain_text("下次提醒")
    await expect(card.locator("[data-test=rem-sent]")).to_contain_text("已发送")
    # The licence of the message comes first, with the ways to renew it open.
    await expect(page.locator("[data-test=rem-licence]").first).to_have_attribute(
        "data-licence", str(licence_id)
    )
    await expect(card.locator("[data-test=rem-renew-ways]")).to_contain_text("食品经营许可")
    await expect(card.locator("[data-test=rem-renew-remote]")).to_be_visible()
    await assert_elder_sizes(page)
    await check_page(page, "reminders")
    # "Renew through the cloud window" opens taking a number for the item that issues it.
    await card.locator("[data-test=rem-renew-remote]").click()
    await page.wait_for_url("**/resident/take?item=*")
    await expect(page.locator("[data-test=take-page]")).to_have_attribute("data-step", "confirm")
    await expect(page.locator("[data-test=choice]")).to_contain_text("食品经营许可")
    await page.go_back()
    await expect(card.locator("[data-test=rem-renew-ways]")).to_be_visible()

    # Stop reminders of this kind: said at once, and kept by the server.
    await card.locator("[data-test=rem-stop]").click()
    await expect(page.locator("[data-test=rem-done]")).to_contain_text("不再提醒您")
    await expect(card.locator("[data-test=rem-stopped]")).to_be_visible()
    permit = page.locator("[data-test=rem-licence]").nth(1)
    await expect(permit).to_have_attribute("data-stopped", "false")
    await expect(permit.locator("[data-test=rem-next]")).to_be_visible()
    assert await sql(
        server, "SELECT source FROM reminder_opt_out WHERE resident_id = :r", r=rid
    ) == [("page",)]
    # Then every kind, and back on again.
    await page.click("[data-test=rem-stop-all]")
    await expect(page.locator("[data-test=rem-all-stopped]")).to_be_visible()
    await expect(permit).to_have_attribute("data-stopped", "true")
    await assert_elder_sizes(page)
    await check_page(page, "reminders-stopped")
    await page.click("[data-test=rem-stop-all]")
    await expect(page.locator("[data-test=rem-all-stopped]")).to_have_count(0)
    await expect(permit).to_have_attribute("data-stopped", "false")
    # The home menu leads here too, and back goes home.
    await page.click("[data-test=back]")
    await page.wait_for_url("**/resident")
    await page.click("[data-test=menu][data-path='/resident/reminders']")
    await page.locator("[data-test=reminders-page]").wait_for()


async def test_a_coordinator_imports_licences_and_opens_one(browser: Any, server: Server) -> None:
    page = await new_page(browser, server, DESKTOP)
    await login(page, "coordinator", "/coordinator")
    await page.goto("/licences")
    await page.locator("[data-test=lp-total]").wait_for()
    await shoot(page, "licences-register", [DESKTOP])
    await in_english_large_text(page, "licences-register")

    await page.get_by_role("tab", name="导入证照").click()
    await page.click("[data-test=lp-site]")
    await page.get_by_role("option", name="高桥镇", exact=True).click()
    good, other = resident_id(50), resident_id(51)
    bad = good[:-1] + ("1" if good[-1] == "0" else "0")
    await import_csv(
        page,
        "bad.csv",
        "\n".join(
            (
                HEADER,
                f"YP-E2E-1,药品经营许可证,孙一,{good},13900139411,2022-01-01,{day(90)}",
                f"YP-E2E-2,药品经营许可证,孙二,{bad},13900139412,2022-01-01,{day(90)}",
                f"YP-E2E-3,药品经营许可证,孙三,{other},13900139413,2022-01-01,2030-02-30",
            )
        )
        + "\n",
    )
    await expect(page.locator("[data-test=lp-import-error]")).to_contain_text("没有导入任何证照")
    problems = page.locator("[data-test=lp-problem]")
    await expect(problems).to_have_count(2)
    await expect(problems.nth(0)).to_have_attribute("data-row", "3")
    await expect(problems.nth(0)).to_contain_text("校验位")
    await expect(problems.nth(1)).to_contain_text("2030-02-30")
    assert await sql(server, "SELECT count(*) FROM licence WHERE number LIKE 'YP-E2E-%'") == [(0,)]
    await shoot(page, "licences-import-problems", [DESKTOP])
    await in_english_large_text(page, "licences-import-problems")

    await import_csv(
        page,
        "good.csv",
        f"{HEADER}\nYP-E2E-1,药品经营许可证,孙一,{good},13900139411,2022-01-01,{day(90)}\n",
    )
    await expect(page.locator("[data-test=lp-imported]")).to_contain_text("已导入 1 张证照")
    await run_reminders(server)

    await page.get_by_role("tab", name="证照登记册").click()
    await page.fill("[data-test=lp-q]", "YP-E2E-1")
    await page.click("[data-test=lp-search]")
    row = page.locator("[data-test=lp-row]")
    await expect(row).to_have_count(1)
    await expect(row).to_contain_text("孙一")
    await expect(row).to_contain_text("139****9411")
    await row.locator("[data-test=lp-open]").click()
    reminder = page.locator("[data-test=lp-reminder]")
    await expect(reminder).to_have_count(1)
    await expect(reminder).to_contain_text("T−90")
    await expect(reminder.locator("[data-test=lp-delivery]")).to_contain_text("已发出")
    await shoot(page, "licences-detail", [DESKTOP])
    await page.keyboard.press("Escape")

    await page.get_by_role("tab", name="证照类型与提醒规则").click()
    await expect(page.locator("[data-test=lp-type-row][data-type=SPJY]")).to_contain_text(
        "T−90、T−30、T−7、T+1"
    )
    await shoot(page, "licences-types", [DESKTOP])
    await page.get_by_role("tab", name="提醒统计").click()
    await expect(page.locator("[data-test=lp-count-queued]")).not_to_have_text("")
    await shoot(page, "licences-counts", [DESKTOP])
