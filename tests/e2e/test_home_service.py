"""Home service in a real Chromium: a hotline operator takes a phone request for an
82-year-old, the town's coordinator accepts it and sets the visit, and the resident follows it
on a phone page reached from the SMS link; axe on every page and dialog, in both languages and
at both text sizes."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from tests.e2e.conftest import (
    DESKTOP,
    TABLET_LANDSCAPE,
    expect,
    in_english_large_text,
    login,
    new_page,
    shoot,
)
from tests.e2e.server import Server
from tests.e2e.test_resident import (
    assert_elder_sizes,
    check_page,
    last_code,
    phone_page,
    register,
    sql,
)

LINK = re.compile(r"/resident/l/[A-Za-z0-9_-]+")


async def sms_links(server: Server, phone: str) -> list[str]:
    """The sign-in links the SMS to a phone carried, oldest first (from the outbox when it
    holds them, else from the recording gateway's log)."""
    for table in ("sms_outbox", "sms_message"):
        query = f"SELECT body FROM {table} WHERE phone = :p ORDER BY id"
        rows = await sql(server, query, p=phone)
        found = [m.group(0) for (body,) in rows if (m := LINK.search(body or ""))]
        if found:
            return found
    return []


async def pick_option(page: Any, select: str, text: str) -> None:
    """Choose an option of an Element Plus select by its words."""
    await page.click(f"[data-test={select}]")
    await page.locator(".el-select-dropdown__item:visible", has_text=text).first.click()


async def test_a_phone_request_for_an_82_year_old_is_accepted_and_followed_from_the_sms(
    browser: Any, server: Server
) -> None:
    mobile = "13911139082"
    _rid, number = await register(server, 82, mobile, "王阿公")

    # The hotline: the caller reads out the ID number; eligibility is shown at once.
    op = await new_page(browser, server, DESKTOP)
    await login(op, "operator", "/operator")
    await expect(op.locator("#op-find")).to_be_focused()
    await op.fill("#op-find", number)
    await op.press("#op-find", "Enter")
    await expect(op.locator("[data-test=op-caller]")).to_contain_text("王阿公")
    await expect(op.locator("[data-test=op-caller]")).to_contain_text("82")
    await pick_option(op, "home-item", "社会保障卡补换")
    await expect(op.locator("[data-test=home-eligible]")).to_contain_text("符合上门服务条件")
    await op.locator("[data-test^=home-slot-]").first.check()
    # No address on record: the operator takes it down from the call.
    await op.fill("#op-home-address", "高桥镇幸福路 12 号 3 单元 502 室")
    await op.fill("#op-home-notes", "老人腿脚不便，上门前请先打电话")
    await shoot(op, "operator-intake", [DESKTOP, TABLET_LANDSCAPE])
    await in_english_large_text(op, "operator-intake")
    await op.press("#op-home-notes", "Control+Enter")  # submitted from the keyboard
    created = op.locator("[data-test=op-created]")
    await expect(created).to_contain_text("已提交")
    req_id = await created.get_attribute("data-request")
    await expect(op.locator("[data-test=op-next]")).to_be_focused()
    await expect(op.locator("[data-test=op-recent]")).to_contain_text("王阿公")
    await shoot(op, "operator-created", [DESKTOP])

    # The town's coordinator opens it (its sensitive part is shown) and accepts it.
    co = await new_page(browser, server, DESKTOP)
    await login(co, "coordinator.t07", "/coordinator")
    await co.click(f"[data-test=co-open][data-request='{req_id}']")
    detail = co.locator(f"[data-test=co-detail][data-request='{req_id}']")
    await expect(detail).to_contain_text("社会保障卡补换")
    await expect(co.locator("[data-test=co-private]")).to_contain_text("上门前请先打电话")
    await expect(co.locator("[data-test=co-basis]")).to_contain_text("60")
    await shoot(co, "coordinator-request", [DESKTOP, TABLET_LANDSCAPE])
    await in_english_large_text(co, "coordinator-request")
    await co.click("[data-test=co-accept]")
    await expect(co.locator("[data-test=co-detail-status]")).to_have_text("已受理，待安排")
    await co.locator("[data-test=co-schedule]").wait_for()
    await shoot(co, "coordinator-accepted", [DESKTOP])

    # The resident's phone: the SMS of the acceptance carries a link to the request's page.
    links = await sms_links(server, mobile)
    assert len(links) == 2, links  # requested, accepted: one each
    phone = await phone_page(browser, server)
    await phone.goto(links[-1])
    await expect(phone.locator("[data-test=link-leads]")).to_contain_text("上门服务")
    await phone.click("[data-test=send-code]")
    await phone.locator("#res-link-code").wait_for()
    await phone.fill("#res-link-code", await last_code(server, mobile))
    await phone.click("[data-test=sign-in]")
    await phone.wait_for_url(f"**/resident/home/{req_id}")
    await expect(phone.locator("[data-test=hs-status]")).to_have_text("已受理，待安排")
    road = phone.locator("[data-test=hs-road]")
    await expect(road.locator("[data-step=accepted]")).to_have_attribute("data-done", "true")
    await expect(road.locator("[data-step=scheduled]")).to_have_attribute("data-done", "false")
    await assert_elder_sizes(phone)  # 82: elder mode by itself
    await check_page(phone, "home-status")

    # The coordinator sets the visit; the resident's page says who comes and when.
    tomorrow = dt.date.today() + dt.timedelta(days=1)
    await co.fill("#co-when", f"{tomorrow.isoformat()}T09:30")
    await pick_option(co, "co-staff", "高桥镇上门服务人员")
    await co.click("[data-test=co-schedule-go]")
    await expect(co.locator("[data-test=co-visit]")).to_contain_text("高桥镇上门服务人员")
    await phone.reload()
    await expect(phone.locator("[data-test=hs-status]")).to_have_text("已安排上门")
    await expect(phone.locator("[data-test=hs-now]")).to_contain_text("高桥镇上门服务人员")
    assert len(await sms_links(server, mobile)) == 3
    await check_page(phone, "home-scheduled")

    # Asking for another visit on the phone: the matters, then the details of one.
    await phone.goto("/resident/home/new")
    await phone.locator("[data-test=hv-item]").first.wait_for()
    await check_page(phone, "home-request")
    await phone.click("[data-test=hv-item][data-item=RS-004]")
    await phone.locator("[data-test=hv-form]").wait_for()
    await assert_elder_sizes(phone)
    await check_page(phone, "home-request-details")
    await phone.click("[data-test=back]")  # back one step, not off the page
    await phone.locator("[data-test=hv-item]").first.wait_for()
    await phone.goto("/resident/home")
    await expect(phone.locator(f"[data-test=hs-row][data-request='{req_id}']")).to_be_visible()
    await check_page(phone, "home-list")


async def test_a_31_year_old_is_told_where_else_to_go_and_the_tablet_dialog(
    browser: Any, server: Server
) -> None:
    await register(server, 31, "13911139031", "李先生")
    op = await new_page(browser, server, DESKTOP)
    await login(op, "operator", "/operator")
    await op.fill("#op-find", "139 1113 9031")  # the phone number, as read out
    await op.press("#op-find", "Enter")
    await expect(op.locator("[data-test=op-caller]")).to_contain_text("李先生")
    await pick_option(op, "home-item", "社会保障卡补换")
    no = op.locator("[data-test=home-ineligible]")
    await expect(no).to_contain_text("31")
    alternatives = op.locator("[data-test=home-alternative]")
    await expect(alternatives).to_have_count(3)
    await expect(alternatives.first).to_contain_text("公里")
    await expect(op.locator("[data-test=home-submit]")).to_be_disabled()
    await shoot(op, "operator-ineligible", [DESKTOP])
    await in_english_large_text(op, "operator-ineligible")
    # An item for pregnant women asks for the expected date.
    await pick_option(op, "home-item", "生育登记")
    await expect(op.locator("[data-test=home-ineligible]")).to_contain_text("怀孕")
    await expect(op.locator("[data-test=home-pregnant]")).to_be_visible()

    # The community worker's tablet: a request from the resident's card, in a dialog.
    _rid, number = await register(server, 75, "13911139075", "赵大爷")
    pt = await new_page(browser, server, TABLET_LANDSCAPE)
    await login(pt, "worker", "/point")
    await pt.fill("#id-number", number)
    await pt.wait_for_selector("[data-test=id-valid]")
    await pt.click("form:has(#id-number) button[type=submit]")
    dialog = pt.locator("[data-test=home-visit-dialog]")

    async def open_dialog(item: str) -> None:
        await pt.click("[data-test=home-visit-open]")
        await expect(dialog).to_contain_text("赵大爷")
        await pick_option(pt, "home-item", item)
        await expect(pt.locator("[data-test=home-eligible]")).to_be_visible()

    # The header's switches sit behind the dialog: the view is switched with it closed.
    await open_dialog("社会保障卡申领")
    await shoot(pt, "point-home-dialog", [TABLET_LANDSCAPE])
    await pt.click(".el-dialog__headerbtn")
    await expect(dialog).to_be_hidden()
    await pt.click("[data-test=lang]")
    await pt.click("[data-test=large-text]")
    await pt.wait_for_selector("html[lang=en].large-text")
    await open_dialog("Social security card application")
    await shoot(pt, "point-home-dialog-en-large", [TABLET_LANDSCAPE])
    await pt.click(".el-dialog__headerbtn")
    await pt.click("[data-test=lang]")
    await pt.click("[data-test=large-text]")
    await pt.wait_for_selector("html[lang=zh-CN]:not(.large-text)")
    await open_dialog("社会保障卡申领")
    await pt.fill("#pt-home-address", "高桥镇幸福路 3 号")
    await pt.click("[data-test=home-submit]")
    await expect(pt.locator(".el-message--success")).to_contain_text("上门服务申请")
