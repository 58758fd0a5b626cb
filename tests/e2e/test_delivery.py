"""Courier delivery of a licence in a real Chromium on a phone-sized page: the resident has the
licence of a finished case brought home from their phone; the courier opens
/courier, sets out (the resident gets a code by SMS), enters the last 4 ID digits and the code,
draws a signature, takes the photo, loses the network and confirms; back online the proof
arrives exactly once, and the resident's page, reached from the SMS link, shows it delivered.
axe on both pages (and the proof form) in both languages and at both text sizes."""

from __future__ import annotations

import asyncio
import re
import secrets
from pathlib import Path
from typing import Any

from PIL import Image
from sqlmodel import select

from core.db import Database, utcnow
from core.models import Case, Resident, ServiceItem, Site, WindowLine
from core.pii import PiiCipher
from outreach import licences
from outreach.sms import build_gateway
from scheduler import deliveries
from tests.e2e.conftest import (
    DESKTOP,
    expect,
    in_english_large_text,
    login,
    new_page,
    shoot,
)
from tests.e2e.server import Server
from tests.e2e.test_home_service import sms_links
from tests.e2e.test_resident import (
    check_page,
    last_code,
    phone_page,
    register,
    settings_of,
    sms_link,
    sql,
)

PHONE = {"width": 390, "height": 844}
DOOR = {"latitude": 29.8641, "longitude": 121.4602, "accuracy": 12}
CODE = re.compile(r"签收验证码(\d{6})")


async def completed_case(server: Server, resident_id: int) -> int:
    """A case the clerk completed for the resident (licence HJ-004), collected at the hall
    unless the resident chooses otherwise."""
    settings = settings_of(server)
    db = Database(settings.effective_database_url)
    try:
        async with db.session() as s:
            item = (await s.exec(select(ServiceItem).where(ServiceItem.code == "HJ-004"))).one()
            who = await s.get(Resident, resident_id)
            assert who is not None
            who.address = "高桥镇幸福路18号2单元301室"  # told to the clerk during the case
            s.add(who)
            town = (await s.exec(select(Site).where(Site.code == "T07"))).one()
            line = (
                await s.exec(
                    select(WindowLine).where(
                        WindowLine.site_id == town.id, WindowLine.department == item.department
                    )
                )
            ).first()
            case = Case(
                number=f"E{secrets.token_hex(6)}",
                item_id=item.id or 0,
                resident_id=resident_id,
                site_id=who.community_id or 0,
                line_id=line.id if line else None,
                status="completed",
                closed_at=utcnow(),
            )
            s.add(case)
            await s.commit()
            return case.id or 0
    finally:
        await db.dispose()


async def order_deliveries(server: Server, case_id: int) -> int:
    """The licence register's and the delivery job's intake, as the periodic jobs run them;
    the case's delivery order."""
    settings = settings_of(server)
    db = Database(settings.effective_database_url)
    try:
        async with db.session() as s:
            await licences.issue_from_cases(s, settings=settings, now=utcnow())
            cipher = PiiCipher(await asyncio.to_thread(settings.load_secret_key))
            made = await deliveries.create_for_cases(
                s, settings=settings, cipher=cipher, sms=build_gateway(settings), now=utcnow()
            )
            assert made["created"] == 1, made
            await s.commit()
            row = (
                await s.exec(
                    select(deliveries.Delivery.id).where(deliveries.Delivery.case_id == case_id)
                )
            ).one()
            return row
    finally:
        await db.dispose()


async def resident_chooses_delivery(browser: Any, server: Server, rid: int, mobile: str) -> int:
    """The resident opens the finished case on their phone and has the licence brought home;
    the delivery job makes the order. The delivery's id."""
    case_id = await completed_case(server, rid)
    phone = await phone_page(browser, server)
    await phone.goto(await sms_link(server, rid, f"/resident/cases/{case_id}"))
    await phone.click("[data-test=send-code]")
    await phone.locator("#res-link-code").wait_for()
    await phone.fill("#res-link-code", await last_code(server, mobile))
    await phone.click("[data-test=sign-in]")
    await phone.wait_for_url(f"**/resident/cases/{case_id}")
    choice = phone.locator("[data-test=delivery-choice]")
    await expect(choice).to_have_attribute("data-deliver", "hall")
    await choice.locator("[data-test=delivery-choice-home]").click()
    await expect(choice).to_have_attribute("data-deliver", "home")
    await expect(choice.locator("[data-test=delivery-choice-saved]")).to_have_text("已选择送证上门")
    await check_page(phone, "case-delivery-choice", every=False)
    chosen = "SELECT licence_delivery FROM service_case WHERE id = :c"
    assert (await sql(server, chosen, c=case_id))[0][0] in (True, 1)
    delivery = await order_deliveries(server, case_id)
    # Once the order is made the page says so, with the way to follow it; no more choosing.
    await phone.reload()
    await expect(choice.locator("[data-test=delivery-choice-ordered]")).to_be_visible()
    await expect(choice.locator("[data-test=delivery-choice-home]")).to_have_count(0)
    await expect(choice.locator("[data-test=delivery-choice-follow]")).to_have_attribute(
        "href", f"/resident/deliveries/{delivery}"
    )
    await phone.context.close()
    return delivery


async def sent_code(server: Server, phone: str) -> str:
    """The delivery code the resident's phone received (the recording gateway's log)."""
    for _ in range(100):
        query = "SELECT body FROM sms_message WHERE phone = :p ORDER BY id"
        rows = await sql(server, query, p=phone)
        found = [m.group(1) for (body,) in rows if (m := CODE.search(body or ""))]
        if found:
            return found[-1]
        await asyncio.sleep(0.2)
    raise AssertionError("no delivery code was sent")


def handover_photo(tmp: Path) -> Path:
    path = tmp / "handover.jpg"
    Image.new("RGB", (1600, 1200), (90, 140, 200)).save(path, "JPEG", quality=85)
    return path


async def sign(page: Any) -> None:
    """A signature drawn with the mouse on the pad."""
    pad = page.locator("[data-test=proof-signature]")
    await pad.scroll_into_view_if_needed()
    box = await pad.bounding_box()
    assert box
    x, y = box["x"], box["y"] + box["height"] / 2
    await page.mouse.move(x + 20, y)
    await page.mouse.down()
    for i in range(1, 16):
        await page.mouse.move(x + 20 + i * 18, y + (20 if i % 2 else -20), steps=3)
    await page.mouse.up()


async def test_a_courier_delivers_a_licence_with_proof_through_a_lost_network(
    browser: Any, server: Server, tmp_path: Path
) -> None:
    mobile = "13911139301"
    rid, number = await register(server, 78, mobile, "赵阿姨")
    delivery = await resident_chooses_delivery(browser, server, rid, mobile)

    page = await new_page(browser, server, PHONE, geolocation=DOOR)
    await page.context.grant_permissions(["geolocation"], origin=server.base)
    await login(page, "courier", "/courier")
    stop = page.locator(f"[data-test=courier-stop][data-delivery='{delivery}']")
    await expect(stop).to_have_attribute("data-status", "pending")
    await expect(stop.locator("[data-test=courier-address]")).to_contain_text("幸福路")
    await expect(stop.locator("[data-test=courier-call]")).to_have_attribute(
        "href", f"tel:{mobile}"
    )
    await shoot(page, "courier")
    await in_english_large_text(page, "courier")

    # Out of the hall: the resident gets the code.
    await stop.locator("[data-test=courier-dispatch]").click()
    await expect(stop).to_have_attribute("data-status", "dispatched")
    code = await sent_code(server, mobile)

    # At the door: the last 4 digits, the code, the signature and the photo.
    await stop.locator("[data-test=courier-sign]").click()
    form = stop.locator("[data-test=proof-form]")
    await form.locator("[data-test=proof-last4]").fill(number[-4:])
    await form.locator("[data-test=proof-code]").fill(code)
    await form.locator("[data-test=proof-photo]").set_input_files(str(handover_photo(tmp_path)))
    await expect(form.locator("[data-test=proof-photo-preview]")).to_be_visible()
    await shoot(page, "courier-proof")
    await in_english_large_text(page, "courier-proof")
    await sign(page)

    # The network is gone when the courier confirms: the proof waits on the phone.
    await page.context.set_offline(True)
    await form.locator("[data-test=proof-submit]").click()
    await expect(stop).to_have_attribute("data-status", "queued")
    await expect(page.locator("[data-test=courier-queued]")).to_be_visible()
    count = "SELECT count(*) FROM delivery_proof WHERE delivery_id = :d"
    assert (await sql(server, count, d=delivery))[0][0] == 0

    # Back online: it is sent once, and the stop shows delivered.
    await page.context.set_offline(False)
    await expect(stop).to_have_attribute("data-status", "delivered")
    await expect(page.locator("[data-test=courier-queued]")).to_have_count(0)
    assert (await sql(server, count, d=delivery))[0][0] == 1
    assert await page.evaluate("localStorage.getItem('cw.delivery.proofs')") == "[]"
    await page.reload()
    await expect(stop).to_have_attribute("data-status", "delivered")
    assert (await sql(server, count, d=delivery))[0][0] == 1

    # The town's supervisor opens the proof from the case record's tab (audited).
    head = await new_page(browser, server, DESKTOP)
    await login(head, "supervisor.t07", "/supervisor")
    await head.get_by_role("tab", name="证照速递").click()
    row = head.locator(f"[data-test=dd-rows] tr[data-delivery='{delivery}']")
    await expect(row).to_have_attribute("data-status", "delivered")
    shown = head.locator("[data-test=dd-proof-view] img").first
    await row.locator("[data-test=dd-proof]").click()
    await expect(shown).to_be_visible()
    await shoot(head, "delivery-proof")
    await head.keyboard.press("Escape")  # the dialog is modal: switch the view, then reopen
    await expect(shown).to_have_count(0)
    await head.click("[data-test=lang]")
    await head.click("[data-test=large-text]")
    await head.wait_for_selector("html[lang=en].large-text")
    await row.locator("[data-test=dd-proof]").click()
    await expect(shown).to_be_visible()
    await shoot(head, "delivery-proof-en-large")
    views = "SELECT count(*) FROM audit_log WHERE action = 'delivery.proof.view'"
    assert (await sql(server, views))[0][0] >= 1

    # The resident follows it from the SMS link: delivered, by themself.
    links = await sms_links(server, mobile)
    assert links, "the delivery SMS carries a link"
    phone = await phone_page(browser, server)
    await phone.goto(links[-1])
    await phone.click("[data-test=send-code]")
    await phone.locator("#res-link-code").wait_for()
    await phone.fill("#res-link-code", await last_code(server, mobile))
    await phone.click("[data-test=sign-in]")
    await phone.wait_for_url(f"**/resident/deliveries/{delivery}")
    await expect(phone.locator("[data-test=ds-delivery]")).to_have_attribute(
        "data-status", "delivered"
    )
    await expect(phone.locator("[data-test=ds-status]")).to_have_text("已签收")
    await check_page(phone, "delivery")
