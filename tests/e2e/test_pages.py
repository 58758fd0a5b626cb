"""Every page at tablet and desktop sizes: screenshots for people, axe-core for accessibility."""

from __future__ import annotations

from typing import Any

from tests.e2e.conftest import (
    DESKTOP,
    TABLET_LANDSCAPE,
    TABLET_PORTRAIT,
    in_english_large_text,
    login,
    new_page,
    resident_id,
    shoot,
)
from tests.e2e.server import Server

ALL = [TABLET_LANDSCAPE, TABLET_PORTRAIT, DESKTOP]
PHONE = {"width": 390, "height": 844}


async def test_login_in_both_languages_and_large_text(browser: Any, server: Server) -> None:
    page = await new_page(browser, server, TABLET_LANDSCAPE)
    await page.goto("/login")
    await page.wait_for_selector("#username")
    await shoot(page, "login", ALL)
    await page.click("button[type=submit]")
    assert "请输入用户名和密码" in await page.inner_text("[role=alert]")
    await page.fill("#username", "worker")
    await page.fill("#password", "wrong-password")
    await page.click("button[type=submit]")
    await page.wait_for_selector("[role=alert]:not(:has-text('请输入'))")

    await page.click("[data-test=lang]")
    await page.wait_for_selector("text=Log in")
    assert await page.get_attribute("html", "lang") == "en"
    await page.click("[data-test=large-text]")
    assert "large-text" in (await page.get_attribute("html", "class") or "")
    await shoot(page, "login-en-large", [TABLET_LANDSCAPE])
    # Both choices are kept on this device.
    await page.reload()
    await page.wait_for_selector("text=Log in")
    assert "large-text" in (await page.get_attribute("html", "class") or "")


async def test_point_before_the_call(browser: Any, server: Server) -> None:
    page = await new_page(browser, server, TABLET_LANDSCAPE)
    await login(page, "worker", "/point")
    await page.fill("#item-q", "高龄")
    await page.press("#item-q", "Enter")
    card = page.locator("[data-test=item-card]", has_text="高龄津贴")
    await card.wait_for()
    assert "户口簿" in await card.inner_text()  # each item lists its required materials
    await card.click()
    # The ID number is checked live: a wrong check character is explained.
    good = resident_id(70)
    bad = good[:-1] + ("0" if good[-1] != "0" else "1")
    await page.fill("#id-number", bad)
    error = page.locator("[data-test=id-error]")
    await error.wait_for()
    assert "校验" in await error.inner_text()
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
    await rows.first.wait_for()
    assert await rows.count() > 50
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
