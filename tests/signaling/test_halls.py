"""The nearest hall for an item: ranked by the trip there plus the live wait of the line that
serves the item, with both shown."""

from __future__ import annotations

from typing import Any

from core.settings import Settings
from signaling.halls import TRAVEL_MINUTES_PER_KM
from tests.signaling.helpers import gaoqiao_setup, measured_handling, take_payload


async def _halls(user: Any, code: str, **params: Any) -> list[dict[str, Any]]:
    resp = await user.get(
        f"/api/v1/items/{code}/halls", params={k: str(v) for k, v in params.items()}
    )
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def test_a_short_queue_a_little_further_away_ranks_first(
    sock: Any, settings: Settings
) -> None:
    worker = await sock("worker")
    setup = await gaoqiao_setup(worker.user)
    point = setup["point"]
    # No clerk online anywhere: every wait is unknown, so the halls go by distance.
    before = await _halls(worker.user, "MZ-004", site_id=point["id"])
    assert [h["wait_seconds"] for h in before] == [None] * len(before)
    assert [h["distance_km"] for h in before] == sorted(h["distance_km"] for h in before)
    home, neighbour = before[0], before[1]
    assert home["site"]["id"] == point["parent_id"]  # the point's own town hall
    assert home["line_id"] == setup["line"]["id"]

    # The home line has a clerk and four numbers waiting; the neighbour a clerk and none;
    # both have a measured handling time.
    url = settings.effective_database_url
    await measured_handling(url, seconds=480)
    await measured_handling(
        url, seconds=480, line_code=f"{neighbour['site']['code']}-civil_affairs"
    )
    clerk = await sock("clerk")
    await clerk.ok("presence:set", {"status": "available"})
    other = await sock(f"clerk.{neighbour['site']['code'].lower()}.m")
    await other.ok("presence:set", {"status": "available"})
    for _ in range(4):
        await worker.ok("ticket:take", take_payload(setup, None))

    after = await _halls(worker.user, "MZ-004", site_id=point["id"])
    by_site = {h["site"]["id"]: h for h in after}
    mine, near = by_site[home["site"]["id"]], by_site[neighbour["site"]["id"]]
    assert (mine["waiting"], mine["clerks_online"]) == (4, 1)
    assert (near["waiting"], near["clerks_online"]) == (0, 1)
    assert mine["wait_seconds"] == 5 * near["wait_seconds"]  # the fifth in line, one clerk
    for h in (mine, near):
        travel = h["distance_km"] * TRAVEL_MINUTES_PER_KM
        assert abs(h["total_minutes"] - (travel + h["wait_seconds"] / 60)) <= 1, h
    # The trip to the neighbour costs less than the queue at home.
    assert after[0]["site"]["id"] == neighbour["site"]["id"], after
    assert after[1]["site"]["id"] == home["site"]["id"], after
    # Halls with nobody online come after every hall with a known wait.
    known = [h["wait_seconds"] is not None for h in after]
    assert known == sorted(known, reverse=True)

    # From a coordinate (a resident at home) as from a point; neither is refused.
    site = await (await worker.user.get(f"/api/v1/sites/{point['id']}")).json()
    same = await _halls(worker.user, "MZ-004", lat=site["lat"], lng=site["lng"])
    assert [h["site"]["id"] for h in same] == [h["site"]["id"] for h in after]
    resp = await worker.user.get("/api/v1/items/MZ-004/halls")
    assert resp.status == 422 and (await resp.json())["error"]["code"] == "halls.where"
    resp = await worker.user.get("/api/v1/items/NOPE-1/halls", params={"site_id": point["id"]})
    assert resp.status == 404
