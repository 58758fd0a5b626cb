"""The outbox: queued with the caller's work, sent after commit, retried, never lost, and
never handed to the carrier twice while nodes keep their leases."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlmodel import col, select

from core.db import Database
from core.settings import Settings
from outreach import outbox
from outreach.carriers import build_carrier
from outreach.models import OutboxStatus, SmsOutbox
from outreach.outbox import Sender
from outreach.sms import OutboxSmsGateway, RecordingSmsGateway, sending
from outreach.templates import TemplateError
from tests.conftest import base_settings
from tests.outreach import sms_helpers
from tests.outreach.fake_carrier import FakeCarrier
from tests.outreach.sms_helpers import (
    Clock,
    carrier_settings,
    new_fake,
)

carrier = sms_helpers.carrier
fake = sms_helpers.fake
pytestmark = pytest.mark.dataset("empty")
# The outbox does not depend on the carrier; test_sms_carriers covers each one's answers.
ONE_CARRIER = pytest.mark.parametrize("carrier", ["aliyun"])
PHONE = "13800138000"
CODE = {"code": "204817"}
WAIT = {"line": "高桥镇·民政", "number": "A012", "item": "高龄津贴", "minutes": "16"}


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    database = Database(db_url)
    yield database
    await database.dispose()


def sms_settings(
    db_url: str, tmp_path: Path, carrier: str, fake: FakeCarrier, **kw: Any
) -> Settings:
    return base_settings(db_url, tmp_path, **carrier_settings(carrier, fake, **kw))


def make_sender(db: Database, settings: Settings, clock: Clock, node: str = "node-a") -> Sender:
    built = build_carrier(settings)
    assert built is not None
    return Sender(
        db=db, carrier=built, settings=settings, node_id=node, clock=clock, rng=random.Random(7)
    )


async def queue(
    db: Database, kind: str = "alert.wait", params: dict[str, str] = WAIT, **kw: Any
) -> None:
    async with db.session() as session:
        await OutboxSmsGateway().send(
            session, phone=kw.pop("phone", PHONE), kind=kind, params=params, **kw
        )
        await session.commit()


async def rows(db: Database) -> list[SmsOutbox]:
    async with db.session() as session:
        return list((await session.exec(select(SmsOutbox).order_by(col(SmsOutbox.id)))).all())


async def test_a_message_exists_only_if_the_callers_work_committed(db: Database) -> None:
    async with db.session() as session:
        await OutboxSmsGateway().send(session, phone=PHONE, kind="alert.wait", params=WAIT)
        await session.rollback()
    assert await rows(db) == []
    await queue(db)
    [row] = await rows(db)
    assert row.status == OutboxStatus.pending and row.attempts == 0
    assert row.body == "【云窗口】高桥镇·民政的A012号（高龄津贴）已等待16分钟，请及时安排办理。"


async def test_the_same_key_queues_one_message(db: Database) -> None:
    await queue(db, key="alert.wait:41")
    await queue(db, key="alert.wait:41")  # another transaction, another node: still one
    async with db.session() as session:
        gw = OutboxSmsGateway()
        await gw.send(session, phone=PHONE, kind="alert.wait", params=WAIT, key="alert.wait:42")
        await gw.send(session, phone=PHONE, kind="alert.wait", params=WAIT, key="alert.wait:42")
        await session.commit()
    assert [r.key for r in await rows(db)] == ["alert.wait:41", "alert.wait:42"]


async def test_a_batch_queues_each_new_key_once_and_keeps_the_order(db: Database) -> None:
    await queue(db, key="reminder:1")  # already in the outbox
    batch = [
        outbox.Message(PHONE, "alert.wait", {**WAIT, "number": f"A{i:03d}"}, key=f"reminder:{k}")
        for i, k in enumerate([1, 2, 3, 2, 4])
    ]
    async with db.session() as session:
        assert await OutboxSmsGateway().send_many(session, batch) == 3
        await session.commit()
    got = await rows(db)
    assert [r.key for r in got] == ["reminder:1", "reminder:2", "reminder:3", "reminder:4"]
    # The first message of a repeated key is the one kept; the one already queued is unchanged.
    assert "A012" in got[0].body and "A001" in got[1].body and "A002" in got[2].body
    assert "A004" in got[3].body


async def test_a_batch_with_one_bad_message_queues_none(db: Database) -> None:
    good = outbox.Message(PHONE, "alert.wait", WAIT, key="reminder:7")
    bad = outbox.Message(PHONE, "alert.wait", CODE, key="reminder:8")
    async with db.session() as session:
        with pytest.raises(TemplateError):
            await OutboxSmsGateway().send_many(session, [good, bad])
        await session.commit()
    assert await rows(db) == []


async def test_a_message_that_does_not_fit_its_template_is_refused(db: Database) -> None:
    async with db.session() as session:
        with pytest.raises(TemplateError):
            await OutboxSmsGateway().send(session, phone=PHONE, kind="alert.wait", params=CODE)
        with pytest.raises(TemplateError):
            await OutboxSmsGateway().send(session, phone=PHONE, kind="no.such", params={})
        await session.commit()
    assert await rows(db) == []


async def test_sent_through_the_carrier_with_its_id_recorded(
    db: Database, db_url: str, tmp_path: Path, carrier: str, fake: FakeCarrier
) -> None:
    await queue(db)
    clock = Clock()
    report = await make_sender(db, sms_settings(db_url, tmp_path, carrier, fake), clock).run_once()
    assert (report.claimed, report.sent) == (1, 1)
    [row] = await rows(db)
    [got] = fake.messages
    assert row.status == OutboxStatus.sent and row.carrier == carrier
    assert row.message_id == got.message_id and got.out_id == row.out_id
    assert row.lease_owner is None and row.attempts == 1
    assert (
        await make_sender(db, sms_settings(db_url, tmp_path, carrier, fake), clock).run_once()
    ).claimed == 0


@ONE_CARRIER
async def test_an_outage_loses_nothing_and_sends_once(
    db: Database, db_url: str, tmp_path: Path, carrier: str, fake: FakeCarrier
) -> None:
    await queue(db)
    fake.outage = 3
    clock = Clock()
    sender = make_sender(db, sms_settings(db_url, tmp_path, carrier, fake), clock)
    waits = []
    for _ in range(3):
        assert (await sender.run_once()).retried == 1
        [row] = await rows(db)
        assert row.status == OutboxStatus.pending and row.error_code
        waits.append((row.next_attempt_at - clock.now).total_seconds())
        assert (await sender.run_once()).claimed == 0  # not due before its backoff
        clock.advance(waits[-1] + 0.001)
    assert waits[0] < waits[2] and 5 <= waits[0] <= 10  # doubling from the base, jittered
    assert (await sender.run_once()).sent == 1
    [row] = await rows(db)
    assert row.status == OutboxStatus.sent and row.attempts == 4 and row.error_code == ""
    assert len(fake.messages) == 1


async def test_a_wrong_secret_keeps_the_message_until_it_is_fixed(
    db: Database, db_url: str, tmp_path: Path, carrier: str, fake: FakeCarrier
) -> None:
    secret = "sms_aliyun_access_key_secret" if carrier == "aliyun" else "sms_tencent_secret_key"
    await queue(db)
    clock = Clock()
    wrong = sms_settings(db_url, tmp_path, carrier, fake, **{secret: "wrong"})
    assert (await make_sender(db, wrong, clock).run_once()).retried == 1
    [row] = await rows(db)
    assert row.status == OutboxStatus.pending
    assert row.error_code in ("SignatureDoesNotMatch", "AuthFailure.SignatureFailure")
    clock.advance(3600)
    assert (
        await make_sender(db, sms_settings(db_url, tmp_path, carrier, fake), clock).run_once()
    ).sent == 1
    assert len(fake.messages) == 1


@ONE_CARRIER
async def test_a_bad_number_fails_for_good_and_is_not_retried(
    db: Database, db_url: str, tmp_path: Path, carrier: str, fake: FakeCarrier
) -> None:
    await queue(db, phone="1380013")
    clock = Clock()
    sender = make_sender(db, sms_settings(db_url, tmp_path, carrier, fake), clock)
    assert (await sender.run_once()).failed == 1
    [row] = await rows(db)
    assert row.status == OutboxStatus.failed and row.error_code
    clock.advance(86400)
    assert (await sender.run_once()).claimed == 0
    assert fake.messages == [] and fake.requests == 1


@ONE_CARRIER
async def test_a_login_code_too_late_to_use_is_not_sent_and_not_kept(
    db: Database, db_url: str, tmp_path: Path, carrier: str, fake: FakeCarrier
) -> None:
    await queue(db, kind="login.code", params=CODE)
    [row] = await rows(db)
    assert "204817" not in row.body and row.params == CODE  # masked text, code kept to send
    clock = Clock()
    clock.advance(6 * 60)
    assert (
        await make_sender(db, sms_settings(db_url, tmp_path, carrier, fake), clock).run_once()
    ).expired == 1
    [row] = await rows(db)
    assert row.status == OutboxStatus.expired and row.params == {}
    assert fake.requests == 0


@ONE_CARRIER
async def test_a_sent_login_code_is_erased_from_the_outbox(
    db: Database, db_url: str, tmp_path: Path, carrier: str, fake: FakeCarrier
) -> None:
    await queue(db, kind="login.code", params=CODE)
    assert (
        await make_sender(db, sms_settings(db_url, tmp_path, carrier, fake), Clock()).run_once()
    ).sent == 1
    [row] = await rows(db)
    assert row.params == {} and "204817" not in row.body
    assert fake.messages[0].params in (CODE, ["204817"])


@ONE_CARRIER
async def test_not_before_holds_a_message_back(
    db: Database, db_url: str, tmp_path: Path, carrier: str, fake: FakeCarrier
) -> None:
    clock = Clock()
    await queue(db, not_before=clock.now + dt.timedelta(hours=10))
    sender = make_sender(db, sms_settings(db_url, tmp_path, carrier, fake), clock)
    assert (await sender.run_once()).claimed == 0
    clock.advance(10 * 3600 + 1)
    assert (await sender.run_once()).sent == 1


async def test_a_crash_between_send_and_commit_loses_nothing(
    db: Database, db_url: str, tmp_path: Path, carrier: str, fake: FakeCarrier
) -> None:
    """Node A claims and hands the message to the carrier, then dies before recording it. The
    row stays claimed until A's lease runs out; node B then sends it again with the same
    out_id (the documented at-least-once case), and A's late answer cannot overwrite B's."""
    await queue(db)
    clock = Clock()
    settings = sms_settings(db_url, tmp_path, carrier, fake)
    a, b = make_sender(db, settings, clock, "node-a"), make_sender(db, settings, clock, "node-b")
    [claim] = await a.claim()
    await a.carrier.send(outbox.Outgoing(claim.out_id, claim.phone, claim.kind, claim.params))
    # ... node A dies here: nothing recorded
    assert (await b.run_once()).claimed == 0  # A's lease still holds
    clock.advance(settings.sms_lease_seconds + 1)
    report = await b.run_once()
    assert report.sent == 1
    [row] = await rows(db)
    assert row.status == OutboxStatus.sent and row.lease_expiries == 1 and row.attempts == 2
    assert fake.out_ids() == [row.out_id, row.out_id]  # the same id: the duplicate is visible
    late = await a._finish(claim, status=OutboxStatus.sent, outcome="sent", message_id="late")
    assert late == "lost_lease"
    [row] = await rows(db)
    assert row.message_id != "late"


@ONE_CARRIER
async def test_a_carrier_that_took_it_but_did_not_say_so_gets_the_same_id_again(
    db: Database, db_url: str, tmp_path: Path, carrier: str, fake: FakeCarrier
) -> None:
    await queue(db)
    fake.take_then_fail = 1
    clock = Clock()
    sender = make_sender(db, sms_settings(db_url, tmp_path, carrier, fake), clock)
    assert (await sender.run_once()).retried == 1
    clock.advance(3600)
    assert (await sender.run_once()).sent == 1
    [row] = await rows(db)
    assert fake.out_ids() == [row.out_id, row.out_id]


async def test_phone_numbers_are_masked_in_every_log_line(
    db: Database,
    db_url: str,
    tmp_path: Path,
    carrier: str,
    fake: FakeCarrier,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    fake.outage = 1
    await queue(db)
    await queue(db, phone="1380013")
    clock = Clock()
    sender = make_sender(db, sms_settings(db_url, tmp_path, carrier, fake), clock)
    await sender.run_once()
    clock.advance(3600)
    await sender.run_once()
    assert "138****8000" in caplog.text
    # Ours and the SDKs' (urllib3 logs the request URL at DEBUG); the database drivers' DEBUG
    # lines echo statement parameters and are never on in production.
    ours = ("cloudwindow", "urllib3", "tencentcloud", "darabonba")
    checked = [r for r in caplog.records if r.name.startswith(ours)]
    assert any(r.name.startswith("urllib3") for r in checked)
    for record in checked:
        assert PHONE not in record.getMessage() and "1380013" not in record.getMessage()


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
async def test_two_nodes_never_send_one_message_twice(
    db_url: str, tmp_path: Path, backend: str
) -> None:
    fake = await new_fake("aliyun").start()
    dbs = [Database(db_url), Database(db_url)]
    try:
        async with dbs[0].session() as session:
            gw = OutboxSmsGateway()
            for i in range(60):
                await gw.send(session, phone=f"1390000{i:04d}", kind="alert.wait", params=WAIT)
            await session.commit()
        settings = sms_settings(db_url, tmp_path, "aliyun", fake, sms_batch_size=5)
        clock = Clock()
        nodes = [make_sender(dbs[i], settings, clock, f"node-{i}") for i in range(2)]
        sent: dict[str, int] = {}

        async def drain(node: Sender) -> None:
            while (report := await node.run_once()).claimed:
                sent[node.node_id] = sent.get(node.node_id, 0) + report.sent

        await asyncio.gather(*(drain(n) for n in nodes))
        out_ids = fake.out_ids()
        assert len(out_ids) == 60 and len(set(out_ids)) == 60
        assert sum(sent.values()) == 60
        assert {r.status for r in await rows(dbs[0])} == {OutboxStatus.sent}
    finally:
        for d in dbs:
            await d.dispose()
        await fake.stop()


@ONE_CARRIER
async def test_the_running_sender_wakes_when_a_message_is_committed(
    db: Database, db_url: str, tmp_path: Path, carrier: str, fake: FakeCarrier
) -> None:
    settings = sms_settings(db_url, tmp_path, carrier, fake, sms_poll_seconds=3600)
    gateway = OutboxSmsGateway()
    async with sending(gateway, db=db, settings=settings, node_id="node-a") as sender:
        assert sender is not None
        async with db.session() as session:
            await gateway.send(session, phone=PHONE, kind="alert.wait", params=WAIT)
            await session.commit()
        async with asyncio.timeout(10):  # the poll is an hour: only the wake-up can do it
            await fake.wait_messages(1)
    [row] = await rows(db)
    assert row.status == OutboxStatus.sent


async def test_the_recording_gateway_sends_nothing_and_keeps_the_text(db: Database) -> None:
    async with db.session() as session:
        gw = RecordingSmsGateway()
        await gw.send(session, phone=PHONE, kind="login.code", params=CODE, key="k1")
        await gw.send(session, phone=PHONE, kind="login.code", params=CODE, key="k1")
        await session.commit()
    [row] = await rows(db)
    assert row.status == OutboxStatus.sent and row.carrier == "recording" and row.params == {}
    async with db.engine.connect() as conn:
        bodies = (await conn.execute(text("SELECT body FROM sms_message"))).scalars().all()
    assert bodies == ["【云窗口】您的登录验证码为204817，5分钟内有效。如非本人操作请忽略。"]
    async with sending(RecordingSmsGateway(), db=db, settings=Settings(), node_id="n") as sender:
        assert sender is None


@ONE_CARRIER
async def test_a_message_whose_template_was_removed_is_given_up(
    db: Database, db_url: str, tmp_path: Path, carrier: str, fake: FakeCarrier
) -> None:
    await queue(db)
    async with db.engine.begin() as conn:
        await conn.execute(text("UPDATE sms_outbox SET kind = 'gone.kind'"))
    report = await make_sender(
        db, sms_settings(db_url, tmp_path, carrier, fake), Clock()
    ).run_once()
    assert report.failed == 1
    [row] = await rows(db)
    assert (row.status, row.error_code, row.params) == (OutboxStatus.failed, "no_template", {})
    assert fake.requests == 0
