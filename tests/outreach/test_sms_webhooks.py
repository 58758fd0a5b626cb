"""End to end through the app: a resident's login code goes out through the carrier's fake,
its delivery report comes back on the callback, and a reply of 退订 stops their reminders."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import text

from core.db import Database
from core.settings import Settings
from outreach.models import SmsOutbox
from tests.conftest import base_settings
from tests.factories import aged
from tests.outreach import sms_helpers
from tests.outreach.fake_carrier import FakeCarrier
from tests.outreach.sms_helpers import carrier_settings
from tests.signaling.helpers import gaoqiao_setup, new_resident

carrier = sms_helpers.carrier
fake = sms_helpers.fake
TOKEN = "callback-token-for-tests"
PHONE = "13912345678"


@pytest.fixture
def settings(db_url: str, tmp_path: Path, carrier: str, fake: FakeCarrier) -> Settings:
    """The app's settings (the conftest's client and as_user use them): the carrier's fake."""
    return base_settings(
        db_url, tmp_path / "data", **carrier_settings(carrier, fake, sms_webhook_token=TOKEN)
    )


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[Database]:
    database = Database(settings.effective_database_url)
    yield database
    await database.dispose()


async def outbox_row(db: Database, phone: str) -> SmsOutbox:
    async with db.session() as session:
        rows = await session.exec(
            text("SELECT id FROM sms_outbox WHERE phone = :p ORDER BY id"), params={"p": phone}
        )
        [(row_id,)] = rows.all()
        row = await session.get(SmsOutbox, row_id)
        assert row is not None
        return row


async def sent_row(db: Database, phone: str) -> SmsOutbox:
    for _ in range(200):  # a condition, bounded: about ten seconds at most
        row = await outbox_row(db, phone)
        if row.status == "sent":
            return row
        await asyncio.sleep(0.05)
    raise AssertionError(f"message still {row.status}")


async def signed_up_resident(as_user: Any, seq: int = 321) -> str:
    worker = await as_user("worker")
    setup = await gaoqiao_setup(worker)
    number = aged(70, seq)
    await new_resident(worker, 70, seq, phone=PHONE, community_id=setup["point"]["id"])
    return number


async def test_a_login_code_goes_out_and_its_report_comes_back(
    as_user: Any, db: Database, carrier: str, fake: FakeCarrier
) -> None:
    number = await signed_up_resident(as_user)
    phone_user = await as_user()
    resp = await phone_user.post(
        "/api/v1/resident-auth/code", json={"id_number": number, "phone": PHONE}
    )
    assert resp.status == 202, await resp.text()
    async with asyncio.timeout(15):  # the sender wakes on the commit
        while not [m for m in fake.messages if m.phone.endswith(PHONE)]:
            await fake.wait_messages(len(fake.messages) + 1)
    [got] = [m for m in fake.messages if m.phone.endswith(PHONE)]
    code = got.params["code"] if isinstance(got.params, dict) else got.params[0]
    resp = await phone_user.post(
        "/api/v1/resident-auth/login", json={"id_number": number, "phone": PHONE, "code": code}
    )
    assert resp.status == 200, await resp.text()  # the code that reached the carrier works

    row = await sent_row(db, PHONE)  # the fake answered; the sender records it right after
    assert row.message_id == got.message_id and row.delivery == ""
    assert row.params == {} and code not in row.body  # a sent code is not kept

    url = f"{phone_user.base}/api/v1/sms/{carrier}/reports"
    assert await fake.push_report(f"{url}?token=wrong", got) == 403
    assert await fake.push_report(url, got) == 403
    assert (await outbox_row(db, PHONE)).delivery == ""  # refused: nothing changed

    assert await fake.push_report(f"{url}?token={TOKEN}", got) == 200
    row = await outbox_row(db, PHONE)
    assert row.delivery == "delivered" and row.delivered_at is not None
    # carriers retry their pushes: a repeat, even a contradicting one, changes nothing
    assert await fake.push_report(f"{url}?token={TOKEN}", got, delivered=False) == 200
    again = await outbox_row(db, PHONE)
    assert (again.delivery, again.delivered_at) == ("delivered", row.delivered_at)


async def test_the_callback_answers_what_the_carrier_expects(as_user: Any, carrier: str) -> None:
    anon = await as_user()
    resp = await anon.post(f"/api/v1/sms/{carrier}/reports?token={TOKEN}", json=[])
    assert resp.status == 200
    expected = (
        {"code": 0, "msg": "接收成功"} if carrier == "aliyun" else {"result": 0, "errmsg": "OK"}
    )
    assert await resp.json() == expected
    for body in ({"not": "a list"}, [{"success": "maybe"}]):
        resp = await anon.post(f"/api/v1/sms/{carrier}/reports?token={TOKEN}", json=body)
        assert resp.status == 422


async def opt_outs(db: Database) -> list[tuple[Any, str]]:
    async with db.engine.connect() as conn:
        rows = await conn.execute(text("SELECT type_id, source FROM reminder_opt_out"))
        return [tuple(r) for r in rows]


async def test_a_reply_of_the_unsubscribe_keyword_stops_reminders(
    as_user: Any, db: Database, carrier: str, fake: FakeCarrier
) -> None:
    await signed_up_resident(as_user, seq=654)
    base = (await as_user()).base
    url = f"{base}/api/v1/sms/{carrier}/replies"
    push = fake.push_upstream if carrier == "aliyun" else fake.push_reply  # type: ignore[attr-defined]
    assert await push(f"{url}?token={TOKEN}", PHONE, "好的，谢谢") == 200
    assert await push(f"{url}?token=nope", PHONE, "退订") == 403
    assert await opt_outs(db) == []
    assert await push(f"{url}?token={TOKEN}", PHONE, " td ") == 200
    assert await opt_outs(db) == [(None, "sms")]
    assert await push(f"{url}?token={TOKEN}", PHONE, "退订") == 200  # retried push: no change
    assert await opt_outs(db) == [(None, "sms")]


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_without_a_token_configured_the_callbacks_are_off(
    aiohttp_client: Any, db_url: str, tmp_path: Path
) -> None:
    from web.app import create_app

    app = create_app(base_settings(db_url, tmp_path / "data"))
    client = await aiohttp_client(app)
    for path in ("aliyun/reports", "tencent/reports", "aliyun/replies", "tencent/replies"):
        resp = await client.post(f"/api/v1/sms/{path}?token=", json=[])
        assert resp.status == 404, path


async def test_is_unsubscribe_keywords() -> None:
    from outreach.sms import is_unsubscribe

    for word in ("退订", "TD", "td", "T", " t。", "退订！"):
        assert is_unsubscribe(word), word
    for word in ("", "谢谢", "不要退订", "TDD", "退"):
        assert not is_unsubscribe(word), word
    assert aiohttp  # the fakes push with aiohttp
