"""A recorded call in real browsers: consent notice and indicator on both sides, a still captured
by the clerk, and afterwards the recordings played back by the clerk and by a supervisor."""

from __future__ import annotations

import io
from typing import Any

from tests.e2e.conftest import DESKTOP, expect, login, new_page, shoot
from tests.e2e.flow import return_case, skip_rating
from tests.e2e.server import Server
from tests.e2e.test_cloud_window import start_call

NOTICE = "本次通话将全程录音录像，用于政务服务监督和存档"

# Both participants' recordings are finished and have at least one segment each.
BOTH_RECORDED_JS = """() => {
  const rows = [...document.querySelectorAll('[data-test=recording][data-status=finished]')];
  const roles = new Set(rows.filter(r => r.querySelector('[data-test=segment]'))
    .map(r => r.dataset.role));
  return roles.has('clerk') && roles.has('point');
}"""

# The <video> has a picture and no error.
PLAYABLE_JS = """() => {
  const v = document.querySelector('[data-test=recording-video]');
  return !!v && !v.error && v.readyState >= 2 && v.videoWidth > 0;
}"""


async def play_first_segment(page: Any, role: str) -> int:
    """Play the first segment of `role`'s recording; check that it plays; return its id."""
    seg = page.locator(f"[data-test=recording][data-role={role}] [data-test=segment]").first
    await expect(seg).to_have_attribute("data-type", "video/webm")  # VP8 kept for the recorder
    seg_id = int(await seg.get_attribute("data-segment"))
    await seg.click()
    await page.wait_for_function(PLAYABLE_JS, timeout=15_000)
    start = await page.eval_on_selector("[data-test=recording-video]", "v => v.currentTime")
    await page.wait_for_function(
        """(t0) => { const v = document.querySelector('[data-test=recording-video]');
                     return v.currentTime > t0 || v.ended; }""",
        arg=start,
        timeout=10_000,
    )
    return seg_id


def decoded_frames(webm: bytes) -> tuple[str, int]:
    """Open a segment with PyAV: its video codec and how many frames decode."""
    import av

    with av.open(io.BytesIO(webm)) as container:
        assert container.streams.video, "no video stream in the segment"
        codec = container.streams.video[0].codec_context.name
        return codec, sum(1 for _ in container.decode(video=0))


async def test_recorded_call_is_announced_captured_and_played_back(
    browser: Any, server: Server
) -> None:
    point, clerk, _number = await start_call(browser, server, shots=False)
    case_id = await clerk.evaluate("() => window.__cw.session.state.caseId")

    # Everyone is told, and sees it recording; this item requires it, so the clerk cannot stop.
    for page in (point, clerk):
        await expect(page.locator("[data-test=rec-notice]")).to_have_text(NOTICE)
        indicator = page.locator("[data-test=rec-indicator]")
        await expect(indicator).to_have_attribute("data-state", "active")
        await expect(indicator).to_contain_text("● 录像中")
    # Asserted once the page shows the rule, so the stop button would be rendered by now.
    await expect(clerk.locator("[data-test=rec-required]")).to_contain_text("本事项要求全程录像")
    await expect(clerk.locator("[data-test=rec-stop]")).to_have_count(0)
    await expect(clerk.locator("[data-test=capture]")).to_be_visible()
    await expect(point.locator("[data-test=mute]")).to_be_visible()  # the point's controls
    await expect(point.locator("[data-test=capture]")).to_have_count(0)  # capturing is the clerk's

    # The clerk captures the point's video: a toast, then the still under "other materials".
    await clerk.click("[data-test=capture]")
    await clerk.locator(".el-message--success", has_text="已截取").wait_for()
    still = clerk.locator("[data-test=extra-thumb][data-source=snapshot]")
    await still.first.wait_for()
    await still.locator("img").first.wait_for()
    await still.first.click()
    image = clerk.locator("[data-test=viewer-image]")
    await image.wait_for()
    await clerk.wait_for_function(
        "() => document.querySelector('[data-test=viewer-image]').naturalWidth > 0"
    )
    await shoot(clerk, "clerk-snapshot", [DESKTOP])
    await clerk.keyboard.press("Escape")
    await clerk.wait_for_selector(".el-overlay", state="hidden")

    # A few seconds of call, so each side has finished 2-second segments; then both leave.
    await clerk.wait_for_timeout(2_500)
    await return_case(clerk, "录像测试")
    await skip_rating(point)

    # The clerk looks back at the case: both recordings, and a segment plays in the page.
    await clerk.click("[data-test=open-case]")
    await clerk.wait_for_selector(".case-dialog [data-test=case-summary]")
    await clerk.wait_for_function(BOTH_RECORDED_JS, timeout=30_000, polling=250)
    seg_id = await play_first_segment(clerk, "point")
    await shoot(clerk, "clerk-case-recordings", [DESKTOP])

    # The same segment through a fresh link, checked with PyAV: VP8 frames that decode.
    link = await (await clerk.request.get(f"/api/v1/recordings/segments/{seg_id}/link")).json()
    resp = await clerk.request.get(link["url"])
    assert resp.ok, resp.status
    codec, frames = decoded_frames(await resp.body())
    assert codec == "vp8" and frames > 0, (codec, frames)

    # A supervisor of the district finds the case among the recent ones and plays it too.
    sup = await new_page(browser, server, DESKTOP)
    await login(sup, "supervisor", "/supervisor")
    await sup.get_by_role("tab", name="最近办件").click()
    await sup.locator(f"[data-test=case-row][data-case='{case_id}'] [data-test=open-case]").click()
    await sup.wait_for_function(BOTH_RECORDED_JS, timeout=15_000, polling=250)
    await play_first_segment(sup, "clerk")
    await shoot(sup, "supervisor-case-recordings", [DESKTOP])
