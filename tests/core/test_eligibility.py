"""Before a number is taken, the tablet hears whether the resident meets the item's rules."""

from __future__ import annotations

from typing import Any

from tests.conftest import User
from tests.factories import aged


async def _resident(worker: User, years: int, seq: int, **extra: Any) -> int:
    point = next(
        s
        for s in await (await worker.get("/api/v1/sites", params={"kind": "community"})).json()
        if s["code"] == "T07-C01"
    )
    body = {"name": f"居民{seq}", "id_number": aged(years, seq), "community_id": point["id"]}
    resp = await worker.post("/api/v1/residents", json={**body, **extra})
    assert resp.status == 201, await resp.text()
    return (await resp.json())["id"]


async def _check(user: User, code: str, resident_id: int) -> Any:
    resp = await user.get(f"/api/v1/items/{code}/eligibility", params={"resident_id": resident_id})
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def test_the_elderly_allowance_says_why_a_young_resident_does_not_qualify(
    as_user: Any,
) -> None:
    worker = await as_user("worker")
    young = await _check(worker, "MZ-004", await _resident(worker, 31, 601))
    assert young["eligible"] is False
    assert [p["code"] for p in young["problems"]] == ["eligibility.too_young"]
    assert "80" in young["problems"][0]["message"] and "31" in young["problems"][0]["message"]
    assert "80" in young["problems"][0]["message_en"]
    old = await _check(worker, "MZ-004", await _resident(worker, 84, 602))
    assert (old["eligible"], old["problems"], old["remote_capable"]) == (True, [], True)


async def test_disability_age_ceiling_and_residence_rules(as_user: Any) -> None:
    worker = await as_user("worker")
    clerk = await as_user("clerk")
    able = await _resident(worker, 40, 603)
    disabled = await _resident(worker, 40, 604, disabled=True)
    assert [p["code"] for p in (await _check(worker, "MZ-009", able))["problems"]] == [
        "eligibility.needs_disability"
    ]
    assert (await _check(worker, "MZ-009", disabled))["eligible"] is True
    # Child rehabilitation: disabled and 17 or under.
    child = await _resident(worker, 12, 605, disabled=True)
    assert (await _check(worker, "CL-007", child))["eligible"] is True
    assert [p["code"] for p in (await _check(worker, "CL-007", disabled))["problems"]] == [
        "eligibility.too_old"
    ]
    # No community on record: the district-residence rule cannot be met.
    resp = await clerk.post("/api/v1/residents", json={"name": "外来", "id_number": aged(85, 606)})
    outsider = (await resp.json())["id"]
    codes = [p["code"] for p in (await _check(clerk, "MZ-004", outsider))["problems"]]
    assert codes == ["eligibility.needs_local_residence"]
    # Items without rules accept everyone.
    assert (await _check(worker, "MZ-001", able))["eligible"] is True


async def test_rules_are_in_the_item_and_checks_stay_in_the_callers_area(as_user: Any) -> None:
    worker = await as_user("worker")
    item = await (await worker.get("/api/v1/items/MZ-004")).json()
    assert item["eligibility"] == {
        "min_age": 80,
        "max_age": None,
        "disability": False,
        "local_residence": True,
    }
    resident = await _resident(worker, 84, 607)
    other_town = await as_user("worker.t01-c01")
    resp = await other_town.get(
        "/api/v1/items/MZ-004/eligibility", params={"resident_id": resident}
    )
    assert resp.status == 404
    resp = await worker.get("/api/v1/items/MZ-004/eligibility", params={"resident_id": 2**31})
    assert resp.status == 422


async def test_the_clerk_sees_the_residents_panel_with_earlier_cases(as_user: Any) -> None:
    """Masked phone and address, the community, and the resident's earlier cases."""
    worker = await as_user("worker")
    point = next(
        s
        for s in await (await worker.get("/api/v1/sites", params={"kind": "community"})).json()
        if s["code"] == "T07-C01"
    )
    rid = await _resident(
        worker, 84, 610, phone="13800138000", address="海川区高桥镇幸福路18号3幢302室"
    )
    made = []
    for code in ("MZ-001", "MZ-004"):
        resp = await worker.post(
            "/api/v1/cases", json={"item_code": code, "site_id": point["id"], "resident_id": rid}
        )
        assert resp.status == 201, await resp.text()
        made.append(await resp.json())
    clerk = await as_user("clerk")
    resp = await clerk.get(f"/api/v1/cases/{made[1]['id']}/resident")
    assert resp.status == 200, await resp.text()
    panel = await resp.json()
    assert (panel["age"], panel["phone_masked"], panel["community_name"]) == (
        84,
        "138****8000",
        point["name"],
    )
    assert panel["address_masked"].endswith("****") and "302" not in panel["address_masked"]
    assert [c["number"] for c in panel["earlier_cases"]] == [made[0]["number"]]
    assert "13800138000" not in await resp.text()
    # Staff who do not serve the case, and residents, never see it.
    for username in ("worker.t01-c01", "expert"):
        other = await as_user(username)
        assert (await other.get(f"/api/v1/cases/{made[1]['id']}/resident")).status == 404


async def test_the_clerk_accepts_a_mismatched_case_with_a_reason_on_the_timeline(
    as_user: Any,
) -> None:
    """A 31-year-old queued for the 80+ allowance: the clerk sees why, and may accept anyway."""
    worker = await as_user("worker")
    point = next(
        s
        for s in await (await worker.get("/api/v1/sites", params={"kind": "community"})).json()
        if s["code"] == "T07-C01"
    )
    made = {}
    for years, seq in ((31, 620), (84, 621)):
        rid = await _resident(worker, years, seq)
        resp = await worker.post(
            "/api/v1/cases",
            json={"item_code": "MZ-004", "site_id": point["id"], "resident_id": rid},
        )
        assert resp.status == 201, await resp.text()
        made[years] = (await resp.json())["id"]
    clerk = await as_user("clerk")
    url = f"/api/v1/cases/{made[31]}/eligibility"
    seen = await (await clerk.get(url)).json()
    assert seen["checked"] is True and seen["accepted"] is None
    assert [(p["item_code"], p["code"]) for p in seen["problems"]] == [
        ("MZ-004", "eligibility.too_young")
    ]
    # The worker who took it sees the mismatch too, but only a clerk accepts it.
    assert (await worker.get(url)).status == 200
    assert (await worker.post(f"{url}/accept", json={"reason": "特殊情况"})).status == 403
    blank = await clerk.post(f"{url}/accept", json={"reason": "  "})
    assert blank.status == 422
    resp = await clerk.post(f"{url}/accept", json={"reason": "民政科已批准特殊困难救助"})
    assert resp.status == 200, await resp.text()
    done = await resp.json()
    assert done["accepted"]["reason"] == "民政科已批准特殊困难救助"
    assert done["accepted"]["rules"] == ["eligibility.too_young"]
    case = await (await clerk.get(f"/api/v1/cases/{made[31]}")).json()
    ev = [e for e in case["timeline"] if e["kind"] == "eligibility.accepted"]
    assert len(ev) == 1
    assert ev[0]["data"] == {
        "reason": "民政科已批准特殊困难救助",
        "rules": ["eligibility.too_young"],
        "items": ["MZ-004"],
    }
    assert (await (await clerk.get(url)).json())["accepted"]["reason"] == "民政科已批准特殊困难救助"
    again = await clerk.post(f"{url}/accept", json={"reason": "再次确认"})
    assert (again.status, (await again.json())["error"]["code"]) == (
        409,
        "eligibility.already_accepted",
    )
    fine = await clerk.post(f"/api/v1/cases/{made[84]}/eligibility/accept", json={"reason": "无需"})
    assert (fine.status, (await fine.json())["error"]["code"]) == (
        409,
        "eligibility.nothing_to_accept",
    )
    # A clerk of another town's line neither sees nor accepts it.
    other = await as_user("worker.t01-c01")
    assert (await other.get(url)).status == 404
