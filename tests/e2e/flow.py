"""Steps of a cloud-window call as a user takes them in the browser (shared with bench/)."""

from __future__ import annotations

from typing import Any

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
    number = page.locator("[data-test=ticket-number]")
    await number.wait_for()
    return (await number.inner_text()).strip()


async def confirm_eligibility(page: Any) -> str:
    """Wait for the eligibility check; where it warns, tick "take anyway". Returns its state."""
    check = page.locator("[data-test=eligibility]:not([data-state=loading])")
    await check.wait_for()
    state = await check.get_attribute("data-state")
    if state == "warn":
        await page.click("[data-test=take-anyway]")
    return state or ""


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
