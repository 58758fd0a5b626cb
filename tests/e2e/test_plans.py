"""Visit plans and the visit day in a real Chromium: the town's coordinator plans a day from
the accepted home-service requests and publishes it; the field worker opens the day on a
tablet, sees the route and the map drawn from the coordinates (no tiles here), and checks in at
the first door with the browser's (fake) geolocation; axe on both pages and the move dialog, in
both languages and at both text sizes.

The server runs in a time zone where it is now early morning, so the day being planned is
today with its whole working day ahead, whenever the test runs (check-in is on the visit's
day; the real clock is never changed)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest

from tests.conftest import DEMO_PASSWORD
from tests.e2e.conftest import (
    DESKTOP,
    TABLET_LANDSCAPE,
    TABLET_PORTRAIT,
    _require_tools,
    expect,
    in_english_large_text,
    login,
    new_page,
    shoot,
)
from tests.e2e.server import Server
from tests.e2e.test_home_service import pick_option
from tests.e2e.test_resident import sql
from tests.factories import aged

DOOR = {"latitude": 29.8641, "longitude": 121.4602, "accuracy": 15}


def morning_zone(now: dt.datetime | None = None) -> str:
    """An Etc/GMT zone where it is now 07:xx: the whole working day is still ahead."""
    now = now or dt.datetime.now(dt.UTC)
    k = (7 - now.hour) % 24
    if k > 14:
        k -= 24
    return "Etc/GMT" if k == 0 else f"Etc/GMT{-k:+d}"


@pytest.fixture(scope="module")
def morning(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    _require_tools()
    # Two seconds of solving: a day of two visits needs no more (the default is 20 s).
    srv = Server(tmp_path_factory.mktemp("e2e-plans"), timezone=morning_zone(), planner_seconds="2")
    srv.start()
    try:
        import asyncio

        asyncio.run(srv.ready())
        yield srv
    finally:
        srv.stop()


async def set_view(page: Any, lang: str, large: bool) -> None:
    """The header's language and text-size switches, to the view asked for."""
    html = page.locator("html")
    if (await html.get_attribute("lang")) != lang:
        await page.click("[data-test=lang]")
        await page.wait_for_selector(f"html[lang={lang}]")
    if ("large-text" in (await html.get_attribute("class") or "")) != large:
        await page.click("[data-test=large-text]")
        want = ".large-text" if large else ":not(.large-text)"
        await page.wait_for_selector(f"html{want}")


async def _login(http: aiohttp.ClientSession, server: Server, username: str) -> str:
    resp = await http.post(
        f"{server.base}/api/v1/auth/login", json={"username": username, "password": DEMO_PASSWORD}
    )
    assert resp.status == 200, await resp.text()
    return (await resp.json())["csrf_token"]


async def accepted_requests(server: Server, people: list[tuple[str, str, int]]) -> list[int]:
    """The hotline takes a request for each (name, community, age); the coordinator accepts."""
    ids = []
    async with (
        aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as op,
        aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as co,
    ):
        op_csrf = await _login(op, server, "operator")
        co_csrf = await _login(co, server, "coordinator.t07")
        sites = await (await op.get(f"{server.base}/api/v1/sites?kind=community")).json()
        by_code = {s["code"]: s["id"] for s in sites}
        for i, (name, community, age) in enumerate(people):
            resp = await op.post(
                f"{server.base}/api/v1/residents",
                json={
                    "name": name,
                    "id_number": aged(age, 901 + 2 * i),
                    "phone": f"1390013{9100 + i}",
                    "address": f"高桥镇幸福路{20 + i}号",
                    "community_id": by_code[community],
                },
                headers={"X-CSRF-Token": op_csrf},
            )
            assert resp.status == 201, await resp.text()
            resident = (await resp.json())["id"]
            resp = await op.post(
                f"{server.base}/api/v1/home/requests",
                json={"resident_id": resident, "item_code": "RS-005", "notes": "请先打电话"},
                headers={"X-CSRF-Token": op_csrf},
            )
            assert resp.status == 201, await resp.text()
            rid = (await resp.json())["id"]
            resp = await co.post(
                f"{server.base}/api/v1/home/requests/{rid}/accept",
                json={"note": ""},
                headers={"X-CSRF-Token": co_csrf},
            )
            assert resp.status == 200, await resp.text()
            ids.append(rid)
    return ids


async def test_the_coordinator_plans_and_publishes_and_the_field_worker_checks_in(
    browser: Any, morning: Server
) -> None:
    server = morning
    zone = server.env["CLOUDWINDOW_TIMEZONE"]
    today = dt.datetime.now(ZoneInfo(zone)).date()
    await accepted_requests(server, [("赵阿婆", "T07-C01", 84), ("钱阿公", "T07-C02", 77)])

    # The coordinator: from the desk to the plan page, a plan for today with one visitor.
    co = await new_page(browser, server, DESKTOP, timezone_id=zone)
    await login(co, "coordinator.t07", "/coordinator")
    await co.click("[data-test=co-plan]")
    await co.wait_for_url("**/coordinator/plan")
    await expect(co.locator("[data-test=plan-nothing]")).to_be_visible()
    await co.fill("#plan-day", today.isoformat())
    await pick_option(co, "plan-staff", "高桥镇上门服务人员")
    await co.keyboard.press("Escape")
    await co.click("[data-test=plan-make]")
    current = co.locator("[data-test=plan-current]")
    await expect(current).to_have_attribute("data-version", "1")
    await expect(co.locator("[data-test=plan-stop]")).to_have_count(2)
    await expect(co.locator("[data-test=plan-route]")).to_contain_text("高桥镇上门服务人员")
    await expect(co.locator("[data-test=plan-totals]")).to_contain_text("共 2 户上门")
    await expect(co.locator("[data-test=map-drawing]")).to_be_visible()
    await shoot(co, "plan-page", [DESKTOP, TABLET_LANDSCAPE])
    await in_english_large_text(co, "plan-page")

    # The move dialog: checked before it is applied, refused with the reason (axe on the
    # dialog in both languages and sizes: the header's switches sit behind the modal).
    dialog = co.locator(".el-dialog:visible")
    for lang, large in (("zh-CN", False), ("en", True)):
        await set_view(co, lang, large)
        await co.locator("[data-test=plan-move]").first.click()
        await expect(dialog).to_be_visible()
        await co.fill("#move-start", "11:50")
        await co.click("[data-test=move-check]")
        result = co.locator("[data-test=move-result]")
        await expect(result).to_have_attribute("data-feasible", "false")
        await shoot(co, f"plan-move-dialog-{lang}{'-large' if large else ''}")
        await co.keyboard.press("Escape")
        await expect(dialog).to_be_hidden()
    await set_view(co, "zh-CN", False)

    # Lock the first visit (version 2), then publish it.
    await co.locator("[data-test=plan-lock]").first.click()
    await expect(current).to_have_attribute("data-version", "2")
    await expect(co.locator("[data-test=plan-locked]")).to_have_count(1)
    await co.click("[data-test=plan-publish]")
    await co.locator(".el-message-box__btns .el-button--primary").click()
    await expect(current).to_have_attribute("data-status", "published")
    rows = await sql(
        server, "SELECT planned_by FROM home_visit WHERE status = 'scheduled' ORDER BY id"
    )
    assert rows == [("planner",), ("planner",)]

    # The field worker's tablet: the day's route, the map drawn from the coordinates.
    field = await new_page(browser, server, TABLET_PORTRAIT, timezone_id=zone, geolocation=DOOR)
    # Granting for the origin replaces its grants: the camera and microphone again, with GPS.
    await field.context.grant_permissions(
        ["geolocation", "camera", "microphone"], origin=server.base
    )
    await login(field, "field.t07", "/field")
    stops = field.locator("[data-test=field-stop]")
    await expect(stops).to_have_count(2)
    await expect(stops.first).to_contain_text("第 1 站")
    await expect(stops.first.locator("[data-test=field-address]")).to_contain_text("高桥镇幸福路")
    await expect(field.locator("[data-test=route-map]")).to_have_attribute("data-mode", "drawing")
    await expect(field.locator("[data-test=map-drawing] circle")).to_have_count(2)
    nav = await stops.first.locator("[data-test=field-nav]").get_attribute("href")
    assert nav and nav.startswith("geo:")
    await shoot(field, "field-day", [TABLET_PORTRAIT, TABLET_LANDSCAPE])
    await in_english_large_text(field, "field-day")

    # Tiles configured but unreachable (no internet at the town centre): Leaflet tries them,
    # then the page falls back to the drawing.
    async def unreachable_tiles(route: Any) -> None:
        resp = await route.fetch()
        body = await resp.json()
        body["tile_url"] = "http://127.0.0.1:9/{z}/{x}/{y}.png"
        await route.fulfill(response=resp, body=json.dumps(body))

    await field.route("**/api/v1/field/route*", unreachable_tiles)
    await field.reload()
    await expect(stops).to_have_count(2)
    await expect(field.locator("[data-test=map-drawing]")).to_be_visible()
    await expect(field.locator("[data-test=route-map]")).to_have_attribute("data-mode", "drawing")
    await field.unroute("**/api/v1/field/route*")

    # Check-in at the first door: the time and the (fake) GPS, audited.
    first = stops.first
    await first.locator("[data-test=field-check-in]").click()
    await expect(first.locator("[data-test=field-checked]")).to_be_visible()
    await expect(first).to_have_attribute("data-checked", "true")
    rows = await sql(server, "SELECT lat, lng, accuracy_m FROM visit_check_in")
    assert rows == [(DOOR["latitude"], DOOR["longitude"], DOOR["accuracy"])]
    audit = await sql(server, "SELECT count(*) FROM audit_log WHERE action = 'field.check_in'")
    assert audit == [(1,)]
    await shoot(field, "field-checked-in")

    # At the home the worker is a service point: the point's page, for the visit's case.
    who = await first.locator(".fd-who strong").inner_text()
    await first.locator("[data-test=field-serve]").click()
    await field.wait_for_url("**/point?visit=*")
    await expect(field.locator("[data-test=home-visit-point]")).to_contain_text(who)
    await expect(field.locator("[data-test=consent]")).to_be_visible()
