"""Every page at tablet and desktop sizes: screenshots for people, axe-core for accessibility."""

from __future__ import annotations

import re
from typing import Any

from tests.e2e.conftest import (
    DESKTOP,
    TABLET_LANDSCAPE,
    TABLET_PORTRAIT,
    expect,
    in_english_large_text,
    login,
    new_page,
    resident_id,
    shoot,
)
from tests.e2e.server import Server

ALL = [TABLET_LANDSCAPE, TABLET_PORTRAIT, DESKTOP]
LARGE_TEXT = re.compile(r"(^|\s)large-text(\s|$)")
PHONE = {"width": 390, "height": 844}


async def test_login_in_both_languages_and_large_text(browser: Any, server: Server) -> None:
    page = await new_page(browser, server, TABLET_LANDSCAPE)
    await page.goto("/login")
    await page.wait_for_selector("#username")
    await shoot(page, "login", ALL)
    await page.click("button[type=submit]")
    await expect(page.locator("[role=alert]")).to_contain_text("请输入用户名和密码")
    await page.fill("#username", "worker")
    await page.fill("#password", "wrong-password")
    await page.click("button[type=submit]")
    await page.wait_for_selector("[role=alert]:not(:has-text('请输入'))")

    await page.click("[data-test=lang]")
    await page.wait_for_selector("text=Log in")
    html = page.locator("html")
    await expect(html).to_have_attribute("lang", "en")
    await page.click("[data-test=large-text]")
    await expect(html).to_have_class(LARGE_TEXT)
    await shoot(page, "login-en-large", [TABLET_LANDSCAPE])
    # Both choices are kept on this device.
    await page.reload()
    await page.wait_for_selector("text=Log in")
    await expect(html).to_have_attribute("lang", "en")
    await expect(html).to_have_class(LARGE_TEXT)


async def test_point_before_the_call(browser: Any, server: Server) -> None:
    page = await new_page(browser, server, TABLET_LANDSCAPE)
    await login(page, "worker", "/point")
    await page.fill("#item-q", "高龄")
    await page.press("#item-q", "Enter")
    card = page.locator("[data-test=item-card]", has_text="高龄津贴")
    await expect(card).to_contain_text("户口簿")  # each item lists its required materials
    await card.click()
    # The ID number is checked live: a wrong check character is explained.
    good = resident_id(70)
    bad = good[:-1] + ("0" if good[-1] != "0" else "1")
    await page.fill("#id-number", bad)
    await expect(page.locator("[data-test=id-error]")).to_contain_text("校验")
    await page.fill("#id-number", good)
    await page.wait_for_selector("[data-test=id-valid]")
    await page.click("form:has(#id-number) button[type=submit]")
    await page.wait_for_selector("#reg-name")
    await shoot(page, "point-prepare", [*ALL, PHONE])
    await page.click("[data-test=large-text]")
    await shoot(page, "point-prepare-large", [TABLET_LANDSCAPE, PHONE])
    await page.click("[data-test=large-text]")


async def test_clerk_idle_expert_supervisor_admin(browser: Any, server: Server) -> None:
    clerk = await new_page(browser, server, DESKTOP)
    await login(clerk, "clerk", "/clerk")
    await clerk.wait_for_selector("[data-test=line-card]")
    await clerk.wait_for_selector("[data-test=shortcuts]")
    await shoot(clerk, "clerk-idle", [DESKTOP, TABLET_LANDSCAPE])
    await in_english_large_text(clerk, "clerk-idle")

    expert = await new_page(browser, server, DESKTOP)
    await login(expert, "expert", "/expert")
    await expert.wait_for_selector("text=暂无邀请")
    await shoot(expert, "expert", [DESKTOP, TABLET_LANDSCAPE])
    await in_english_large_text(expert, "expert")

    sup = await new_page(browser, server, DESKTOP)
    await login(sup, "supervisor", "/supervisor")
    rows = sup.locator("[data-test=board-row]")
    await expect(rows.nth(50)).to_be_attached()  # more than 50 lines in the district
    await sup.wait_for_selector("[data-test=board-row] td.num:text-matches('^[0-9]+$')")
    await shoot(sup, "supervisor", [DESKTOP, TABLET_LANDSCAPE])
    await in_english_large_text(sup, "supervisor")

    admin = await new_page(browser, server, DESKTOP)
    await login(admin, "admin", "/")
    await admin.wait_for_selector(".el-table__row")
    await shoot(admin, "admin", [DESKTOP])

    # A role cannot open another role's page.
    await clerk.goto("/supervisor")
    await clerk.wait_for_url("**/clerk")
