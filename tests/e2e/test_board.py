"""The live board and the hall's wall display, as a hall manager uses them: each line's figures
and its waiting numbers; the wall at 1920×1080 without scrolling or names, following tickets
live and healing by itself after the network drops and after the server restarts."""

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
    resident_id,
    shoot,
)
from tests.e2e.flow import take_ticket
from tests.e2e.server import Server
from tests.signaling.nodes import Node

WALL = {"width": 1920, "height": 1080}
LINE = "高桥镇·民政"
RESIDENT = "王秀英"  # the name take_ticket registers
# The page's whole height fits the window: nothing to scroll, either way.
FITS_JS = """() => {
  const s = document.scrollingElement;
  return s.scrollHeight <= window.innerHeight && s.scrollWidth <= window.innerWidth;
}"""


def _masked(id_number: str) -> str:
    return f"{id_number[:4]}{'*' * 10}{id_number[-4:]}"


async def _cancel(point: Any) -> None:
    await point.locator("button", has_text="取消排队").click()
    await point.locator(".el-message-box button", has_text="取消排队").click()
    await expect(point.locator("#item-q")).to_be_visible()


async def _no_personal_data(where: Any, id_number: str) -> None:
    """Neither the resident's name nor their ID number, whole or masked, is on screen."""
    text = await where.inner_text()
    assert RESIDENT not in text
    assert id_number not in text and _masked(id_number) not in text
    assert "*" * 10 not in text


async def _english_large(page: Any, on: bool) -> None:
    await page.click("[data-test=lang]")
    await page.click("[data-test=large-text]")
    await page.wait_for_selector(
        "html[lang=en].large-text" if on else "html[lang=zh-CN]:not(.large-text)"
    )


async def test_the_board_shows_each_lines_figures_and_its_waiting_numbers(
    browser: Any, server: Server
) -> None:
    head = await new_page(browser, server, DESKTOP)
    await login(head, "supervisor.t07", "/supervisor")
    row = head.locator("[data-test=board-row]", has_text=LINE)
    await expect(row).to_be_visible()
    # Only the town's own hall and lines.
    await expect(head.locator("[data-test=board-hall-section]")).to_have_count(1)
    await expect(head.locator("[data-test=board-row]").first).to_contain_text("高桥镇")
    before = int(await row.locator("[data-test=row-waiting]").inner_text())

    point = await new_page(browser, server, TABLET_LANDSCAPE)
    await login(point, "worker", "/point")
    id_number = resident_id(81)
    number = await take_ticket(point, id_number)
    # Live: the row counts the new number without a reload, and so does the hall.
    await expect(row.locator("[data-test=row-waiting]")).to_have_text(str(before + 1))
    await expect(row.locator("[data-test=row-clerks]")).to_have_text(
        re.compile(r"^\d+ / \d+ / \d+$")
    )
    await expect(row.locator("[data-test=row-hour]")).to_have_text(re.compile(r"^[1-9]\d* / \d+$"))
    # A line that has finished nothing today says so, instead of a made-up handling time.
    board = await head.evaluate("() => fetch('/api/v1/board').then(r => r.json())")
    fresh = [ln for ln in board["halls"][0]["lines"] if ln["handling_seconds"] is None]
    assert fresh, "every line of the town has a handling time already"
    quiet = head.locator(f"[data-test=board-row][data-line='{fresh[0]['line_id']}']")
    await expect(quiet.locator("[data-test=row-handling]")).to_have_text("暂无数据")
    await expect(quiet.locator("[data-test=row-sl]")).to_contain_text(re.compile(r"暂无数据|%"))
    await shoot(head, "board", [DESKTOP])
    await in_english_large_text(head, "board")

    # Drill-down: the line's waiting numbers, longest waiting first, with item and wait.
    await row.locator("[data-test=open-queue]").click()
    dialog = head.locator("[data-test=line-queue]")
    ticket = dialog.locator("[data-test=queue-ticket]", has_text=number)
    await expect(ticket).to_contain_text("高龄津贴")
    await expect(ticket).to_contain_text(re.compile(r"不到 1 分钟|\d+ 分钟"))
    await expect(ticket).to_contain_text("80 岁以上")
    await expect(dialog.locator("[data-test=queue-range]")).to_contain_text(f"共 {before + 1} 个")
    await _no_personal_data(dialog, id_number)
    await shoot(head, "board-queue", [DESKTOP])
    # The same dialog in English with large text (the header's toggles sit behind the dialog).
    await head.keyboard.press("Escape")
    await expect(dialog).to_be_hidden()
    await _english_large(head, True)
    await row.locator("[data-test=open-queue]").click()
    await expect(dialog.locator("[data-test=queue-ticket]", has_text=number)).to_contain_text(
        "Aged 80+"
    )
    await shoot(head, "board-queue-en-large", [DESKTOP])
    await head.keyboard.press("Escape")
    await expect(dialog).to_be_hidden()
    await _english_large(head, False)
    await _cancel(point)
    await expect(row.locator("[data-test=row-waiting]")).to_have_text(str(before))


async def _open_wall(browser: Any, server: Server) -> Any:
    wall = await new_page(browser, server, WALL)
    await login(wall, "supervisor.t07", "/supervisor")
    await wall.locator("[data-test=wall-link]").first.click()
    await wall.wait_for_url("**/supervisor/wall?hall=*")
    await expect(wall.locator("[data-test=wall-row]", has_text=LINE)).to_be_visible()
    await expect(wall.locator("[data-test=wall-link-state]")).to_have_attribute("data-up", "true")
    return wall


async def _waiting(wall: Any) -> int:
    row = wall.locator("[data-test=wall-row]", has_text=LINE)
    return int(await row.locator("[data-test=wall-row-waiting]").inner_text())


async def test_the_wall_fits_the_screen_follows_tickets_and_names_nobody(
    browser: Any, server: Server
) -> None:
    wall = await _open_wall(browser, server)
    assert await wall.evaluate(FITS_JS)
    await expect(wall.locator("[data-test=wall-page]")).to_contain_text("第 1 / ")
    row = wall.locator("[data-test=wall-row]", has_text=LINE)
    before = await _waiting(wall)

    point = await new_page(browser, server, TABLET_LANDSCAPE)
    await login(point, "worker", "/point")
    id_number = resident_id(82)
    number = await take_ticket(point, id_number)
    # Live, without a reload: the count at once, the number once the snapshot follows.
    await expect(row.locator("[data-test=wall-row-waiting]")).to_have_text(str(before + 1))
    if before < 3:  # the wall shows the next three in call order
        await expect(row.locator("[data-test=wall-next]")).to_contain_text(number)
    await _no_personal_data(wall.locator("body"), id_number)
    assert await wall.evaluate(FITS_JS)
    await shoot(wall, "wall", [WALL])
    await in_english_large_text(wall, "wall")
    # Large text makes fewer lines fit, never a scrollbar.
    await wall.click("[data-test=large-text]")
    await wall.wait_for_selector("html.large-text")
    await expect(wall.locator("[data-test=wall-row]").first).to_be_visible()
    assert await wall.evaluate(FITS_JS)
    await wall.click("[data-test=large-text]")
    await _cancel(point)
    await expect(row.locator("[data-test=wall-row-waiting]")).to_have_text(str(before))


async def test_the_wall_heals_after_the_network_drops_and_the_server_restarts(
    browser: Any, server: Server
) -> None:
    wall = await _open_wall(browser, server)
    row = wall.locator("[data-test=wall-row]", has_text=LINE)
    before = await _waiting(wall)
    point = await new_page(browser, server, TABLET_LANDSCAPE)
    await login(point, "worker", "/point")

    # The wall's network drops; a number is taken meanwhile; the wall catches up on its own.
    await wall.context.set_offline(True)
    await expect(wall.locator("[data-test=wall-link-state]")).to_have_attribute("data-up", "false")
    await take_ticket(point, resident_id(83))
    await wall.context.set_offline(False)
    await expect(wall.locator("[data-test=wall-link-state]")).to_have_attribute("data-up", "true")
    await expect(row.locator("[data-test=wall-row-waiting]")).to_have_text(str(before + 1))

    # The server restarts (a deploy): the wall says it is reconnecting, comes back by itself,
    # and follows the queue live again.
    server.stop()  # also checks that nothing so far logged a traceback
    await expect(wall.locator("[data-test=wall-link-state]")).to_have_attribute("data-up", "false")
    Node.start(server)  # the same port and database; no new migration or seed
    await server.ready()
    await expect(wall.locator("[data-test=wall-link-state]")).to_have_attribute(
        "data-up", "true", timeout=60_000
    )
    await point.reload()
    await _cancel(point)
    await expect(row.locator("[data-test=wall-row-waiting]")).to_have_text(str(before))
    assert await wall.evaluate(FITS_JS)


async def test_lines_that_do_not_fit_turn_over_as_pages_that_can_be_paused(
    browser: Any, server: Server
) -> None:
    short = {"width": 1920, "height": 640}  # a low screen: not every line of the hall fits
    wall = await new_page(browser, server, short)
    await wall.clock.install()  # time runs as usual until the test moves it on
    await login(wall, "supervisor.t07", "/supervisor")
    await wall.goto("/supervisor/wall")
    page_no = wall.locator("[data-test=wall-page]")
    await expect(page_no).to_have_text(re.compile(r"^第 1 / [2-9] 页$"))
    assert await wall.evaluate(FITS_JS)
    rows = wall.locator("[data-test=wall-row] th")
    first = await rows.all_inner_texts()
    # A page stays 20 seconds (never less), then the next lines come.
    await wall.clock.fast_forward("00:19")
    await expect(page_no).to_have_text(re.compile(r"^第 1 / "))
    await wall.clock.fast_forward("00:02")
    await expect(page_no).to_have_text(re.compile(r"^第 2 / "))
    assert set(await rows.all_inner_texts()).isdisjoint(first)
    assert await wall.evaluate(FITS_JS)
    # Paused, it stays.
    await wall.click("[data-test=wall-pause]")
    await expect(wall.locator("[data-test=wall-pause]")).to_have_attribute("aria-pressed", "true")
    await wall.clock.fast_forward("00:45")
    await expect(page_no).to_have_text(re.compile(r"^第 2 / "))
    await shoot(wall, "wall-pages", [short])
