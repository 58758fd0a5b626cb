"""A supervisor's board holds the lines of their area: a town's head sees the town's lines,
the district's supervisor every line; a line elsewhere cannot even be watched."""

from __future__ import annotations

from typing import Any


async def test_a_town_supervisor_sees_only_the_towns_lines(sock: Any, as_user: Any) -> None:
    town = await as_user("supervisor.t07")
    district = await as_user("supervisor")
    everything = await (await town.get("/api/v1/lines")).json()  # the public list
    mine = await (await town.get("/api/v1/lines", params={"mine": "true"})).json()
    assert mine and len(mine) < len(everything)
    assert all(ln["code"].startswith("T07-") for ln in mine), [ln["code"] for ln in mine]
    all_of_district = await (await district.get("/api/v1/lines", params={"mine": "true"})).json()
    assert len(all_of_district) == len(everything)

    head = await sock("supervisor.t07")
    elsewhere = next(ln for ln in everything if not ln["code"].startswith("T07-"))
    err = await head.err("line:watch", {"line_ids": [mine[0]["id"], elsewhere["id"]]})
    assert err["code"] == "not_found"
    snap = await head.ok("line:watch", {"line_ids": [ln["id"] for ln in mine]})
    assert [s["line_id"] for s in snap] == [ln["id"] for ln in mine]
    # The district's supervisor may watch any line.
    boss = await sock("supervisor")
    assert len(await boss.ok("line:watch", {"line_ids": [elsewhere["id"]]})) == 1
