"""The checklist during a call: the clerk sees documents arrive, accepts, rejects, asks for more."""

from __future__ import annotations

from typing import Any

import pytest

from tests.uploads.helpers import call_for_case, jpeg, pdf, upload

ID_CARD = "申请人身份证"
HUKOU = "户口簿"
PROOF = "社区（村）证明"


async def test_clerk_reviews_in_the_call_and_completion_waits_for_the_checklist(
    sock: Any,
) -> None:
    worker, clerk = await sock("worker"), await sock("clerk")
    env = await call_for_case(worker, clerk)
    case_id, specs = env["case_id"], env["specs"]
    assert set(env["required"]) == {ID_CARD, HUKOU, PROOF}

    # The clerk asks for the household register; the point's tablet hears it.
    r = await clerk.user.post(
        f"/api/v1/cases/{case_id}/checklist/{specs[HUKOU]}/request", json={"note": "户主页和本人页"}
    )
    assert r.status == 200, await r.text()
    assert (await r.json())["state"] == "requested"
    asked = await worker.wait("material:requested")
    assert asked == {
        "call_id": env["call_id"],
        "case_id": case_id,
        "spec_id": specs[HUKOU],
        "name": HUKOU,
        "note": "户主页和本人页",
    }

    card = await upload(worker.user, case_id, specs[ID_CARD], jpeg(), "image/jpeg")
    hukou = await upload(worker.user, case_id, specs[HUKOU], pdf(), "application/pdf")
    seen = await clerk.wait("material:uploaded", lambda d: d["material"]["id"] == hukou["id"])
    assert seen["call_id"] == env["call_id"] and seen["material"]["name"] == HUKOU
    assert {d["material"]["id"] for d in clerk.heard["material:uploaded"]} == {
        card["id"],
        hukou["id"],
    }

    # Accept one, reject the other (a reason is required).
    ok = await clerk.user.post(
        f"/api/v1/materials/{card['id']}/review", json={"decision": "accept"}
    )
    assert (await ok.json())["status"] == "accepted"
    no_reason = await clerk.user.post(
        f"/api/v1/materials/{hukou['id']}/review", json={"decision": "reject"}
    )
    assert no_reason.status == 422
    assert (await no_reason.json())["error"]["code"] == "material.reason_required"
    rej = await clerk.user.post(
        f"/api/v1/materials/{hukou['id']}/review",
        json={"decision": "reject", "reason": "缺少本人页"},
    )
    assert (await rej.json())["status"] == "rejected"
    told = await worker.wait("material:reviewed", lambda d: d["material"]["id"] == hukou["id"])
    assert told["material"]["reason"] == "缺少本人页"

    # Completing now fails and names what is missing or rejected.
    err = await clerk.err(
        "ticket:finish", {"ticket_id": env["ticket"]["id"], "outcome": "completed"}
    )
    assert err["code"] == "case.materials_incomplete"
    assert HUKOU in err["message"] and PROOF in err["message"] and ID_CARD not in err["message"]
    assert {(d["name"], d["state"]) for d in err["details"]} == {
        (HUKOU, "rejected"),
        (PROOF, "missing"),
    }

    # The point sends the register again: the rejected copy is superseded.
    again = await upload(worker.user, case_id, specs[HUKOU], pdf(pages=2), "application/pdf")
    checklist = await (await worker.user.get(f"/api/v1/cases/{case_id}/checklist")).json()
    item = next(i for i in checklist["items"] if i["name"] == HUKOU)
    assert item["state"] == "uploaded"
    assert [m["id"] for m in item["materials"]] == [again["id"]]
    # Pending review still blocks completion.
    err = await clerk.err(
        "ticket:finish", {"ticket_id": env["ticket"]["id"], "outcome": "completed"}
    )
    assert {(d["name"], d["state"]) for d in err["details"]} == {
        (HUKOU, "uploaded"),
        (PROOF, "missing"),
    }
    proof = await upload(worker.user, case_id, specs[PROOF], jpeg(), "image/jpeg")
    for m in (again, proof):
        r = await clerk.user.post(
            f"/api/v1/materials/{m['id']}/review", json={"decision": "accept"}
        )
        assert r.status == 200
    checklist = await (await worker.user.get(f"/api/v1/cases/{case_id}/checklist")).json()
    assert checklist["complete"] and checklist["missing"] == []

    done = await clerk.ok(
        "ticket:finish", {"ticket_id": env["ticket"]["id"], "outcome": "completed"}
    )
    assert done["outcome"] == "completed"
    case = await (await clerk.user.get(f"/api/v1/cases/{case_id}")).json()
    kinds = [e["kind"] for e in case["timeline"]]
    for kind in (
        "material.requested",
        "material.upload",
        "material.accepted",
        "material.rejected",
        "status.completed",
    ):
        assert kind in kinds, kinds
    # A closed case's materials are settled.
    late = await worker.user.post(
        f"/api/v1/cases/{case_id}/uploads",
        json={"spec_id": specs[ID_CARD], "content_type": "image/jpeg", "size": 10},
    )
    assert late.status == 409 and (await late.json())["error"]["code"] == "case.closed"
    r = await clerk.user.post(
        f"/api/v1/materials/{card['id']}/review", json={"decision": "reject", "reason": "x"}
    )
    assert r.status == 409


async def test_only_a_clerk_of_the_case_reviews(sock: Any, as_user: Any) -> None:
    worker, clerk = await sock("worker"), await sock("clerk")
    env = await call_for_case(worker, clerk)
    m = await upload(worker.user, env["case_id"], env["specs"][ID_CARD], jpeg(), "image/jpeg")
    path = f"/api/v1/materials/{m['id']}/review"
    # The worker cannot accept their own upload; a clerk of another town cannot see it.
    own = await worker.user.post(path, json={"decision": "accept"})
    assert own.status == 403
    other = await as_user("clerk.t01.m")
    r = await other.post(path, json={"decision": "accept"})
    assert r.status == 404
    checklist = await (await worker.user.get(f"/api/v1/cases/{env['case_id']}/checklist")).json()
    item = next(i for i in checklist["items"] if i["name"] == ID_CARD)
    assert item["materials"][0]["status"] == "pending"


# The gate reads only the database: one object store is enough.
@pytest.mark.parametrize("storage", ["local"], indirect=True)
async def test_finishing_is_refused_while_a_required_material_awaits_review(
    sock: Any, storage: str
) -> None:
    worker, clerk = await sock("worker"), await sock("clerk")
    env = await call_for_case(worker, clerk)
    case_id, specs, ticket_id = env["case_id"], env["specs"], env["ticket"]["id"]
    uploaded = {
        name: await upload(worker.user, case_id, specs[name], jpeg(), "image/jpeg")
        for name in (ID_CARD, HUKOU, PROOF)
    }
    for name in (ID_CARD, PROOF):
        r = await clerk.user.post(
            f"/api/v1/materials/{uploaded[name]['id']}/review", json={"decision": "accept"}
        )
        assert r.status == 200, await r.text()

    # Every required document is there, one not yet looked at: neither completing nor
    # accepting for approval goes through, and the refusal names the one waiting.
    for outcome in ("completed", "accepted"):
        err = await clerk.err("ticket:finish", {"ticket_id": ticket_id, "outcome": outcome})
        assert err["code"] == "case.materials_incomplete", (outcome, err)
        assert err["details"] == [{"spec_id": specs[HUKOU], "name": HUKOU, "state": "uploaded"}]
        assert HUKOU in err["message"] and ID_CARD not in err["message"]
    case = await (await clerk.user.get(f"/api/v1/cases/{case_id}")).json()
    assert case["status"] == "in_service"
    assert "case:finished" not in worker.heard

    r = await clerk.user.post(
        f"/api/v1/materials/{uploaded[HUKOU]['id']}/review", json={"decision": "accept"}
    )
    assert r.status == 200
    done = await clerk.ok("ticket:finish", {"ticket_id": ticket_id, "outcome": "completed"})
    assert done["outcome"] == "completed"


def test_a_material_awaiting_review_is_not_done() -> None:
    from uploads.checklist import item_state
    from uploads.models import ItemState, Material, MaterialStatus

    def m(status: MaterialStatus) -> Material:
        return Material(status=status)

    accepted, pending = m(MaterialStatus.accepted), m(MaterialStatus.pending)
    rejected = m(MaterialStatus.rejected)
    assert item_state([accepted], False) == (ItemState.accepted, "")
    assert item_state([pending], False)[0] is ItemState.uploaded
    assert item_state([accepted, pending], False)[0] is ItemState.uploaded
    assert item_state([pending], True)[0] is ItemState.uploaded
    assert item_state([rejected, pending], False)[0] is ItemState.uploaded
    assert item_state([m(MaterialStatus.superseded)], False)[0] is ItemState.missing


# The checklist reads only the database: one object store is enough.
@pytest.mark.parametrize("storage", ["local"], indirect=True)
async def test_completion_is_refused_while_a_material_awaits_review(
    client: Any, as_user: Any, storage: str
) -> None:
    from core.errors import Invalid
    from core.models import Case
    from httpapi import keys
    from tests.uploads.helpers import open_case
    from uploads.checklist import require_complete

    worker, clerk = await as_user("worker"), await as_user("clerk")
    c = await open_case(worker)
    case_id = c["case"]["id"]
    waiting = None
    for name in (ID_CARD, HUKOU, PROOF):
        made = await upload(worker, case_id, c["specs"][name], jpeg(64, 48), "image/jpeg")
        if name == HUKOU:
            waiting = made  # uploaded, never reviewed
            continue
        r = await clerk.post(f"/api/v1/materials/{made['id']}/review", json={"decision": "accept"})
        assert r.status == 200, await r.text()
    assert waiting is not None and waiting["status"] == "pending"

    db = client.app[keys.DB]
    async with db.session() as s:
        case = await s.get(Case, case_id)
        assert case is not None
        with pytest.raises(Invalid) as refused:
            await require_complete(s, case)
    err = refused.value
    assert err.code == "case.materials_incomplete"
    assert err.details == [{"spec_id": c["specs"][HUKOU], "name": HUKOU, "state": "uploaded"}]
    assert HUKOU in err.message("zh")

    ok = await clerk.post(f"/api/v1/materials/{waiting['id']}/review", json={"decision": "accept"})
    assert ok.status == 200
    async with db.session() as s:
        case = await s.get(Case, case_id)
        assert case is not None
        await require_complete(s, case)  # every required line accepted: it passes
