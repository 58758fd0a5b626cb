"""The resident's own phone (390x844): from an SMS link to a number, a video call with a clerk,
a document the clerk asks for, the timeline in plain words and the rating; elder mode and axe.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import text

from core.db import Database
from core.resident_links import issue_link
from core.settings import Settings
from tests.conftest import DEMO_PASSWORD
from tests.e2e.conftest import (
    DESKTOP,
    SHOTS,
    axe_check,
    expect,
    login,
    new_page,
    resident_id,
)
from tests.e2e.flow import wait_decoding
from tests.e2e.server import Server
from tests.e2e.test_cloud_window import document_photo

PHONE = {"width": 390, "height": 844}
PHONE_KW = {"is_mobile": True, "has_touch": True}
LARGE = re.compile(r"(^|\s)large-text(\s|$)")

# Every visible tap target of the resident's page, measured: [tag, text, width, height].
TARGETS_JS = """() => [...document.querySelectorAll(
    '.res-shell button, .res-shell a[href], .res-shell input:not([type=file]), .res-shell textarea,'
    + ' .res-shell label.res-btn')]
  .filter(el => { const r = el.getBoundingClientRect(); return r.width > 0 && r.height > 0
    && getComputedStyle(el).visibility !== 'hidden'; })
  .map(el => { const r = el.getBoundingClientRect();
    const label = (el.innerText || el.value || '').trim().slice(0, 30);
    return [el.tagName, label, r.width, r.height]; })"""
# The computed size of the body text (paragraphs, list items, labels, buttons) of the page.
FONT_JS = """() => [...document.querySelectorAll(
    '.res-page p, .res-page li, .res-page label, .res-page button')]
  .filter(el => el.getBoundingClientRect().height > 0 && el.innerText.trim())
  .map(el => parseFloat(getComputedStyle(el).fontSize))"""


def settings_of(server: Server) -> Settings:
    return Settings.from_env(server.env)


async def sql(server: Server, query: str, **params: Any) -> list[tuple[Any, ...]]:
    db = Database(settings_of(server).effective_database_url)
    try:
        async with db.engine.begin() as conn:
            return [tuple(r) for r in await conn.execute(text(query), params)]
    finally:
        await db.dispose()


async def last_code(server: Server, phone: str) -> str:
    rows = await sql(server, "SELECT body FROM sms_message WHERE phone = :p ORDER BY id", p=phone)
    return re.search(r"\d{6}", rows[-1][0]).group(0)  # type: ignore[union-attr]


async def register(server: Server, age: int, phone: str, name: str) -> tuple[int, str]:
    """The community worker registers the resident at the point (their community)."""
    number = resident_id(age)
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        resp = await http.post(
            f"{server.base}/api/v1/auth/login",
            json={"username": "worker", "password": DEMO_PASSWORD},
        )
        me = await resp.json()
        resp = await http.post(
            f"{server.base}/api/v1/residents",
            json={
                "name": name,
                "id_number": number,
                "phone": phone,
                "community_id": me["site_ids"][0],
            },
            headers={"X-CSRF-Token": me["csrf_token"]},
        )
        assert resp.status == 201, await resp.text()
        return (await resp.json())["id"], number


async def sms_link(server: Server, resident: int, path: str) -> str:
    """What the SMS of another part of the system carries: a link made by issue_link."""
    settings = settings_of(server)
    db = Database(settings.effective_database_url)
    try:
        async with db.session() as session:
            url = await issue_link(session, resident_id=resident, path=path, settings=settings)
            await session.commit()
    finally:
        await db.dispose()
    return url


async def phone_page(browser: Any, server: Server) -> Any:
    return await new_page(browser, server, PHONE, **PHONE_KW)


async def set_view(page: Any, lang: str, large: bool) -> None:
    """Language and text size by the page's own switches."""
    html = page.locator("html")
    if (await html.get_attribute("lang")) != lang:
        await page.click("[data-test=lang]")
        await expect(html).to_have_attribute("lang", lang)
    if bool(LARGE.search(await html.get_attribute("class") or "")) != large:
        await page.click("[data-test=large-text]")
    if large:
        await expect(html).to_have_class(LARGE)
    else:
        await expect(html).not_to_have_class(LARGE)


async def check_page(page: Any, name: str, *, every: bool = True) -> None:
    """axe finds nothing serious at normal and large text, in Chinese and English; screenshots.

    `every`: all four views; else (another state of a page checked in all four) the view on
    screen and its opposite (the other language at the other size). Ends as it began (the
    resident's own choice of language and size).
    """
    html = page.locator("html")
    lang0 = await html.get_attribute("lang") or "zh-CN"
    large0 = bool(LARGE.search(await html.get_attribute("class") or ""))
    other = "en" if lang0 != "en" else "zh-CN"
    views = (
        [(lang, large) for lang in ("zh-CN", "en") for large in (False, True)]
        if every
        else [(lang0, large0), (other, not large0)]
    )
    SHOTS.mkdir(parents=True, exist_ok=True)
    for lang, large in views:
        await set_view(page, lang, large)
        tag = f"resident-{name}-{'en' if lang == 'en' else 'zh'}{'-large' if large else ''}"
        await page.screenshot(path=str(SHOTS / f"{tag}-390x844.png"), full_page=True)
        bad = await axe_check(page, tag)
        assert not bad, (tag, bad)
    await set_view(page, lang0, large0)


async def assert_elder_sizes(page: Any) -> None:
    """Elder mode: body text at least 24 px (18 pt), every tap target at least 60x60 px."""
    sizes = await page.evaluate(FONT_JS)
    assert sizes and min(sizes) >= 24, sizes
    small = [t for t in await page.evaluate(TARGETS_JS) if round(t[2]) < 60 or round(t[3]) < 60]
    assert not small, small


async def assert_targets(page: Any) -> None:
    small = [t for t in await page.evaluate(TARGETS_JS) if round(t[2]) < 60 or round(t[3]) < 60]
    assert not small, small


async def test_resident_signs_in_from_an_sms_link_is_served_by_video_and_rates(
    browser: Any, server: Server, tmp_path: Path
) -> None:
    rid, _number = await register(server, 70, "13911139001", "陈阿婆")
    link = await sms_link(server, rid, "/resident/take")
    phone = await phone_page(browser, server)
    clerk = await new_page(browser, server, DESKTOP)
    await login(clerk, "clerk", "/clerk")

    # The link names the page it opens and where the code goes; nothing is sent until asked.
    await phone.goto(link)
    await expect(phone.locator("[data-test=link-leads]")).to_contain_text("取号")
    await expect(phone.locator("[data-test=link-page]")).to_contain_text("139****9001")
    await check_page(phone, "link")
    await phone.click("[data-test=send-code]")
    await phone.locator("#res-link-code").wait_for()
    await check_page(phone, "link-code", every=False)
    await phone.fill("#res-link-code", await last_code(server, "13911139001"))
    await phone.click("[data-test=sign-in]")
    await phone.wait_for_url("**/resident/take")

    # 70 years old: elder mode is on by itself, with large text and large targets.
    await expect(phone.locator("html")).to_have_class(LARGE)
    await phone.locator("[data-test=suggestion]").first.wait_for()
    await assert_elder_sizes(phone)
    await check_page(phone, "take")

    # Find the matter by one tap on a common word; the rules say 80+, so the page warns.
    await phone.click("[data-test=suggestion]:has-text('高龄')")
    await phone.click("[data-test=item-card]:has-text('高龄津贴')")
    await expect(phone.locator("[data-test=documents]")).to_contain_text("户口簿")
    warn = phone.locator("[data-test=eligibility][data-state=warn]")
    await expect(warn).to_contain_text("80")
    await expect(phone.locator("[data-test=take-ticket]")).to_be_disabled()
    # Every step goes back: back to the list, and forward again.
    await phone.click("[data-test=back]")
    await phone.locator("[data-test=item-card]").first.wait_for()
    await phone.click("[data-test=item-card]:has-text('高龄津贴')")
    await warn.wait_for()
    await phone.click("[data-test=take-anyway]")
    await phone.click("[data-test=consent]")
    await assert_elder_sizes(phone)
    await check_page(phone, "take-confirm")
    await phone.click("[data-test=take-ticket]")

    await phone.wait_for_url(re.compile(r"/resident/ticket/\d+$"))
    number = (await phone.locator("[data-test=ticket-number]").inner_text()).strip()
    assert re.fullmatch(r"[A-Z]\d{3,}", number), number
    await expect(phone.locator("[data-test=ahead]")).to_have_text(re.compile(r"^\d+$"))
    await expect(phone.locator("[data-test=eta]")).not_to_be_empty()
    await assert_elder_sizes(phone)
    await check_page(phone, "waiting")

    # The clerk sees the number and calls it; the phone rings and the resident answers.
    await expect(clerk.locator("[data-test=queue-row]", has_text=number)).to_be_visible()
    await clerk.click("[data-test=call-next]")
    await clerk.wait_for_selector(f"[data-test=serving-number]:has-text('{number}')")
    await phone.locator("[data-test=ringing]").wait_for()
    await assert_elder_sizes(phone)
    await check_page(phone, "ringing", every=False)
    await phone.click("[data-test=answer]")
    await phone.locator("[data-test=in-call]").wait_for()
    await wait_decoding(phone)
    await wait_decoding(clerk)

    # The clerk asks for the household register, with a note; the phone shows it at the top.
    c_reg = clerk.locator("[data-test=checklist-item]", has_text="户口簿")
    await c_reg.locator("[data-test=request]").click()
    await clerk.fill("#request-note", "请拍户主页和本人页")
    await clerk.locator(".el-dialog button", has_text="发送请求").click()
    asked = phone.locator("[data-test=doc-asked]")
    await expect(asked).to_contain_text("户口簿")
    await expect(asked).to_contain_text("请拍户主页和本人页")
    await assert_targets(phone)
    await check_page(phone, "in-call-asked", every=False)

    # The resident photographs it, and the other required ones; the clerk accepts each.
    for name in ("户口簿", "申请人身份证", "社区（村）证明"):
        doc = phone.locator("[data-test=doc]", has_text=name)
        await doc.locator("input[type=file]").set_input_files(document_photo(tmp_path, name))
        await expect(doc).to_have_attribute("data-state", "uploaded")
        c_doc = clerk.locator("[data-test=checklist-item]", has_text=name)
        await c_doc.locator("[data-test=accept]").click()
        await c_doc.locator("[data-test=item-state][data-state=accepted]").wait_for()
        await expect(doc).to_have_attribute("data-state", "accepted")
    await expect(asked).to_have_count(0)

    await clerk.click("[data-test=outcome-completed]")
    await clerk.fill("#finish-note", "已在视频中核对")
    await clerk.click("[data-test=finish]")
    await clerk.wait_for_selector("[data-test=call-next]:not([disabled])")
    await expect(phone.locator("[data-test=outcome]")).to_contain_text("办好了")
    await phone.evaluate("() => document.querySelector('[data-test=to-rating]')?.click()")
    await phone.locator("[data-test=resident-rating]").wait_for()
    await assert_elder_sizes(phone)
    await check_page(phone, "rating", every=False)
    await phone.click("[data-test=rating-submit]")
    await expect(phone.locator("[data-test=rating-error]")).to_be_visible()
    await phone.click("[data-test=rating-level][data-score='5']")
    await phone.fill("#res-rating-comment", "在家就办好了，谢谢")
    await phone.click("[data-test=rating-submit]")

    # The case in plain words: its status, the rating and what happened.
    await phone.wait_for_url(re.compile(r"/resident/cases/\d+$"))
    await expect(phone.locator("[data-test=case-status]")).to_have_text("已办好")
    await expect(phone.locator("[data-test=case-rating]")).to_contain_text("非常满意")
    for kind, words in (
        ("ticket.taken", number),
        ("call.answered", "视频接通了"),
        ("material.requested", "请拍户主页和本人页"),
        ("material.upload", "户口簿"),
        ("material.accepted", "材料通过了"),
        ("status.completed", "办好了"),
        ("rating", "非常满意"),
    ):
        step = phone.locator(f"[data-test=tl-step][data-kind='{kind}']", has_text=words)
        await expect(step.first).to_be_visible()
    # No codes or internals in the resident's words.
    timeline = await phone.locator("[data-test=resident-timeline]").inner_text()
    assert "recording" not in timeline and "T07" not in timeline
    await assert_elder_sizes(phone)
    await check_page(phone, "case")

    # The list of cases, and home, both from the back button.
    await phone.click("[data-test=back]")
    await phone.wait_for_url("**/resident/cases")
    await expect(phone.locator("[data-test=case-row]").first).to_contain_text("已办好")
    await check_page(phone, "cases")
    await phone.click("[data-test=back]")
    await phone.wait_for_url(re.compile(r"/resident$"))
    await expect(phone.locator("h1")).to_contain_text("陈阿婆")
    await assert_elder_sizes(phone)
    await check_page(phone, "home")

    # The link worked once: opened again, it says so and changes nothing.
    other = await phone_page(browser, server)
    await other.goto(link)
    await expect(other.locator("[data-test=link-refused]")).to_contain_text("用过")
    await check_page(other, "link-used", every=False)
    await other.click("[data-test=to-login]")
    await other.wait_for_url("**/resident/login")


async def test_resident_signs_in_by_id_and_phone_and_takes_a_bundle(
    browser: Any, server: Server
) -> None:
    _rid, number = await register(server, 45, "13911139002", "李建国")
    page = await phone_page(browser, server)
    # From the front page: a clear way in for residents.
    await page.goto("/")
    await page.click("[data-test=resident-entry]")
    await page.wait_for_url("**/resident/login")
    await page.locator("#res-id").wait_for()
    # 45: normal text (18 px), the same 60 px targets.
    await expect(page.locator("html")).not_to_have_class(LARGE)
    await assert_targets(page)
    await check_page(page, "login")

    # Errors by their fields, in words that say what to do.
    await page.fill("#res-id", number[:10])
    await page.fill("#res-phone", "13911139002")
    await page.click("[data-test=send-code]")
    await expect(page.locator("[data-field=id]")).to_contain_text("18 位")
    await page.fill("#res-id", number)
    await page.click("[data-test=send-code]")
    await page.locator("#res-code").wait_for()
    code = await last_code(server, "13911139002")
    await page.fill("#res-code", f"{(int(code) + 1) % 10**6:06d}")
    await page.click("[data-test=sign-in]")
    await expect(page.locator("[data-test=code-error]")).to_contain_text("验证码不对")
    await check_page(page, "login-code-error", every=False)
    await page.fill("#res-code", code)
    await page.click("[data-test=sign-in]")
    await page.wait_for_url(re.compile(r"/resident$"))
    await expect(page.locator("html")).not_to_have_class(LARGE)

    # A bundle: each document once, and how many fewer than item by item.
    await page.click("[data-test=menu][data-path='/resident/take']")
    await page.click("[data-test=bundle-card][data-bundle=YS-003]")
    await expect(page.locator("[data-test=bundle-saved]")).to_be_visible()
    docs = await page.locator("[data-test=documents] li").all_inner_texts()
    assert len(docs) == len(set(docs)), docs
    await expect(page.locator("[data-test=serves]").first).to_contain_text("、")
    await assert_targets(page)
    await check_page(page, "take-bundle", every=False)
    check = page.locator("[data-test=eligibility]:not([data-state=loading])")
    if await check.get_attribute("data-state") == "warn":
        await page.click("[data-test=take-anyway]")
    await page.click("[data-test=consent]")
    await page.click("[data-test=take-ticket]")
    await page.wait_for_url(re.compile(r"/resident/ticket/\d+$"))
    await page.locator("[data-test=ticket-number]").wait_for()

    # Leaving the queue asks first, on the page; "keep my place" goes back to waiting.
    await page.click("[data-test=cancel]")
    await page.click("text=继续排队")
    await page.click("[data-test=cancel]")
    await page.click("[data-test=cancel-yes]")
    await expect(page.locator("[data-test=ticket-gone]")).to_have_attribute(
        "data-status", "cancelled"
    )
    await check_page(page, "ticket-cancelled", every=False)
    await page.click("[data-test=to-case]")
    await expect(page.locator("[data-test=case-bundle]")).to_contain_text("退休")
    await expect(page.locator("[data-test=case-status]")).to_have_text("已取消")

    # Signing out ends the resident session.
    await page.goto("/resident")
    await page.click("[data-test=sign-out]")
    await page.wait_for_url("**/resident/login")
    await page.goto("/resident/cases")
    await page.wait_for_url("**/resident/login?next=**")
