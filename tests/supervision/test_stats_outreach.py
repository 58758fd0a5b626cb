"""Statistics of the outreach half, read live: home-service requests and visits per community,
and licence-expiry reminders, each kept to the supervisor's area."""

from __future__ import annotations

import datetime as dt
from typing import Any

from outreach import reminders
from tests.factories import site_by_code
from tests.outreach.home_helpers import client, created, register, sms, today  # noqa: F401
from tests.outreach.licence_fixtures import MORNING, TODAY, Env, env  # noqa: F401


async def stats(user: Any, day: dt.date, **params: Any) -> dict[str, Any]:
    query = {"period": "custom", "start": day.isoformat(), "end": day.isoformat(), **params}
    resp = await user.get("/api/v1/statistics", params={k: str(v) for k, v in query.items()})
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def test_home_requests_are_counted_per_community_of_the_area(
    client: Any,  # noqa: F811
    as_user: Any,
) -> None:
    operator = await as_user("operator")
    for seq, community in ((811, "T07-C01"), (813, "T07-C01"), (815, "T07-C02")):
        rid = await register(operator, 82, seq, community=community)
        await created(operator, rid)
    town = await as_user("supervisor.t07")
    figures = (await stats(town, today()))["home_visits"]
    assert figures["requests"] == 3
    c01, c02 = [await site_by_code(town, c) for c in ("T07-C01", "T07-C02")]
    # Busiest community first, each named as the sites are.
    assert [(c["name"], c["requests"]) for c in figures["by_community"]] == [
        (c01["name"], 2),
        (c02["name"], 1),
    ]
    # Another town's supervisor sees none of them; a line filter says it does not apply.
    other = await as_user("supervisor.t01")
    assert (await stats(other, today()))["home_visits"]["requests"] == 0
    lines = await (await town.get("/api/v1/statistics/options")).json()
    by_line = await stats(town, today(), line_id=lines["lines"][0]["id"])
    assert by_line["home_visits"]["available"] is False


async def test_expiry_reminders_are_counted_for_the_area_of_their_register(
    env: Env,  # noqa: F811
    as_user: Any,
) -> None:
    kind = await env.kind()
    holder = await env.holder()
    await env.licence(holder, kind, TODAY + dt.timedelta(days=30))
    await env.licence(holder, kind, TODAY + dt.timedelta(days=7))
    done = await reminders.daily_run(env.db, settings=env.settings, sms=env.sms, now=MORNING)
    assert done["queued"] == 2
    town = await as_user("supervisor.t07")
    figures = (await stats(town, TODAY))["reminders"]
    assert (figures["planned"], figures["queued"], figures["failed"]) == (2, 2, 0)
    assert (await stats(town, TODAY + dt.timedelta(days=1)))["reminders"]["queued"] == 0
    other = await as_user("supervisor.t01")
    assert (await stats(other, TODAY))["reminders"]["queued"] == 0
    # They are the issuing office's: an item filter does not break them down.
    items = await (await town.get("/api/v1/statistics/options")).json()
    by_item = await stats(town, TODAY, item_id=items["items"][0]["id"])
    assert by_item["reminders"]["available"] is False
