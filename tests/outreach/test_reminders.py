"""Expiry reminders on SQLite and PostgreSQL: the policy, quiet hours, renewals, opt-outs, the
unique key, two nodes at once, delivery reports and the counts per period."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from typing import Any

import pytest
from sqlalchemy import update
from sqlmodel import select

from core.db import Database
from core.jobs import Jobs, Status
from core.models import Case, CaseStatus, ServiceItem
from outreach import licences, reminders, sms
from outreach.models import Delivery, Licence, SmsOutbox
from tests.outreach.licence_fixtures import MORNING, PHONE, TODAY, Env, env, local

__all__ = ["env"]


async def run(e: Env, now: dt.datetime, db: Database | None = None) -> dict[str, Any]:
    return await reminders.daily_run(db or e.db, settings=e.settings, sms=e.sms, now=now)


async def planned(e: Env) -> list[tuple[Any, ...]]:
    return await e.rows(
        "SELECT licence_id, offset_days, due_on, status, reason, sms_key "
        "FROM licence_reminder ORDER BY licence_id, offset_days"
    )


async def outbox(e: Env) -> list[tuple[Any, ...]]:
    return await e.rows(
        "SELECT key, phone, kind, params FROM sms_outbox "
        "WHERE kind = 'reminder.expiry' ORDER BY key"
    )


def days(n: int) -> dt.date:
    return TODAY + dt.timedelta(days=n)


async def test_the_policy_sends_each_reminder_on_its_day(env: Env) -> None:
    kind = await env.kind()
    holder = await env.holder()
    early, month, week, late, none = [
        await env.licence(holder, kind, days(d), number=f"N{d}") for d in (90, 30, 7, -1, 45)
    ]
    done = await run(env, MORNING)
    assert done["planned"] == 4 and done["queued"] == 4
    rows = await planned(env)
    assert [(r[0], r[1]) for r in rows] == [
        (early.id, -90),
        (month.id, -30),
        (week.id, -7),
        (late.id, 1),
    ]
    assert all(str(r[2]) == TODAY.isoformat() for r in rows)  # each is due today
    assert {r[3] for r in rows} == {"queued"}
    assert none.id not in {r[0] for r in rows}
    sent = await outbox(env)
    assert [s[1] for s in sent] == [PHONE] * 4
    params = [p if isinstance(p, dict) else json.loads(p) for *_, p in sent]
    assert sorted(p["when"] for p in params) == sorted(
        ["还有90天到期", "还有30天到期", "还有7天到期", "已过期1天"]
    )
    assert all(p["link"].startswith("/resident/l/") for p in params)
    assert all(p["licence"] == "证照TST" for p in params)
    # Each reminder names its message: the outbox key, where its delivery report lands.
    assert sorted(r[5] for r in rows) == sorted(s[0] for s in sent)


async def test_running_twice_queues_nothing_twice(env: Env) -> None:
    kind = await env.kind()
    holder = await env.holder()
    await env.licence(holder, kind, days(30))
    first = await run(env, MORNING)
    again = await run(env, MORNING + dt.timedelta(hours=3))
    assert (first["planned"], first["queued"]) == (1, 1)
    assert (again["planned"], again["queued"]) == (0, 0)
    assert len(await planned(env)) == 1 and len(await outbox(env)) == 1


async def test_two_nodes_running_at_the_same_moment_queue_each_reminder_once(
    env: Env, db_url: str
) -> None:
    """Both nodes run the whole day's work at once (as if the runner let them): the unique key
    and the locked dispatch still give one reminder and one message each."""
    kind = await env.kind()
    for i in range(30):
        holder = await env.holder(phone=f"1390013{i:04d}")
        await env.licence(holder, kind, days((-90, -30, -7, 1)[i % 4] * -1))
    other = Database(db_url)
    try:
        a, b = await asyncio.gather(run(env, MORNING), run(env, MORNING, other))
    finally:
        await other.dispose()
    assert a["planned"] + b["planned"] == 30
    assert a["queued"] + b["queued"] == 30
    assert len(await planned(env)) == 30 and len(await outbox(env)) == 30


async def test_the_daily_job_runs_once_on_two_runners(env: Env, db_url: str) -> None:
    kind = await env.kind()
    await env.licence(await env.holder(), kind, days(7))
    other = Database(db_url)
    try:
        runners = []
        for node, database in (("a", env.db), ("b", other)):
            jobs = Jobs(database, node_id=node, clock=lambda: MORNING)
            reminders.register_jobs(jobs, settings=env.settings, sms=lambda: env.sms)
            runners.append(jobs)
        out = await asyncio.gather(*(j.run_once(reminders.DAILY) for j in runners))
    finally:
        await other.dispose()
    statuses = sorted(str(o.status) for o in out)
    assert Status.finished in [o.status for o in out] and len(statuses) == 2
    finished = next(o for o in out if o.status is Status.finished)
    assert finished.outcome["planned"] == 1 and finished.outcome["queued"] == 1
    assert len(await outbox(env)) == 1


async def test_quiet_hours_hold_reminders_until_eight(env: Env) -> None:
    kind = await env.kind()
    await env.licence(await env.holder(), kind, days(30))
    night = local(TODAY, 22, 30)
    done = await run(env, night)
    assert done == {**done, "planned": 1, "queued": 0, "held": True}
    [row] = await env.rows("SELECT status, send_after FROM licence_reminder")
    assert row[0] == "scheduled"
    held = await reminders.dispatch(
        env.db, settings=env.settings, sms=env.sms, now=local(days(1), 7, 59)
    )
    assert held.held and held.queued == 0 and await outbox(env) == []
    sent = await reminders.dispatch(
        env.db, settings=env.settings, sms=env.sms, now=local(days(1), 8, 0)
    )
    assert sent.queued == 1 and len(await outbox(env)) == 1


def test_quiet_hours_span_midnight(env: Env) -> None:
    s = env.settings
    assert reminders.in_quiet_hours(local(TODAY, 21, 0), s)
    assert reminders.in_quiet_hours(local(TODAY, 3, 0), s)
    assert not reminders.in_quiet_hours(local(TODAY, 8, 0), s)
    assert not reminders.in_quiet_hours(local(TODAY, 20, 59), s)
    assert reminders.send_time(local(TODAY, 23, 0), s) == local(days(1), 8, 0)
    assert reminders.send_time(local(TODAY, 6, 0), s) == local(TODAY, 8, 0)
    assert reminders.send_time(MORNING, s) == MORNING


async def test_a_renewed_licence_gets_no_more_reminders(env: Env) -> None:
    kind = await env.kind()
    holder = await env.holder()
    old = await env.licence(holder, kind, days(30))
    await run(env, local(TODAY, 22, 0))  # planned, held over the night
    new = await env.licence(holder, kind, days(5 * 365))
    async with env.db.session() as session:
        assert await licences.renew_older(session, pairs={(holder.id, kind)}, now=MORNING) == 1
        await session.commit()
    [row] = await env.rows("SELECT status, reason FROM licence_reminder")
    assert tuple(row) == ("cancelled", "renewed")
    assert (await run(env, local(days(1), 8, 0)))["queued"] == 0
    # Its later reminders are not even planned.
    assert (await run(env, local(days(23), 9, 0)))["planned"] == 0
    async with env.db.session() as session:
        renewed = await session.get(Licence, old.id)
        assert renewed is not None and renewed.status == "renewed" and renewed.renewed_by == new.id
    assert await outbox(env) == []


async def test_a_completed_case_issues_a_licence_that_renews_the_old_one(env: Env) -> None:
    kind = await env.kind()
    holder = await env.holder()
    old = await env.licence(holder, kind, days(20))
    await env.rows("UPDATE service_item SET licence_type_id = :k WHERE code = 'SJ-003'", k=kind)
    case_id = await _completed_case(env, holder.id or 0, "SJ-003")
    for _ in range(2):  # idempotent: any node may run it again
        async with env.db.session() as session:
            made = await licences.issue_from_cases(session, settings=env.settings, now=MORNING)
            await session.commit()
    rows = await env.rows(
        "SELECT id, number, status, source, issued_on, expires_on FROM licence "
        "WHERE resident_id = :r ORDER BY id",
        r=holder.id,
    )
    assert len(rows) == 2 and made == {"issued": 0, "renewed": 0}
    issued = rows[1]
    assert (issued[2], issued[3]) == ("active", "case")
    assert str(issued[5]) == (TODAY.replace(year=TODAY.year + 5)).isoformat()  # 60 months
    assert rows[0][0] == old.id and rows[0][2] == "renewed"
    events = await env.rows(
        "SELECT kind FROM case_event WHERE case_id = :c AND kind = 'licences.issued'", c=case_id
    )
    assert len(events) == 1


async def _completed_case(env: Env, resident_id: int, item_code: str) -> int:
    async with env.db.session() as session:
        item = (await session.exec(select(ServiceItem).where(ServiceItem.code == item_code))).one()
        case = Case(
            number=f"C{resident_id}",
            item_id=item.id or 0,
            resident_id=resident_id,
            site_id=env.community_id,
            status=CaseStatus.completed,
            closed_at=MORNING - dt.timedelta(minutes=5),
        )
        session.add(case)
        await session.commit()
        return case.id or 0


async def test_catch_up_days_send_a_missed_reminder_but_not_an_old_one(env: Env) -> None:
    kind = await env.kind()
    holder = await env.holder()
    missed = await env.licence(holder, kind, days(28))  # its T-30 was two days ago
    await env.licence(holder, kind, days(25))  # five days ago: past the catch-up
    await run(env, MORNING)
    rows = await planned(env)
    assert [(r[0], r[1], str(r[2])) for r in rows] == [(missed.id, -30, days(-2).isoformat())]


async def test_stopping_one_type_or_every_type(env: Env) -> None:
    food = await env.kind("TSTF")
    permit = await env.kind("TSTP", (-30, -7, 1))
    holder = await env.holder()
    await env.licence(holder, food, days(30))
    await env.licence(holder, permit, days(30))
    async with env.db.session() as session:
        await licences.stop(
            session, resident_ids=[holder.id or 0], type_id=food, source="page", now=MORNING
        )
        await session.commit()
    done = await run(env, MORNING)
    assert done["planned"] == 1  # only the residence permit's
    async with env.db.session() as session:
        await licences.stop(
            session, resident_ids=[holder.id or 0], type_id=None, source="page", now=MORNING
        )
        await session.commit()
    assert (await run(env, MORNING + dt.timedelta(days=1)))["planned"] == 0
    async with env.db.session() as session:
        await licences.restart(session, resident_id=holder.id or 0, type_id=None)
        await licences.restart(session, resident_id=holder.id or 0, type_id=food)
        await session.commit()
    # Back on: the food licence's T-30, a day late, is within the catch-up days.
    assert (await run(env, MORNING + dt.timedelta(days=1)))["planned"] == 1


async def test_a_stop_after_planning_cancels_what_is_not_sent(env: Env) -> None:
    kind = await env.kind()
    holder = await env.holder()
    await env.licence(holder, kind, days(30))
    await run(env, local(TODAY, 23, 0))
    async with env.db.session() as session:
        cancelled = await licences.stop(
            session, resident_ids=[holder.id or 0], type_id=kind, source="page", now=MORNING
        )
        await session.commit()
    assert cancelled == 1
    [row] = await env.rows("SELECT status, reason FROM licence_reminder")
    assert tuple(row) == ("cancelled", "opted_out")


async def test_the_unsubscribe_keyword_stops_every_reminder(env: Env) -> None:
    kind = await env.kind()
    holder = await env.holder(phone="13700137000")
    other = await env.holder(phone="13600136000")
    await env.licence(holder, kind, days(30))
    await env.licence(other, kind, days(30))
    async with env.db.session() as session:
        assert await sms.reply(
            session, phone="13700137000", text=" TD ", opt_out=licences.opt_out_phone
        )
        assert await licences.opt_out_phone(session, phone="+86 137 0013 7000") == 1
        assert await licences.opt_out_phone(session, phone="8613700137000") == 1
        assert await licences.opt_out_phone(session, phone="13500135000") == 0  # nobody's
        assert await licences.opt_out_phone(session, phone="not a phone") == 0
        await session.commit()
    done = await run(env, MORNING)
    assert done["planned"] == 1
    [(resident_id,)] = await env.rows(
        "SELECT l.resident_id FROM licence_reminder r JOIN licence l ON l.id = r.licence_id"
    )
    assert resident_id == other.id
    stops = await env.rows(
        "SELECT source, type_id FROM reminder_opt_out WHERE resident_id = :r", r=holder.id
    )
    assert [tuple(s) for s in stops] == [("sms", None)]


async def test_a_holder_without_a_phone_is_skipped_and_counted(env: Env) -> None:
    kind = await env.kind()
    await env.licence(await env.holder(phone=""), kind, days(7))
    done = await run(env, MORNING)
    assert (done["planned"], done["queued"], done["no_phone"]) == (1, 0, 1)
    [row] = await env.rows("SELECT status, reason FROM licence_reminder")
    assert tuple(row) == ("cancelled", "no_phone")


async def test_delivery_reports_show_on_the_reminder_and_in_the_counts(env: Env) -> None:
    kind = await env.kind()
    holder = await env.holder()
    first = await env.licence(holder, kind, days(30))
    second = await env.licence(holder, kind, days(7))
    await run(env, MORNING)
    [(key,)] = await env.rows(
        "SELECT sms_key FROM licence_reminder WHERE licence_id = :l", l=first.id
    )
    async with env.db.session() as session:
        await session.exec(
            update(SmsOutbox)  # type: ignore[call-overload]
            .where(SmsOutbox.key == key)
            .values(delivery=Delivery.delivered, delivered_at=MORNING + dt.timedelta(minutes=1))
        )
        await session.commit()
    async with env.db.session() as session:
        shown = await licences.reminders_of(session, [first.id or 0, second.id or 0])
        start, end = local(TODAY, 0, 0), local(days(1), 0, 0)
        counts = await reminders.counts(session, start=start, end=end)
        elsewhere = await reminders.counts(session, start=start, end=end, site_ids={0})
    [r1], [r2] = shown[first.id or 0], shown[second.id or 0]
    assert (r1.sms_status, r1.delivery) == ("sent", "delivered")
    assert (r2.sms_status, r2.delivery) == ("sent", None)
    assert (counts.planned, counts.queued, counts.sent, counts.delivered) == (2, 2, 2, 1)
    assert [(t.type_id, t.queued) for t in counts.by_type] == [(kind, 2)]
    assert elsewhere.planned == 0
    later = await _counts(env, local(days(1), 0, 0), local(days(2), 0, 0))
    assert later.planned == 0 and later.queued == 0


async def _counts(env: Env, start: dt.datetime, end: dt.datetime) -> Any:
    async with env.db.session() as session:
        return await reminders.counts(session, start=start, end=end)


async def test_a_policy_change_applies_to_the_next_run(env: Env) -> None:
    kind = await env.kind()
    await env.licence(await env.holder(), kind, days(14))
    assert (await run(env, MORNING))["planned"] == 0
    from core.access import Principal
    from core.models import Role

    admin = Principal(staff_id=1, username="admin", display_name="admin", role=Role.admin)
    async with env.db.session() as session:
        read = await licences.set_policy(
            session=session, principal=admin, type_id=kind, offsets=[-14, 1]
        )
        await session.commit()
    assert read.offsets == [-14, 1]
    assert (await run(env, MORNING + dt.timedelta(hours=1)))["planned"] == 1


@pytest.mark.parametrize(
    "days_left,words", [(30, "还有30天到期"), (0, "今天到期"), (-1, "已过期1天")]
)
def test_when_words(days_left: int, words: str) -> None:
    assert reminders.when_words(days_left) == words
