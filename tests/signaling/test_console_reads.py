"""What the consoles read over HTTP: a line's queue, expert skills, and the resident's rating."""

from __future__ import annotations

from typing import Any

from tests.signaling.helpers import gaoqiao_setup, new_resident, take_payload


async def test_clerk_sees_the_waiting_queue_in_call_order(sock: Any, as_user: Any) -> None:
    worker = await sock("worker")
    setup = await gaoqiao_setup(worker.user)
    line_id = setup["line"]["id"]
    young = await worker.ok(
        "ticket:take", take_payload(setup, await new_resident(worker.user, 70, 11))
    )
    old = await worker.ok(
        "ticket:take", take_payload(setup, await new_resident(worker.user, 86, 13))
    )

    clerk = await as_user("clerk")
    r = await clerk.get(f"/api/v1/lines/{line_id}/tickets")
    assert r.status == 200, await r.text()
    queue = await r.json()
    assert [t["id"] for t in queue] == [old["id"], young["id"]]  # 80+ first
    assert [t["position"] for t in queue] == [1, 2]
    assert queue[0]["priority_reason"] == "age80"
    assert (
        queue[0]["resident_id_masked"].startswith("3302") and "*" in queue[0]["resident_id_masked"]
    )

    assert (
        await (await as_user("supervisor.t07")).get(f"/api/v1/lines/{line_id}/tickets")
    ).status == 200
    for username, status in (("worker", 403), ("clerk.t01.m", 404), ("supervisor.t01", 404)):
        r = await (await as_user(username)).get(f"/api/v1/lines/{line_id}/tickets")
        assert r.status == status, (username, r.status)
    assert (await clerk.get("/api/v1/lines/999999/tickets")).status == 404


async def test_expert_skills_with_who_is_online(sock: Any, as_user: Any) -> None:
    clerk = await as_user("clerk")
    before = {s["skill"]: s for s in await (await clerk.get("/api/v1/experts/skills")).json()}
    assert before["社会救助政策"]["experts"] == 2  # expert and expert.cl
    assert before["社会救助政策"]["online"] == 0
    await sock("expert.cl")  # connecting marks the expert available
    after = {s["skill"]: s for s in await (await clerk.get("/api/v1/experts/skills")).json()}
    assert after["社会救助政策"]["online"] == 1 and after["社会救助政策"]["available"] == 1
    assert after["残疾人服务"]["available"] == 1 and after["医保政策"]["online"] == 0
    assert next(iter(after)) in ("社会救助政策", "残疾人服务")  # available skills first
    assert (await (await as_user("worker")).get("/api/v1/experts/skills")).status == 403


async def test_the_resident_rates_a_finished_case_once(sock: Any, as_user: Any) -> None:
    worker, clerk = await sock("worker"), await sock("clerk")
    setup = await gaoqiao_setup(worker.user)
    ticket = await worker.ok("ticket:take", take_payload(setup, await new_resident(worker.user)))
    path = f"/api/v1/cases/{ticket['case_id']}/rating"

    early = await worker.user.post(path, json={"score": 5})
    assert early.status == 409
    assert (await early.json())["error"]["code"] == "case.not_finished"

    await clerk.ok("queue:call_next")
    await worker.ok("ticket:answer", {"ticket_id": ticket["id"]})
    await clerk.ok(
        "ticket:finish", {"ticket_id": ticket["id"], "outcome": "returned", "reason": "缺少证明"}
    )
    for bad in ({"score": 0}, {"score": 6}, {"score": "5"}, {"score": 5, "stars": 5}, {}):
        r = await worker.user.post(path, json=bad)
        assert r.status == 422, bad
    assert (await clerk.user.post(path, json={"score": 1})).status == 403  # not the clerk's to rate
    stranger = await as_user("worker.t01-c01")
    assert (await stranger.post(path, json={"score": 1})).status == 404

    r = await worker.user.post(path, json={"score": 4, "comment": "工作人员很耐心"})
    assert r.status == 201, await r.text()
    assert (await r.json())["score"] == 4
    again = await worker.user.post(path, json={"score": 1})
    assert again.status == 409 and (await again.json())["error"]["code"] == "case.rated"

    case = await (await clerk.user.get(f"/api/v1/cases/{ticket['case_id']}")).json()
    assert case["rating"]["score"] == 4 and case["rating"]["comment"] == "工作人员很耐心"
    assert any(e["kind"] == "rating" and e["data"]["score"] == 4 for e in case["timeline"])
