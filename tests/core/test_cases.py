"""Cases: opened at a service point, routed to the right window line, with a timeline."""

from __future__ import annotations

from typing import Any

from tests.factories import aged, site_by_code


async def _resident(user: Any) -> int:
    resp = await user.post("/api/v1/residents", json={"name": "李大爷", "id_number": aged(84)})
    return (await resp.json())["id"]


async def test_case_routes_town_item_to_the_town_line(as_user: Any) -> None:
    worker = await as_user("worker")
    point = await site_by_code(worker, "T07-C01")
    item = (await (await worker.get("/api/v1/items", params={"q": "高龄津贴"})).json())[0]
    resp = await worker.post(
        "/api/v1/cases",
        json={
            "item_code": item["code"],
            "site_id": point["id"],
            "resident_id": await _resident(worker),
        },
    )
    assert resp.status == 201, await resp.text()
    case = await resp.json()
    assert case["status"] == "open"
    assert case["resident_name"] == "李大爷"
    assert "*" in case["resident_id_masked"]
    lines = await (
        await worker.get("/api/v1/lines", params={"site_id": str(point["parent_id"])})
    ).json()
    civil = next(ln for ln in lines if ln["department"] == "civil_affairs")
    assert case["line_id"] == civil["id"]
    assert [e["kind"] for e in case["timeline"]] == ["created"]
    assert case["number"].endswith(f"{case['id']:06d}")
    # The clerk of that line sees it.
    clerk = await as_user("clerk")
    seen = await (await clerk.get(f"/api/v1/cases/{case['id']}")).json()
    assert seen["timeline"][0]["data"]["item"] == item["code"]


async def test_district_item_goes_to_the_district_center(as_user: Any) -> None:
    worker = await as_user("worker")
    point = await site_by_code(worker, "T07-C01")
    items = await (
        await worker.get("/api/v1/items", params={"department": "health", "limit": "50"})
    ).json()
    item = next(i for i in items if i["level"] == "district")
    case = await (
        await worker.post("/api/v1/cases", json={"item_code": item["code"], "site_id": point["id"]})
    ).json()
    district = await site_by_code(worker, "D00")
    lines = await (
        await worker.get("/api/v1/lines", params={"site_id": str(district["id"])})
    ).json()
    assert case["line_id"] == next(ln["id"] for ln in lines if ln["department"] == "health")


async def test_case_at_a_site_outside_my_area_is_refused(as_user: Any) -> None:
    worker = await as_user("worker")
    elsewhere = await site_by_code(worker, "T01-C01")
    item = (await (await worker.get("/api/v1/items", params={"q": "高龄"})).json())[0]
    resp = await worker.post(
        "/api/v1/cases", json={"item_code": item["code"], "site_id": elsewhere["id"]}
    )
    assert resp.status == 403
    assert (await resp.json())["error"]["code"] == "forbidden_site"
    assert await (await worker.get("/api/v1/cases")).json() == []


async def test_other_towns_staff_cannot_see_a_case(as_user: Any) -> None:
    worker = await as_user("worker")
    point = await site_by_code(worker, "T07-C01")
    item = (await (await worker.get("/api/v1/items", params={"q": "高龄"})).json())[0]
    case = await (
        await worker.post("/api/v1/cases", json={"item_code": item["code"], "site_id": point["id"]})
    ).json()
    stranger = await as_user("worker.t01-c01")
    assert (await stranger.get(f"/api/v1/cases/{case['id']}")).status == 404
    assert await (await stranger.get("/api/v1/cases")).json() == []
    town_boss = await as_user("supervisor.t07")
    mine = await (await town_boss.get("/api/v1/cases")).json()
    assert [c["id"] for c in mine] == [case["id"]]


async def test_bundle_case_requires_member_item(as_user: Any) -> None:
    worker = await as_user("worker")
    point = await site_by_code(worker, "T07-C01")
    bundle = (await (await worker.get("/api/v1/bundles")).json())[0]
    member = bundle["items"][0]["code"]
    ok = await worker.post(
        "/api/v1/cases",
        json={"item_code": member, "bundle_code": bundle["code"], "site_id": point["id"]},
    )
    assert ok.status == 201
    outsider = next(
        i["code"]
        for i in await (await worker.get("/api/v1/items", params={"limit": "100"})).json()
        if i["code"] not in {x["code"] for x in bundle["items"]}
    )
    bad = await worker.post(
        "/api/v1/cases",
        json={"item_code": outsider, "bundle_code": bundle["code"], "site_id": point["id"]},
    )
    assert bad.status == 422
    assert (await bad.json())["error"]["code"] == "item.not_in_bundle"


async def test_unknown_item_site_or_resident_is_404(as_user: Any) -> None:
    worker = await as_user("worker")
    point = await site_by_code(worker, "T07-C01")
    for body in (
        {"item_code": "NOPE-1", "site_id": point["id"]},
        {"item_code": "MZ-001", "site_id": 2_000_000_000},
        {"item_code": "MZ-001", "site_id": point["id"], "resident_id": 2_000_000_000},
    ):
        resp = await worker.post("/api/v1/cases", json=body)
        assert resp.status == 404, body
    assert await (await worker.get("/api/v1/cases")).json() == []


async def test_a_case_for_a_resident_elsewhere_is_refused_as_unknown(as_user: Any) -> None:
    """A forged resident id (someone registered in another town) is answered like a missing one."""
    stranger = await as_user("worker.t01-c01")
    theirs = await (
        await stranger.post("/api/v1/residents", json={"name": "外镇居民", "id_number": aged(60)})
    ).json()
    worker = await as_user("worker")
    point = await site_by_code(worker, "T07-C01")
    resp = await worker.post(
        "/api/v1/cases",
        json={"item_code": "MZ-001", "site_id": point["id"], "resident_id": theirs["id"]},
    )
    assert resp.status == 404
    assert await (await worker.get("/api/v1/cases")).json() == []
