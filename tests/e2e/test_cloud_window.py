"""A whole cloud-window call in two real browsers: a service-point tablet and a clerk's desktop."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from tests.e2e.conftest import (
    DESKTOP,
    SHOTS,
    TABLET_LANDSCAPE,
    TABLET_PORTRAIT,
    expect,
    in_english_large_text,
    login,
    new_page,
    resident_id,
    shoot,
)
from tests.e2e.flow import expect_timeline, take_ticket, to_rating, wait_decoding
from tests.e2e.server import Server

TABLET = [TABLET_LANDSCAPE, TABLET_PORTRAIT]


def document_photo(tmp: Path, name: str) -> Path:
    """A small JPEG standing in for a photographed document."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (800, 560), "white")
    draw = ImageDraw.Draw(img)
    draw.rectangle((20, 20, 780, 540), outline="navy", width=6)
    draw.text((60, 60), name, fill="black")
    path = tmp / f"{name}.jpg"
    img.save(path, "JPEG", quality=85)
    return path


async def start_call(browser: Any, server: Server, *, shots: bool = True) -> tuple[Any, Any, str]:
    """Point takes a 高龄 ticket, the clerk calls it, the point answers; both decode video."""
    point = await new_page(browser, server, TABLET_LANDSCAPE)
    clerk = await new_page(browser, server, DESKTOP)
    await login(point, "worker", "/point")
    await login(clerk, "clerk", "/clerk")
    number = await take_ticket(point, resident_id(84))
    assert re.fullmatch(r"M\d{3}", number)
    await point.wait_for_selector("[data-test=position]:text-matches('^[0-9]+$')")
    if shots:
        await shoot(point, "point-waiting", TABLET)

    # The clerk's queue shows the ticket live, with its priority mark (84 years old).
    row = clerk.locator("[data-test=queue-row]", has_text=number)
    await expect(row).to_contain_text("80")
    if shots:
        await shoot(clerk, "clerk-queue", [DESKTOP])
    await clerk.click("[data-test=call-next]")
    await clerk.wait_for_selector(f"[data-test=serving-number]:has-text('{number}')")

    await point.wait_for_selector("[data-test=ringing]")
    if shots:
        await shoot(point, "point-ringing", TABLET)
    await point.click("[data-test=answer]")
    await point.wait_for_selector("[data-test=checklist]")

    await wait_decoding(point)
    await wait_decoding(clerk)
    return point, clerk, number


async def finish_and_rate(point: Any, clerk: Any, *, outcome: str, rate: bool) -> None:
    await clerk.click(f"[data-test=outcome-{outcome}]")
    if outcome == "returned":
        await clerk.fill("#finish-reason", "不符合申领条件：户籍不在本区")
    await clerk.fill("#finish-note", "已当面说明")
    await clerk.click("[data-test=finish]")
    await clerk.wait_for_selector("[data-test=call-next]:not([disabled])")
    await point.wait_for_selector("[data-test=outcome]")
    await shoot(point, "point-outcome", TABLET)
    await to_rating(point)
    await point.wait_for_selector("[data-test=rating-face]")
    await shoot(point, "point-rating", TABLET)
    if rate:
        await point.click("[data-test=rating-face][data-score='5']")
        await point.fill("#rating-comment", "视频办事很方便，不用跑镇上了")
        await point.click("[data-test=rating-submit]")
    else:
        await point.click("text=跳过")
    await point.wait_for_selector("[data-test=case-summary]")


async def test_call_with_video_and_outcome(browser: Any, server: Server) -> None:
    """Everything except the materials API: ticket, live queue, video both ways, finish."""
    point, clerk, _number = await start_call(browser, server)
    # Both sides are told the call is recorded, and see it being recorded (docs/recording.md).
    for page in (point, clerk):
        await page.locator("[data-test=rec-indicator][data-state=active]").wait_for()
    await shoot(point, "point-in-call", TABLET)
    await shoot(clerk, "clerk-in-call", [DESKTOP])
    await in_english_large_text(clerk, "clerk-in-call")
    await in_english_large_text(point, "point-in-call")

    # "Invite an expert" (one click away) lists the skills experts have, with who is free.
    await clerk.click("[data-test=open-invite]")
    await clerk.click("[data-test=skill]")
    option = clerk.locator(".el-select-dropdown__item", has_text="社会救助政策")
    await option.wait_for()
    # No axe run on this one: Element Plus's open list is a scroll box that axe wants focusable,
    # while the keyboard stays in the (axe-checked) input and moves the active option.
    await clerk.screenshot(path=str(SHOTS / "clerk-expert-skills-1440x900.png"))
    await clerk.keyboard.press("Escape")
    await clerk.locator("[data-test=invite-dialog] button", has_text="取消").click()
    await clerk.wait_for_selector(".el-overlay", state="hidden")

    # Mute and camera toggles change state and label, and change back.
    for control, off, on in (("mute", "静音", "取消静音"), ("camera", "关闭摄像头", "打开摄像头")):
        button = point.locator(f"[data-test={control}]")
        await expect(button).to_have_attribute("aria-pressed", "false")
        await expect(button).to_have_text(off)
        await button.click()
        await expect(button).to_have_attribute("aria-pressed", "true")
        await expect(button).to_have_text(on)
        await button.click()
        await expect(button).to_have_attribute("aria-pressed", "false")
        await expect(button).to_have_text(off)

    # Returning the case needs no materials (completing and accepting need them all).
    await finish_and_rate(point, clerk, outcome="returned", rate=False)
    await expect(point.locator("[data-test=case-status]")).to_have_attribute(
        "data-status", "returned"
    )
    await expect_timeline(
        point, ("created", "consent", "ticket.taken", "call.answered", "status.returned")
    )
    await shoot(point, "point-done", TABLET)


async def test_full_flow_with_materials_and_rating(
    browser: Any, server: Server, tmp_path: Path
) -> None:
    """The whole story, including uploads, review and the rating (needs the materials API)."""
    point, clerk, _number = await start_call(browser, server)
    checklist = point.locator("[data-test=checklist-item]")
    await checklist.first.wait_for()
    id_card = point.locator("[data-test=checklist-item]", has_text="申请人身份证")
    register = point.locator("[data-test=checklist-item]", has_text="户口簿")

    # The point photographs two documents and uploads them (a progress bar while sending).
    await id_card.locator("input[type=file]").set_input_files(document_photo(tmp_path, "id"))
    await id_card.locator("[data-test=item-state][data-state=uploaded]").wait_for()
    await register.locator("input[type=file]").set_input_files(document_photo(tmp_path, "hukou"))
    await register.locator("[data-test=item-state][data-state=uploaded]").wait_for()

    # The clerk sees both, accepts one and rejects one with a reason.
    c_id = clerk.locator("[data-test=checklist-item]", has_text="申请人身份证")
    c_reg = clerk.locator("[data-test=checklist-item]", has_text="户口簿")
    await c_id.locator("[data-test=material-thumb]").first.wait_for()
    await c_reg.locator("[data-test=material-thumb]").first.wait_for()
    await c_id.locator("[data-test=material-thumb]").first.click()
    await clerk.wait_for_selector("[data-test=viewer-image]")
    await shoot(clerk, "clerk-viewer", [DESKTOP])
    await clerk.keyboard.press("a")  # the shortcut accepts the material on screen
    await c_id.locator("[data-test=item-state][data-state=accepted]").wait_for()
    await c_reg.locator("[data-test=reject]").click()
    await clerk.fill("#reject-reason", "照片模糊，请重拍")
    await clerk.click("[data-test=confirm-reject]")
    await c_reg.locator("[data-test=item-state][data-state=rejected]").wait_for()
    await clerk.wait_for_selector(".el-overlay", state="hidden")  # the dialog has faded out
    await shoot(clerk, "clerk-review", [DESKTOP])

    # The point sees why, and uploads the rejected one again.
    await id_card.locator("[data-test=item-state][data-state=accepted]").wait_for()
    await register.locator("[data-test=reject-reason]", has_text="照片模糊").wait_for()
    await shoot(point, "point-materials", TABLET)
    await register.locator("input[type=file]").set_input_files(document_photo(tmp_path, "hukou2"))
    await register.locator("[data-test=item-state][data-state=uploaded]").wait_for()
    await c_reg.locator("[data-test=accept]").click()
    await c_reg.locator("[data-test=item-state][data-state=accepted]").wait_for()

    # Completing needs every required material: the community certificate is still missing.
    await clerk.click("[data-test=outcome-completed]")
    await clerk.click("[data-test=finish]")
    await expect(clerk.locator("[data-test=finish-error]")).to_contain_text("社区")
    cert = point.locator("[data-test=checklist-item]", has_text="社区（村）证明")
    await cert.locator("input[type=file]").set_input_files(document_photo(tmp_path, "cert"))
    c_cert = clerk.locator("[data-test=checklist-item]", has_text="社区（村）证明")
    await c_cert.locator("[data-test=accept]").click()
    await clerk.locator("[data-test=checklist-complete]", has_text="材料齐全").wait_for()

    await finish_and_rate(point, clerk, outcome="completed", rate=True)
    await expect(point.locator("[data-test=case-status]")).to_have_attribute(
        "data-status", "completed"
    )
    await expect_timeline(
        point,
        (
            "ticket.taken",
            "call.answered",
            "material.upload",
            "material.rejected",
            "material.accepted",
            "status.completed",
            "rating",
        ),
    )
