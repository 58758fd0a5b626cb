"""End-to-end fixtures: a real `cloudwindow serve` process and Debian's Chromium via Playwright.

The server runs on a free port with its own data directory (SQLite), migrated and seeded with
the demo district. Chromium gets a fake camera and microphone and grants them without a
prompt. Playwright never downloads a browser: it drives /usr/bin/chromium.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import json
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import DEMO_PASSWORD, require_service
from tests.e2e.server import ROOT, UI_E2E, Server
from tests.factories import id_number

CHROMIUM = os.environ.get("CW_TEST_CHROMIUM", "/usr/bin/chromium")
AXE = ROOT / "web" / "ui" / "node_modules" / "axe-core" / "axe.min.js"
SHOTS = ROOT / "test-artifacts" / "screenshots"
# Fake devices, no permission prompt; autoplay so remote <video> plays without a gesture.
CHROMIUM_ARGS = [
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
    "--disable-dev-shm-usage",
    "--no-sandbox",
]
# How long a web-first assertion keeps retrying: a loaded 2-core machine runs two Chromium
# renderers, the server and the tests (page actions get the same, in new_page).
UI_WAIT_MS = 30_000
TABLET_LANDSCAPE = {"width": 1280, "height": 800}
TABLET_PORTRAIT = {"width": 800, "height": 1280}
DESKTOP = {"width": 1440, "height": 900}


def _require_tools() -> None:
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        require_service(False, "playwright is not installed (pip install playwright)")
    require_service(Path(CHROMIUM).exists(), f"{CHROMIUM} missing (apt-get install chromium)")
    require_service(
        (UI_E2E / "index.html").exists(), "web/ui/dist-e2e missing (cd web/ui && npm run build:e2e)"
    )
    require_service(AXE.exists(), "web/ui/node_modules/axe-core missing (make ui)")


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    _require_tools()
    # Short recording segments, so a call of a few seconds has finished segments to play; the
    # wait-alert sweep every second, so a test sees an alert soon after its threshold passes;
    # photos prepared to a long side other than the default, so the story sees the setting obeyed.
    srv = Server(
        tmp_path_factory.mktemp("e2e"),
        recording_segment_seconds="2",
        alert_sweep_interval_seconds="1",
        photo_max_side="1920",
    )
    srv.start()
    try:
        asyncio.run(srv.ready())
        yield srv
    finally:
        srv.stop()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call":
        item.stash[FAILED] = report.failed
    return report


FAILED = pytest.StashKey[bool]()


@pytest.fixture
async def browser(request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    """Chromium for one test; on failure every open page is saved to test-artifacts/failures."""
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        b = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            if request.node.stash.get(FAILED, False):
                out = SHOTS.parent / "failures"
                out.mkdir(parents=True, exist_ok=True)
                for i, ctx in enumerate(b.contexts):
                    for j, page in enumerate(ctx.pages):
                        name = f"{request.node.name}-{i}-{j}"
                        await page.screenshot(path=str(out / f"{name}.png"))
                        (out / f"{name}.txt").write_text(CONSOLE.get(id(page), ""))
            await b.close()


CONSOLE: dict[int, str] = {}


async def new_page(browser: Any, server: Server, viewport: dict[str, int], **kw: Any) -> Any:
    ctx = await browser.new_context(base_url=server.base, viewport=viewport, locale="zh-CN", **kw)
    await ctx.grant_permissions(["camera", "microphone"], origin=server.base)
    page = await ctx.new_page()
    page.set_default_timeout(UI_WAIT_MS)
    CONSOLE[id(page)] = ""

    def log(msg: Any) -> None:
        CONSOLE[id(page)] += f"{msg.type}: {msg.text}\n"

    page.on("console", log)
    page.on("pageerror", lambda e: log(type("E", (), {"type": "pageerror", "text": str(e)})))
    return page


def expect(target: Any) -> Any:
    """Playwright's web-first assertions on a page or locator, retried for UI_WAIT_MS.

    They re-read the page until it matches, so a re-render between two reads cannot fail a
    test, as `await locator.inner_text()` followed by an assert can. Each call gets its own
    `Expect`, so no module-wide option is changed.
    """
    from playwright.async_api import Expect

    check = Expect()
    check.set_options(timeout=UI_WAIT_MS)
    return check(target)


async def login(page: Any, username: str, lands_on: str) -> None:
    await page.goto("/login")
    await page.fill("#username", username)
    await page.fill("#password", DEMO_PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_url(f"**{lands_on}")


# Moderate findings that are fixed and must stay fixed (besides every serious and critical one).
ALSO_FAIL = {
    "heading-order",
    "landmark-no-duplicate-banner",
    "landmark-no-duplicate-contentinfo",
    "landmark-unique",
    "page-has-heading-one",
    "scrollable-region-focusable",
}


async def axe_check(page: Any, name: str) -> list[dict[str, Any]]:
    """Run axe-core on the page; return serious and critical violations (and save them all)."""
    # Colours are checked once fades are over (a dialog fading in is not yet its own contrast).
    await page.evaluate(
        """() => Promise.race([
            Promise.all(document.getAnimations().map(a => a.finished.catch(() => null))),
            new Promise(r => setTimeout(r, 3000)),
        ])"""
    )
    if not await page.evaluate("typeof window.axe !== 'undefined'"):
        await page.add_script_tag(path=str(AXE))
    result = await page.evaluate(
        """async () => {
            const r = await window.axe.run(document, {
              runOnly: {
                type: 'tag',
                values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'],
              },
              resultTypes: ['violations'],
            });
            return r.violations.map(v => ({
              id: v.id, impact: v.impact, help: v.help,
              nodes: v.nodes.slice(0, 5).map(
                n => ({ target: n.target, summary: n.failureSummary })),
            }));
        }"""
    )
    out = SHOTS.parent / "axe"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(result, ensure_ascii=False, indent=1))
    return [v for v in result if v["impact"] in ("serious", "critical") or v["id"] in ALSO_FAIL]


async def shoot(page: Any, name: str, sizes: list[dict[str, int]] | None = None) -> None:
    """Screenshot at each size (restoring the page's own size) and check accessibility."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    own = page.viewport_size
    for size in sizes or [own]:
        if size != page.viewport_size:
            await page.set_viewport_size(size)
            await page.wait_for_timeout(150)
        await page.screenshot(path=str(SHOTS / f"{name}-{size['width']}x{size['height']}.png"))
    if page.viewport_size != own:
        await page.set_viewport_size(own)
    bad = await axe_check(page, name)
    assert not bad, json.dumps(bad, ensure_ascii=False, indent=1)


async def in_english_large_text(page: Any, name: str) -> None:
    """axe in English with large text (then back to Chinese at normal size)."""
    await page.click("[data-test=lang]")
    await page.click("[data-test=large-text]")
    await page.wait_for_selector("html[lang=en].large-text")
    await shoot(page, f"{name}-en-large", [page.viewport_size])
    await page.click("[data-test=lang]")
    await page.click("[data-test=large-text]")
    await page.wait_for_selector("html[lang=zh-CN]:not(.large-text)")


_seq = itertools.count(101, 2)


def resident_id(age: int) -> str:
    """A checksum-valid ID number of someone aged `age` in the demo district, unique in the run."""
    today = dt.date.today()
    birth = today.replace(year=today.year - age, day=min(today.day, 28)) - dt.timedelta(days=1)
    return id_number(birth, next(_seq))
