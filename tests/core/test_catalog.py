"""Catalog: Chinese keyword search ranked by relevance, departments, bundles, nearest hall."""

from __future__ import annotations

from typing import Any

import pytest


async def _search(user: Any, q: str, **params: str) -> list[dict[str, Any]]:
    resp = await user.get("/api/v1/items", params={"q": q, **params})
    assert resp.status == 200, await resp.text()
    return await resp.json()


@pytest.mark.parametrize(
    ("query", "expected_first"),
    [
        ("食品", "食品经营许可"),
        ("高龄", "高龄津贴申领"),
        ("残疾人证", "残疾人证申领"),
        ("居住证", "居住证办理"),
        ("营业执照变更", "营业执照变更登记"),
    ],
)
async def test_keyword_search_finds_the_item_first(
    as_user: Any, query: str, expected_first: str
) -> None:
    worker = await as_user("worker")
    hits = await _search(worker, query)
    assert hits, f"nothing found for {query}"
    assert hits[0]["name"] == expected_first
    scores = [h["score"] for h in hits]
    assert scores == sorted(scores, reverse=True)


async def test_search_by_synonym_keyword_and_by_phrase(as_user: Any) -> None:
    worker = await as_user("worker")
    # "老年人" is not in the item's name, only among its keywords.
    assert "高龄津贴申领" in [h["name"] for h in await _search(worker, "老年人")]
    # A phrase a resident might type, longer than any name: found through its parts.
    assert (await _search(worker, "我想办高龄老人补贴"))[0]["name"] == "高龄津贴申领"


async def test_search_returns_required_materials_in_order(as_user: Any) -> None:
    worker = await as_user("worker")
    item = (await _search(worker, "高龄津贴"))[0]
    names = [m["name"] for m in item["materials"]]
    assert names[:4] == ["申请人身份证", "户口簿", "社会保障卡", "社区（村）证明"]
    id_card = item["materials"][0]
    assert id_card["required"] is True
    assert "image/jpeg" in id_card["accepted_types"]
    assert item["department_name"] == "民政"


async def test_search_with_no_match_is_empty_and_like_wildcards_are_literal(as_user: Any) -> None:
    worker = await as_user("worker")
    assert await _search(worker, "量子计算机") == []
    assert await _search(worker, "%") == []
    assert await _search(worker, "_") == []


async def test_listing_by_department(as_user: Any) -> None:
    worker = await as_user("worker")
    resp = await worker.get("/api/v1/items", params={"department": "market", "limit": "100"})
    items = await resp.json()
    assert len(items) >= 5
    assert {i["department"] for i in items} == {"market"}
    depts = await (await worker.get("/api/v1/departments")).json()
    market = next(d for d in depts if d["code"] == "market")
    assert market["name"] == "市场监管"
    assert market["item_count"] == len(items)


async def test_remote_filter_hides_in_person_items(as_user: Any) -> None:
    worker = await as_user("worker")
    everything = await _search(worker, "结婚")
    remote = await _search(worker, "结婚", remote="true")
    assert any(not i["remote_capable"] for i in everything)
    assert all(i["remote_capable"] for i in remote)


async def test_item_by_code_and_unknown_code(as_user: Any) -> None:
    worker = await as_user("worker")
    first = (await _search(worker, "食品经营许可"))[0]
    resp = await worker.get(f"/api/v1/items/{first['code']}")
    assert (await resp.json())["name"] == "食品经营许可"
    resp = await worker.get("/api/v1/items/NOPE-999")
    assert resp.status == 404
    assert (await resp.json())["error"]["code"] == "not_found"


async def test_bundles_merge_materials(as_user: Any) -> None:
    worker = await as_user("worker")
    bundles = await (await worker.get("/api/v1/bundles")).json()
    assert len(bundles) >= 2
    for b in bundles:
        assert len(b["items"]) >= 2
        all_names = [m["name"] for i in b["items"] for m in i["materials"]]
        assert len(b["materials"]) == len(set(all_names))
        assert b["documents_saved"] == len(all_names) - len(set(all_names))
    one = await (await worker.get(f"/api/v1/bundles/{bundles[0]['code']}")).json()
    assert one["code"] == bundles[0]["code"]


async def test_nearest_hall_ranked_by_distance(as_user: Any) -> None:
    worker = await as_user("worker")
    towns = await (await worker.get("/api/v1/sites", params={"kind": "town"})).json()
    gaoqiao = next(t for t in towns if t["name"] == "高桥镇")
    # A point about 1 km north-east of the 高桥镇 hall.
    lat, lng = gaoqiao["lat"] + 0.006, gaoqiao["lng"] + 0.006
    resp = await worker.get("/api/v1/sites/nearest", params={"lat": str(lat), "lng": str(lng)})
    near = await resp.json()
    assert near[0]["site"]["name"] == "高桥镇"
    assert 0.5 < near[0]["distance_km"] < 1.5
    distances = [n["distance_km"] for n in near]
    assert distances == sorted(distances)
    assert {n["site"]["kind"] for n in near} <= {"town", "district"}


async def test_nearest_rejects_impossible_coordinates(as_user: Any) -> None:
    worker = await as_user("worker")
    resp = await worker.get("/api/v1/sites/nearest", params={"lat": "120", "lng": "121"})
    assert resp.status == 422
    resp = await worker.get("/api/v1/sites/nearest", params={"lat": "north", "lng": "121"})
    assert resp.status == 422


async def test_window_lines_of_a_town(as_user: Any) -> None:
    worker = await as_user("worker")
    towns = await (await worker.get("/api/v1/sites", params={"kind": "town"})).json()
    gaoqiao = next(t for t in towns if t["name"] == "高桥镇")
    lines = await (await worker.get("/api/v1/lines", params={"site_id": str(gaoqiao["id"])})).json()
    names = {ln["name"] for ln in lines}
    assert {"高桥镇·民政", "高桥镇·人力社保", "高桥镇·医疗保障", "高桥镇·户籍"} <= names
    assert "高桥镇·市场监管" in names
    civil = next(ln for ln in lines if ln["department"] == "civil_affairs")
    assert civil["ticket_prefix"] == "M"
