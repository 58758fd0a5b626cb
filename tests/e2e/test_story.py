"""The cloud window as its users need it: errors by their fields, eligibility before the number,
bundles with one merged checklist, a document request that reaches the tablet, the clerk's call
on one screen, a three-way call with every tile in view, and stale figures while offline."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from tests.e2e.conftest import (
    DESKTOP,
    SHOTS,
    TABLET_LANDSCAPE,
    TABLET_PORTRAIT,
    axe_check,
    expect,
    login,
    new_page,
    resident_id,
    shoot,
)
from tests.e2e.flow import (
    confirm_eligibility,
    return_case,
    skip_rating,
    take_ticket,
    ticket_number,
    wait_decoding,
)
from tests.e2e.server import Server

PHONE = {"width": 390, "height": 844}
TABLET = [TABLET_LANDSCAPE, TABLET_PORTRAIT]

# Pairs of video tiles of the call stage that overlap (by their boxes on screen).
OVERLAPS_JS = """() => {
  const tiles = [...document.querySelectorAll('.stage-videos .video-tile')]
    .map(e => e.getBoundingClientRect());
  const out = [];
  for (let i = 0; i < tiles.length; i++) for (let j = i + 1; j < tiles.length; j++) {
    const a = tiles[i], b = tiles[j];
    const apart = a.right - 1 <= b.left || b.right - 1 <= a.left
      || a.bottom - 1 <= b.top || b.bottom - 1 <= a.top;
    if (!apart) out.push([i, j]);
  }
  return { n: tiles.length, out };
}"""


# Both remote <video> elements have a picture.
SHOWING_JS = """() => {
  const vs = [...document.querySelectorAll('[data-test=remote-video] video')];
  return vs.length === 2 && vs.every(v => v.readyState >= 2 && v.videoWidth > 0);
}"""


async def find_resident(page: Any, number: str) -> None:
    await page.fill("#id-number", number)
    await page.wait_for_selector("[data-test=id-valid]")
    await page.click("form:has(#id-number) button[type=submit]")


async def pick_item(page: Any, query: str, name: str) -> None:
    await page.fill("#item-q", query)
    await page.press("#item-q", "Enter")
    await page.locator("[data-test=item-card]", has_text=name).click()


async def no_serious(page: Any, name: str) -> None:
    bad = await axe_check(page, name)
    assert not bad, json.dumps(bad, ensure_ascii=False, indent=1)


async def test_registration_errors_by_field_and_eligibility(browser: Any, server: Server) -> None:
    page = await new_page(browser, server, TABLET_LANDSCAPE)
    await login(page, "worker", "/point")
    await pick_item(page, "高龄", "高龄津贴")
    await find_resident(page, resident_id(31))
    await page.wait_for_selector("#reg-name")

    # An empty name: said under the name field, in words that say what to do; no toast.
    await page.click("[data-test=register]")
    name_error = page.locator("[data-test=field-error][data-field=name]")
    await expect(name_error).to_have_text(re.compile("请填写姓名"))
    await expect(page.locator("#reg-name")).to_have_attribute("aria-invalid", "true")
    await expect(page.locator("#reg-name")).to_be_focused()
    await expect(page.locator(".el-message")).to_have_count(0)

    # A phone number the server refuses: under the phone field, with the format it wants.
    await page.fill("#reg-name", "李建国")
    await expect(name_error).to_have_count(0)
    await page.fill("#reg-phone", "1234567")
    await page.click("[data-test=register]")
    phone_error = page.locator("[data-test=field-error][data-field=phone]")
    await expect(phone_error).to_have_text(re.compile("11 位手机号"))
    await expect(page.locator("#reg-phone")).to_have_attribute("aria-invalid", "true")
    await expect(page.locator(".el-message")).to_have_count(0)
    await shoot(page, "point-field-errors", [TABLET_LANDSCAPE, TABLET_PORTRAIT, PHONE])
    await page.click("[data-test=lang]")
    await expect(page.locator("#reg-phone-hint, [data-field=phone]")).to_have_count(1)
    await no_serious(page, "point-field-errors-en")
    await page.click("[data-test=lang]")

    await page.fill("#reg-phone", "13800138000")
    await page.click("[data-test=register]")
    await page.wait_for_selector("[data-test=resident]")
    await page.click("[data-test=consent]")

    # 31 years old, asking for the allowance for people over 80: explained before the number;
    # the number needs an explicit "take anyway".
    warn = page.locator("[data-test=eligibility][data-state=warn]")
    await expect(warn).to_be_visible()
    await expect(warn.locator("[data-test=eligibility-problem]").first).to_have_text(
        re.compile("80")
    )
    await expect(page.locator("[data-test=take-ticket]")).to_be_disabled()
    await shoot(page, "point-eligibility", [TABLET_LANDSCAPE, TABLET_PORTRAIT, PHONE])
    await page.click("[data-test=large-text]")
    await shoot(page, "point-eligibility-large", [TABLET_LANDSCAPE, PHONE])
    # The large-text header on a phone keeps each part on one line.
    await page.set_viewport_size(PHONE)
    header = await page.locator(".app-header").bounding_box()
    brand = await page.locator(".brand-name").bounding_box()
    assert header and brand and header["height"] < 160 and brand["width"] > brand["height"], (
        header,
        brand,
    )
    await page.set_viewport_size(TABLET_LANDSCAPE)
    await page.click("[data-test=lang]")
    await expect(warn.locator("[data-test=eligibility-problem]").first).to_have_text(
        re.compile("80 or over")
    )
    await no_serious(page, "point-eligibility-en-large")
    await page.click("[data-test=lang]")
    await page.click("[data-test=large-text]")
    await page.click("[data-test=take-anyway]")
    await expect(page.locator("[data-test=take-ticket]")).to_be_enabled()

    # An item handled only at the hall never offers a number.
    await pick_item(page, "身份证换领", "身份证换领")
    await expect(page.locator("[data-test=on-site-only]")).to_be_visible()
    await expect(page.locator("[data-test=take-ticket]")).to_have_count(0)
    # The halls that handle it, best first, each with its distance and its wait.
    hall = page.locator("[data-test=hall]").first
    await expect(hall.locator("[data-test=hall-distance]")).to_have_text(
        re.compile(r"\d+\.\d 公里")
    )
    await expect(hall.locator("[data-test=hall-wait]")).to_be_visible()
    await shoot(page, "point-on-site-only", [TABLET_LANDSCAPE])
    await no_serious(page, "point-on-site-only")

    # Taken anyway: the case carries the note, for the window to see.
    await pick_item(page, "高龄", "高龄津贴")
    await page.click("[data-test=take-anyway]")
    await page.click("[data-test=take-ticket]")
    number = await ticket_number(page)
    cases = await (await page.request.get("/api/v1/cases?limit=5")).json()
    mine = next(c for c in cases if c["item_code"] == "MZ-004" and c["status"] == "open")
    assert "80" in mine["note"], mine

    # The clerk sees the mismatch beside the call and accepts it only with a reason, which
    # goes on the case's timeline as an event of its own.
    clerk = await new_page(browser, server, DESKTOP)
    await login(clerk, "clerk", "/clerk")
    await clerk.locator("[data-test=queue-row]", has_text=number).wait_for()
    await clerk.click("[data-test=call-next]:not([disabled])")
    await page.click("[data-test=answer]")
    elig = clerk.locator("[data-test=rp-eligibility]")
    await expect(elig).to_have_attribute("data-state", "warn")
    await expect(elig.locator("[data-test=rp-eligibility-problem]")).to_have_text(
        re.compile("80.*31")
    )
    await clerk.click("[data-test=rp-eligibility-accept]")
    await expect(clerk.locator("#rp-elig-error")).to_have_text(re.compile("请填写仍予受理的理由"))
    await expect(clerk.locator("#rp-elig-reason")).to_have_attribute("aria-invalid", "true")
    await no_serious(clerk, "clerk-eligibility")
    reason = "民政科已批准特殊困难救助"
    await clerk.fill("#rp-elig-reason", reason)
    await clerk.click("[data-test=rp-eligibility-accept]")
    await expect(elig).to_have_attribute("data-state", "accepted")
    await expect(elig.locator("[data-test=rp-eligibility-accepted]")).to_have_text(
        re.compile(reason)
    )
    await shoot(clerk, "clerk-eligibility-accepted", [DESKTOP])
    await return_case(clerk)
    await skip_rating(page)
    accepted = page.locator(".tl-kind[data-kind='eligibility.accepted']")
    await expect(accepted).to_have_text("条件不符，窗口仍予受理")
    await expect(accepted.locator("xpath=..").locator(".tl-detail")).to_have_text(
        re.compile(f"未达年龄.*{reason}")
    )
    await page.click("[data-test=lang]")
    await expect(accepted).to_have_text("Accepted by the window despite unmet rules")
    await no_serious(page, "point-timeline-eligibility-en")
    await page.click("[data-test=lang]")


def big_photo(tmp: Path) -> Path:
    """A 12-megapixel JPEG (4000×3000) standing in for a tablet's photo of a document."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (4000, 3000), (236, 232, 220))
    draw = ImageDraw.Draw(img)
    draw.rectangle((200, 200, 3800, 2800), outline="navy", width=20)
    for y in range(400, 2700, 120):
        draw.text((300, y), "残疾人证 CERTIFICATE 330299194001011234 " * 3, fill="black")
    path = tmp / "photo-12mp.jpg"
    img.save(path, "JPEG", quality=95)
    return path


async def test_bundle_case_request_note_and_clerk_screen(
    browser: Any, server: Server, tmp_path: Path
) -> None:
    point = await new_page(browser, server, TABLET_PORTRAIT)
    clerk = await new_page(browser, server, DESKTOP)
    await login(point, "worker", "/point")
    await login(clerk, "clerk", "/clerk")

    # The worker picks the disability services bundle; its town item routes it to the window.
    await point.locator("[data-test=bundle-card][data-bundle=YS-004]").click()
    await expect(point.locator("[data-test=summary-bundle]")).to_have_text(re.compile("残疾人"))
    await find_resident(point, resident_id(52))
    await point.fill("#reg-name", "陈立新")
    await point.fill("#reg-phone", "13900139000")
    await point.locator(".register .el-checkbox", has_text="残疾人").click()
    await point.click("[data-test=register]")
    await point.wait_for_selector("[data-test=resident]")
    await point.click("[data-test=consent]")
    assert await confirm_eligibility(point) == "ok"
    await shoot(point, "point-bundle", [TABLET_PORTRAIT, TABLET_LANDSCAPE])
    await point.click("[data-test=take-ticket]")
    number = await ticket_number(point)

    await clerk.locator("[data-test=queue-row]", has_text=number).wait_for()
    await clerk.click("[data-test=call-next]")
    await point.click("[data-test=answer]")
    await wait_decoding(point)
    await wait_decoding(clerk)

    # One checklist for the bundle: each document once, with the items it serves.
    items = point.locator("[data-test=checklist-item]")
    await items.first.wait_for()
    names = await point.locator("[data-test=checklist-item] .item-title strong").all_inner_texts()
    assert len(names) == len(set(names)), names
    id_card = point.locator("[data-test=checklist-item]", has_text="申请人身份证").first
    await expect(id_card.locator("[data-test=serves]")).to_have_text(
        re.compile("残疾人证申领.*困难残疾人生活补贴")
    )
    await expect(clerk.locator("[data-test=bundle-note]")).to_be_visible()

    # The clerk's call fits one 1440×900 screen: video, checklist, finishing and the resident.
    panel = clerk.locator("[data-test=resident-panel]")
    await expect(panel.locator("[data-test=rp-age]")).to_have_text(re.compile("52"))
    await expect(panel.locator("[data-test=rp-phone]")).to_have_text(re.compile(r"139\*+9000"))
    await expect(panel.locator("[data-test=rp-community]")).not_to_have_text("—")
    for sel in (
        "[data-test=remote-video]",
        "[data-test=checklist]",
        "[data-test=finish]",
        "[data-test=open-invite]",
        "[data-test=open-transfer]",
        "[data-test=clerk-hang-up]",
        "[data-test=resident-panel]",
    ):
        await expect(clerk.locator(sel).first).to_be_in_viewport()
    assert await clerk.evaluate("() => document.scrollingElement.scrollHeight") <= 900

    # The clerk asks for the disability certificate with a note; the tablet is alerted (sound,
    # the item scrolled into view) and the alert stays until the document is uploaded.
    note = "请到社区开具残疾证明，或拍摄残疾人证正反面"
    c_cert = clerk.locator("[data-test=checklist-item]").filter(
        has=clerk.locator("strong", has_text=re.compile("^残疾人证$"))
    )
    await c_cert.locator("[data-test=request]").click()
    await clerk.fill("#request-note", note)
    await clerk.locator(".el-dialog__footer button", has_text="发送请求").click()
    alert = point.locator("[data-test=request-alert]")
    await expect(alert).to_be_visible()
    await expect(alert.locator("[data-test=request-alert-note]")).to_have_text(re.compile(note))
    await point.wait_for_function("() => (window.__cwBeeps || 0) > 0")
    p_cert = point.locator("[data-test=checklist-item]").filter(
        has=point.locator("strong", has_text=re.compile("^残疾人证$"))
    )
    await expect(p_cert).to_be_in_viewport()
    await expect(p_cert.locator("[data-test=request-note]")).to_have_text(re.compile(note))
    await shoot(point, "point-request-alert", TABLET)
    await shoot(clerk, "clerk-bundle-call", [DESKTOP])

    # A 12-megapixel photo goes up prepared on the tablet: JPEG, its long side the server's
    # photo_max_side (this server: 1920), which the checklist tells the tablet.
    await p_cert.locator("input[type=file]").set_input_files(big_photo(tmp_path))
    await expect(p_cert.locator("[data-test=item-state][data-state=uploaded]")).to_be_visible()
    await expect(alert).to_have_count(0)
    case_id = await clerk.evaluate("() => window.__cw.session.state.caseId")
    checklist = await (await clerk.request.get(f"/api/v1/cases/{case_id}/checklist")).json()
    cert = next(i for i in checklist["items"] if i["name"] == "残疾人证")
    m = cert["materials"][-1]
    assert checklist["photo"]["max_side"] == 1920
    assert max(m["width"], m["height"]) == 1920 and m["content_type"] == "image/jpeg", m
    assert m["size"] < 2_000_000, m

    # Hanging up asks first; the case stays on screen to be returned.
    await clerk.click("[data-test=clerk-hang-up]")
    box = clerk.locator(".el-message-box")
    await expect(box).to_be_visible()
    for b in await box.locator("button").all():
        bb = await b.bounding_box()
        assert bb and min(round(bb["height"]), round(bb["width"])) >= 48, bb  # sub-pixel layout
    await no_serious(clerk, "clerk-hang-up-confirm")
    await box.locator("button", has_text="挂断视频").click()
    await expect(clerk.locator("[data-test=hung-up]")).to_be_visible()
    await return_case(clerk)


async def test_three_way_call_every_tile_in_view(browser: Any, server: Server) -> None:
    point = await new_page(browser, server, TABLET_LANDSCAPE)
    clerk = await new_page(browser, server, DESKTOP)
    expert = await new_page(browser, server, DESKTOP)
    await login(point, "worker", "/point")
    await login(clerk, "clerk", "/clerk")
    await login(expert, "expert", "/expert")
    await expect(expert.locator("text=暂无邀请")).to_be_visible()
    number = await take_ticket(point, resident_id(83))
    await clerk.locator("[data-test=queue-row]", has_text=number).wait_for()
    await clerk.click("[data-test=call-next]")
    await point.click("[data-test=answer]")
    await wait_decoding(point)
    await wait_decoding(clerk)

    await clerk.click("[data-test=open-invite]")
    await clerk.click("[data-test=skill]")
    await clerk.locator(".el-select-dropdown__item", has_text="社会救助政策").click()
    await clerk.fill("[data-test=invite-question]", "户籍迁入未满一年，能否申领？")
    await no_serious(clerk, "clerk-invite-dialog")
    await clerk.click("[data-test=invite]")
    await expect(clerk.locator("[data-test=invite-waiting]")).to_be_visible()
    # The invite carries the clerk's question and the case number to the expert.
    await expect(expert.locator("[data-test=invite-question-shown]")).to_have_text(
        re.compile("户籍迁入未满一年")
    )
    await expert.click("[data-test=accept-invite]")

    # All three decode both others' video, and show it.
    for page in (point, clerk, expert):
        await wait_decoding(page, 2)
        await page.wait_for_function(SHOWING_JS)

    # The expert sees the case: an h1 with the item, the case number and the resident.
    await expect(expert.locator("h1")).to_have_text(re.compile("高龄津贴"))
    await expect(expert.locator("[data-test=expert-case-number]")).to_have_text(
        re.compile(r"\d{8,}")
    )
    await expect(expert.locator("[data-test=rp-age]")).to_have_text(re.compile("83"))
    await expect(expert.locator("[data-test=expert-question]")).to_have_text(
        re.compile("户籍迁入未满一年")
    )
    await shoot(expert, "expert-in-call", [DESKTOP, TABLET_LANDSCAPE])

    # No tile covers another, landscape and portrait; every tile is on screen.
    for size in (TABLET_LANDSCAPE, TABLET_PORTRAIT):
        await point.set_viewport_size(size)
        await point.wait_for_function(
            "() => document.querySelectorAll('.stage-videos.tiled .video-tile').length === 3"
        )
        res = await point.evaluate(OVERLAPS_JS)
        assert res == {"n": 3, "out": []}, (size, res)
        for tile in await point.locator(".stage-videos .video-tile").all():
            await expect(tile).to_be_in_viewport()
    await point.set_viewport_size(TABLET_LANDSCAPE)
    await shoot(point, "point-three-way", TABLET)
    assert (await clerk.evaluate(OVERLAPS_JS))["out"] == []
    await shoot(clerk, "clerk-three-way", [DESKTOP])

    await expert.click("[data-test=expert-leave]")
    await expert.locator(".el-message-box button", has_text="结束通话").click()
    await expect(expert.locator("#invites-title")).to_be_visible()
    await return_case(clerk)


async def test_offline_figures_are_marked_stale(browser: Any, server: Server) -> None:
    point = await new_page(browser, server, TABLET_PORTRAIT)
    await login(point, "worker", "/point")
    await take_ticket(point, resident_id(81))
    await expect(point.locator("[data-test=position]")).to_have_text(re.compile(r"^\d+$"))
    eta = point.locator("[data-test=eta]")
    await expect(eta).to_have_text(re.compile(r"^(—|\d+ 分钟)$"))
    # A wait in minutes, or an unknown one that says why: one locator, so a push that turns
    # one into the other between two reads cannot fail the test.
    await expect(
        point.locator(
            "[data-test=eta]:text-matches('^\\d+ 分钟$'), [data-test=eta-why]:has-text('无法估算')"
        ).first
    ).to_be_visible()

    await point.context.set_offline(True)
    stale = point.locator("[data-test=stale]")
    await expect(stale).to_have_text(re.compile(r"上次更新 \d{2}:\d{2}"))
    await expect(point.locator("[data-test=wait-figures]")).to_have_attribute("data-stale", "true")
    await shoot(point, "point-offline", [TABLET_PORTRAIT, TABLET_LANDSCAPE, PHONE])
    await point.click("[data-test=lang]")
    await expect(stale).to_have_text(re.compile(r"Last updated \d{2}:\d{2}"))
    await no_serious(point, "point-offline-en")
    await point.click("[data-test=lang]")
    await point.context.set_offline(False)
    await expect(stale).to_have_count(0)
    await expect(point.locator("[data-test=wait-figures]")).to_have_attribute("data-stale", "false")

    # The cancel dialog: 48 px buttons, accessible.
    await point.locator("button", has_text="取消排队").click()
    box = point.locator(".el-message-box")
    await expect(box).to_be_visible()
    for b in await box.locator("button").all():
        bb = await b.bounding_box()
        assert bb and min(round(bb["height"]), round(bb["width"])) >= 48, bb  # sub-pixel layout
    await point.screenshot(path=str(SHOTS / "point-cancel-dialog-800x1280.png"))
    await no_serious(point, "point-cancel-dialog")
    await box.locator("button", has_text="取消排队").click()
    await expect(point.locator("#item-q")).to_be_visible()


async def test_the_clerk_reuses_a_document_on_file(browser: Any, server: Server) -> None:
    """An ID card accepted in an earlier case: one click in the resident panel puts a copy on
    this case's checklist, after the resident's consent."""
    import aiohttp

    from tests.conftest import User
    from tests.signaling.helpers import Sock, gaoqiao_setup, take_payload
    from tests.uploads.helpers import jpeg, open_case, upload

    jar = aiohttp.CookieJar
    async with (
        aiohttp.ClientSession(cookie_jar=jar(unsafe=True)) as h1,
        aiohttp.ClientSession(cookie_jar=jar(unsafe=True)) as h2,
    ):
        worker, clerk_api = User(h1, server.base), User(h2, server.base)
        assert (await worker.login("worker")).status == 200
        assert (await clerk_api.login("clerk")).status == 200
        first = await open_case(worker, seq=880)
        card = await upload(
            worker, first["case"]["id"], first["specs"]["申请人身份证"], jpeg(), "image/jpeg"
        )
        r = await clerk_api.post(
            f"/api/v1/materials/{card['id']}/review", json={"decision": "accept"}
        )
        assert r.status == 200, await r.text()
        setup = await gaoqiao_setup(worker)
        sock = await Sock(worker).connect()
        try:
            clerk = await new_page(browser, server, DESKTOP)
            await login(clerk, "clerk", "/clerk")
            ticket = await sock.ok("ticket:take", take_payload(setup, first["resident_id"]))
            await clerk.locator("[data-test=queue-row]", has_text=ticket["number"]).wait_for()
            await clerk.click("[data-test=call-next]:not([disabled])")
            item = clerk.locator("[data-test=rp-reuse-item]", has_text="申请人身份证")
            await item.locator("[data-test=rp-reuse]").click()
            await clerk.locator(".el-message-box__btns button", has_text="居民同意").click()
            await expect(item.locator("[data-test=rp-reused]")).to_be_visible()
            line = clerk.locator("[data-test=checklist-item]").filter(
                has=clerk.locator("strong", has_text=re.compile("^申请人身份证$"))
            )
            await expect(line.locator("[data-test=item-state]")).not_to_have_attribute(
                "data-state", "missing"
            )
            case = await (await clerk_api.get(f"/api/v1/cases/{ticket['case_id']}")).json()
            assert "material.reuse" in [e["kind"] for e in case["timeline"]]
            await no_serious(clerk, "clerk-reused")
            await sock.ok("ticket:answer", {"ticket_id": ticket["id"]})
            await return_case(clerk)
        finally:
            await sock.close()
