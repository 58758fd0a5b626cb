"""Steps of a cloud-window call as a user takes them in the browser (shared with bench/)."""

from __future__ import annotations

import re
from typing import Any

from tests.e2e.conftest import expect

# Frames decoded from every remote peer of the page's call (one number per peer connection).
FRAMES_JS = """async () => {
  const out = [];
  for (const pc of (window.__cw ? window.__cw.pcs() : [])) {
    let frames = 0;
    (await pc.getStats()).forEach(r => {
      if (r.type === 'inbound-rtp' && r.kind === 'video') frames += r.framesDecoded || 0;
    });
    out.push(frames);
  }
  return out;
}"""

ALL_DECODING_JS = f"""async (peers) => {{
  const f = await ({FRAMES_JS})();
  return f.length >= peers && f.every(n => n > 0);
}}"""


async def take_ticket(
    page: Any, id_number: str, *, query: str = "高龄", item: str = "高龄津贴"
) -> str:
    """Search the item, register the resident, record consent and take a number."""
    await page.fill("#item-q", query)
    await page.press("#item-q", "Enter")
    await page.click(f"[data-test=item-card]:has-text('{item}')")
    await page.fill("#id-number", id_number)
    await page.wait_for_selector("[data-test=id-valid]")
    await page.click("form:has(#id-number) button[type=submit]")
    await page.wait_for_selector("#reg-name")
    await page.fill("#reg-name", "王秀英")
    await page.fill("#reg-phone", "13800138000")
    await page.click("[data-test=register]")
    await page.wait_for_selector("[data-test=resident]")
    await page.click("[data-test=consent]")
    await confirm_eligibility(page)
    await page.click("[data-test=take-ticket]")
    return await ticket_number(page)


async def ticket_number(page: Any) -> str:
    """The number on the tablet, once it shows one (a letter and digits, e.g. M003)."""
    number = page.locator("[data-test=ticket-number]")
    await expect(number).to_have_text(TICKET_NUMBER)
    return (await number.inner_text()).strip()


TICKET_NUMBER = re.compile(r"^\s*[A-Z]\d{3,}\s*$")


async def confirm_eligibility(page: Any) -> str:
    """Wait for the eligibility check; where it warns, tick "take anyway". Returns its state."""
    check = page.locator("[data-test=eligibility]:not([data-state=loading])")
    await check.wait_for()
    state = await check.get_attribute("data-state")
    if state == "warn":
        await page.click("[data-test=take-anyway]")
    return state or ""


# One atomic step in the page: a click on "hand over for rating" if the outcome shows it. If
# the call ended meanwhile, the page has moved on to the rating by itself and the button is gone.
TO_RATING_JS = """() => {
  const button = document.querySelector('[data-test=to-rating]');
  if (button) button.click();
}"""


async def to_rating(point: Any) -> None:
    """After the clerk finishes: the tablet goes on to the rating, however the call ended.

    A Playwright click on the outcome's button races the call's end, which re-renders the
    view without it (the click then waits for a button that never comes back).
    """
    await point.wait_for_selector("[data-test=outcome], .point-page[data-stage=rating]")
    await point.evaluate(TO_RATING_JS)
    await point.wait_for_selector(".point-page[data-stage=rating]")


async def skip_rating(point: Any) -> None:
    """On to the rating, skipped: the tablet shows the finished case."""
    await to_rating(point)
    await point.click("text=跳过")
    await point.wait_for_selector("[data-test=case-summary]")


async def expect_timeline(page: Any, kinds: tuple[str, ...]) -> None:
    """Each kind of event is on the case timeline the page shows (waiting for it to load)."""
    for kind in kinds:
        await expect(page.locator(f".tl-kind[data-kind='{kind}']").first).to_be_attached()


async def wait_decoding(page: Any, peers: int = 1, within_ms: float = 20_000) -> list[int]:
    """Wait until every remote peer's video has decoded frames; return the frame counts."""
    await page.wait_for_function(ALL_DECODING_JS, arg=peers, timeout=within_ms, polling=100)
    return await page.evaluate(FRAMES_JS)


# The point's camera and microphone refused the way a browser refuses them (set before any
# page script runs; `window.__denyMedia = null` lets them through again).
DENY_MEDIA_JS = """(name) => {
  window.__denyMedia = name;
  const md = navigator.mediaDevices;
  const real = md.getUserMedia.bind(md);
  md.getUserMedia = async (c) => {
    if (window.__denyMedia) throw new DOMException('refused in the test', window.__denyMedia);
    return real(c);
  };
}"""


async def frames(page: Any) -> list[int]:
    return await page.evaluate(FRAMES_JS)


async def wait_more_frames(page: Any, than: list[int], within_ms: float = 20_000) -> list[int]:
    """Wait until every peer connection has decoded more frames than `than` (new video)."""
    await page.wait_for_function(
        f"""async (before) => {{
          const f = await ({FRAMES_JS})();
          return f.length >= before.length && f.every((n, i) => n > (before[i] ?? 0));
        }}""",
        arg=than,
        timeout=within_ms,
        polling=200,
    )
    return await frames(page)


async def return_case(clerk: Any, reason: str = "测试结束") -> None:
    """Close the clerk's current case without materials, so the next test starts clean."""
    await clerk.click("[data-test=outcome-returned]")
    await clerk.fill("#finish-reason", reason)
    await clerk.click("[data-test=finish]")
    await clerk.wait_for_selector("[data-test=call-next]:not([disabled])")
