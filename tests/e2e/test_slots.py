"""Appointments in a real Chromium: on the tablet an item handled only at the hall offers a
booking instead of a number and the community worker books a slot; the resident's phone page
lists it and cancels it; the hotline books for a caller. axe on each new view, in both
languages and at both text sizes."""

from __future__ import annotations

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
from tests.e2e.test_home_service import pick_option
from tests.e2e.test_resident import check_page, last_code, phone_page, register, sql
from tests.e2e.test_story import find_resident, pick_item

SENT = "SELECT kind FROM sms_outbox WHERE phone = :p AND kind LIKE 'appointment%'"


async def test_book_on_the_tablet_then_see_and_cancel_on_the_phone(
    browser: Any, server: Server
) -> None:
    mobile = "13911139515"
    rid, number = await register(server, 46, mobile, "陈预约")

    # The tablet: 身份证换领 is handled only at the hall; no number, a booking instead.
    page = await new_page(browser, server, TABLET_LANDSCAPE)
    await login(page, "worker", "/point")
    await find_resident(page, number)
    await pick_item(page, "身份证换领", "身份证换领")
    await expect(page.locator("[data-test=on-site-only]")).to_be_visible()
    await expect(page.locator("[data-test=take-ticket]")).to_have_count(0)
    offer = page.locator("[data-test=slot-offer]")
    await expect(offer.locator("[data-test=slot-picker]")).to_be_visible()
    first = offer.locator("[data-test=slot-time]:enabled").first
    await first.wait_for()
    starts = await first.get_attribute("data-start")
    await first.click()
    await expect(offer.locator("[data-test=slot-book]")).to_be_enabled()
    await shoot(page, "slots-point-pick", [TABLET_LANDSCAPE])
    await in_english_large_text(page, "slots-point-pick")
    await offer.locator("[data-test=slot-time]:enabled").first.click()
    await offer.locator("[data-test=slot-book]").click()
    await expect(offer.locator("[data-test=slot-booked]")).to_contain_text("已预约")
    await shoot(page, "slots-point-booked", [TABLET_LANDSCAPE])
    rows = await sql(
        server,
        "SELECT status, starts_at FROM appointment WHERE resident_id = :r",
        r=rid,
    )
    assert [r[0] for r in rows] == ["booked"], rows
    sms = await sql(server, SENT, p=mobile)
    assert sms == [("appointment.booked",)]
    assert starts

    # The resident's phone: sign in, open 我的预约, see it, cancel it.
    phone = await phone_page(browser, server)
    await phone.goto("/resident/login")
    await phone.fill("#res-id", number)
    await phone.fill("#res-phone", mobile)
    await phone.click("[data-test=send-code]")
    await phone.locator("#res-code").wait_for()
    await phone.fill("#res-code", await last_code(server, mobile))
    await phone.click("[data-test=sign-in]")
    await phone.wait_for_url(re.compile(r"/resident$"))
    await phone.click("[data-test=menu][data-path='/resident/appointments']")
    card = phone.locator("[data-test=appt]")
    await expect(card).to_have_count(1)
    await expect(card).to_contain_text("身份证换领")
    await expect(card).to_contain_text("高桥镇")
    await check_page(phone, "slots-resident-list")
    phone.on("dialog", lambda d: d.accept())
    await card.locator("[data-test=appt-cancel]").click()
    await expect(phone.locator("[data-test=appt-none]")).to_be_visible()
    await expect(phone.locator("[data-test=appt-past][data-status=cancelled]")).to_have_count(1)
    # A new booking from the phone: the matter, then the hall's slots.
    await phone.click("[data-test=appt-new]")
    await phone.fill("#appt-q", "身份证")
    await phone.click("[data-test=slot-item-go]")
    await phone.click("[data-test=slot-item][data-code=HJ-003]")
    await phone.locator("[data-test=slot-time]:enabled").first.wait_for()
    await check_page(phone, "slots-resident-book", every=False)
    [(status,)] = await sql(server, "SELECT status FROM appointment WHERE resident_id = :r", r=rid)
    assert status == "cancelled"


async def test_the_hotline_books_for_a_caller(browser: Any, server: Server) -> None:
    mobile = "13911139517"
    _rid, number = await register(server, 71, mobile, "周来电")
    op = await new_page(browser, server, DESKTOP)
    await login(op, "operator", "/operator")
    await op.fill("#op-find", number)
    await op.press("#op-find", "Enter")
    await expect(op.locator("[data-test=op-caller]")).to_contain_text("周来电")
    box = op.locator("[data-test=op-slots]")
    await pick_option(op, "slot-town", "高桥镇")
    await op.fill("#op-slots-q", "身份证换领")
    await box.locator("[data-test=slot-item-go]").click()
    await box.locator("[data-test=slot-item][data-code=HJ-003]").click()
    await box.locator("[data-test=slot-time]:enabled").first.click()
    await shoot(op, "slots-operator", [DESKTOP])
    await in_english_large_text(op, "slots-operator")
    await box.locator("[data-test=slot-book]").click()
    await expect(box.locator("[data-test=slot-booked]")).to_be_visible()
    sms = await sql(server, SENT, p=mobile)
    assert sms == [("appointment.booked",)]
