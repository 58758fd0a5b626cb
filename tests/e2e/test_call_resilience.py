"""What goes wrong in the field: the tablet's network drops mid-call, the camera is refused,
and the clerk working from the keyboard."""

from __future__ import annotations

from typing import Any

from tests.e2e.conftest import DESKTOP, TABLET_LANDSCAPE, expect, login, new_page, resident_id
from tests.e2e.flow import (
    DENY_MEDIA_JS,
    expect_timeline,
    frames,
    return_case,
    skip_rating,
    take_ticket,
    wait_decoding,
    wait_more_frames,
)
from tests.e2e.server import Server


async def call_by_keyboard(point: Any, clerk: Any, number: str) -> None:
    """The clerk presses N (the shortcut for "call next"); the point answers."""
    row = clerk.locator("[data-test=queue-row]", has_text=number)
    await row.wait_for()
    # The shortcut does what the button does: only once the button is live.
    await expect(clerk.locator("[data-test=call-next]")).to_be_enabled()
    await clerk.keyboard.press("n")
    await clerk.wait_for_selector(f"[data-test=serving-number]:has-text('{number}')")
    await point.click("[data-test=answer]")
    await point.wait_for_selector("[data-test=checklist]")


async def test_network_drop_mid_call_recovers(browser: Any, server: Server) -> None:
    point = await new_page(browser, server, TABLET_LANDSCAPE)
    clerk = await new_page(browser, server, DESKTOP)
    await login(point, "worker", "/point")
    await login(clerk, "clerk", "/clerk")
    number = await take_ticket(point, resident_id(72))
    await call_by_keyboard(point, clerk, number)
    await wait_decoding(point)
    await wait_decoding(clerk)

    # The tablet loses its network for a few seconds.
    await point.context.set_offline(True)
    await point.wait_for_selector("[data-test=reconnecting]", timeout=5_000)
    await point.wait_for_timeout(3_000)
    before_point, before_clerk = await frames(point), await frames(clerk)
    await point.context.set_offline(False)

    # The socket comes back, the call is rejoined (resume token) and ICE restarts: the banner
    # goes and new video frames arrive on both sides.
    await point.wait_for_selector("[data-test=reconnecting]", state="detached", timeout=20_000)
    await wait_more_frames(point, before_point)
    await wait_more_frames(clerk, before_clerk)
    await expect(clerk.locator("[data-test=serving-number]")).to_have_text(number)

    # After the rejoin the point sends the recorder a new offer: its recording goes on in a new
    # piece (its first offer, if it went out while the network was down, was refused).
    case_id = await clerk.evaluate("() => window.__cw.session.state.caseId")
    await point.wait_for_function("() => window.__cw.session.state.recorder === 'sending'")
    timeline = (await (await clerk.request.get(f"/api/v1/cases/{case_id}")).json())["timeline"]
    rejoined = max(e["at"] for e in timeline if e["kind"] == "call.rejoined")
    started = [e for e in timeline if e["kind"] == "recording.started"]
    assert any(e["data"]["role"] == "point" and e["at"] > rejoined for e in started), started

    await return_case(clerk)
    await skip_rating(point)
    await expect_timeline(point, ("call.rejoined",))  # the drop and the rejoin are on the record


async def test_camera_refused_is_explained(browser: Any, server: Server) -> None:
    point = await new_page(browser, server, TABLET_LANDSCAPE)
    await point.add_init_script(f"({DENY_MEDIA_JS})('NotAllowedError')")
    clerk = await new_page(browser, server, DESKTOP)
    await login(point, "worker", "/point")
    await login(clerk, "clerk", "/clerk")
    number = await take_ticket(point, resident_id(66))

    # While waiting: the camera is checked ahead, and the worker is told what to do.
    problem = point.locator("[data-test=media-problem]")
    await expect(problem).to_have_attribute("data-problem", "NotAllowedError")
    for words in ("没有摄像头或麦克风权限", "允许", "重试"):
        await expect(problem).to_contain_text(words)

    # Answering anyway: the call connects, the point still sees the clerk, the explanation stays.
    await call_by_keyboard(point, clerk, number)
    await point.locator("[data-test=media-problem][data-problem=NotAllowedError]").wait_for()
    await wait_decoding(point)

    # Permission given, "try again": the camera comes on and the clerk sees the point.
    await point.evaluate("() => { window.__denyMedia = null; }")
    await point.click("[data-test=media-retry]")
    await point.wait_for_selector("[data-test=media-problem]", state="detached")
    await wait_decoding(clerk)

    await return_case(clerk)


# The point's recorder connection cannot be set up (as when the recorder is out of reach);
# the attempts are counted. Its main peer connections are left alone.
NO_RECORDER_JS = """() => {
  window.__recorderOffers = 0;
  const real = RTCPeerConnection.prototype.createOffer;
  RTCPeerConnection.prototype.createOffer = function (...args) {
    if (this.getConfiguration().bundlePolicy === 'max-bundle') {
      window.__recorderOffers += 1;
      return Promise.reject(new DOMException('no recorder in the test', 'OperationError'));
    }
    return real.apply(this, args);
  };
}"""


async def test_recorder_out_of_reach_leaves_the_call_alone(browser: Any, server: Server) -> None:
    point = await new_page(browser, server, TABLET_LANDSCAPE)
    await point.add_init_script(f"({NO_RECORDER_JS})()")
    clerk = await new_page(browser, server, DESKTOP)
    await login(point, "worker", "/point")
    await login(clerk, "clerk", "/clerk")
    number = await take_ticket(point, resident_id(70))
    await call_by_keyboard(point, clerk, number)
    await wait_decoding(point)
    await wait_decoding(clerk)

    # The point says so quietly and tries once more a few seconds later; the clerk still records.
    indicator = point.locator("[data-test=rec-indicator]")
    await expect(indicator).to_have_attribute("data-state", "interrupted")
    await expect(indicator).to_contain_text("录像中断")
    await clerk.locator("[data-test=rec-indicator][data-state=active]").wait_for()
    await point.wait_for_function("() => window.__recorderOffers === 2", timeout=10_000)

    # The call goes on: new video both ways, and no third attempt.
    await wait_more_frames(point, await frames(point))
    await wait_more_frames(clerk, await frames(clerk))
    assert await point.evaluate("() => window.__recorderOffers") == 2
    await return_case(clerk)
