"""Shared by the SMS tests: fake carriers with every template registered, settings, a clock."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import pytest

from core.db import utcnow
from outreach.templates import TEMPLATES
from tests.outreach.fake_aliyun import FakeAliyun
from tests.outreach.fake_carrier import FakeCarrier
from tests.outreach.fake_tencent import FakeTencent

ALIYUN_KEY, ALIYUN_SECRET = "LTAI-test-key", "aliyun-test-secret"
TENCENT_ID, TENCENT_SECRET = "AKID-test-id", "tencent-test-secret"
TENCENT_APP = "1400000001"
ALIYUN_CODES = {kind: f"SMS_{480000000 + i}" for i, kind in enumerate(TEMPLATES)}
TENCENT_CODES = {kind: str(2100000 + i) for i, kind in enumerate(TEMPLATES)}
CARRIERS = ("aliyun", "tencent")


def _codes(codes: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in codes.items())


def carrier_settings(carrier: str, fake: FakeCarrier, **kw: Any) -> dict[str, Any]:
    """Settings values that point `carrier` at its fake, with the right credentials."""
    values: dict[str, Any] = {"sms_carrier": carrier, "sms_timeout_seconds": 2.0}
    if carrier == "aliyun":
        values |= {
            "sms_aliyun_endpoint": fake.url,
            "sms_aliyun_access_key_id": ALIYUN_KEY,
            "sms_aliyun_access_key_secret": ALIYUN_SECRET,
            "sms_aliyun_template_codes": _codes(ALIYUN_CODES),
        }
    else:
        values |= {
            "sms_tencent_endpoint": fake.url,
            "sms_tencent_secret_id": TENCENT_ID,
            "sms_tencent_secret_key": TENCENT_SECRET,
            "sms_tencent_app_id": TENCENT_APP,
            "sms_tencent_template_codes": _codes(TENCENT_CODES),
        }
    return values | kw


def new_fake(carrier: str) -> FakeCarrier:
    if carrier == "aliyun":
        return FakeAliyun(
            credentials={ALIYUN_KEY: ALIYUN_SECRET},
            templates={ALIYUN_CODES[k]: set(t.params) for k, t in TEMPLATES.items()},
        )
    return FakeTencent(
        credentials={TENCENT_ID: TENCENT_SECRET},
        app_id=TENCENT_APP,
        templates={TENCENT_CODES[k]: len(t.params) for k, t in TEMPLATES.items()},
    )


@pytest.fixture(params=CARRIERS)
def carrier(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
async def fake(carrier: str) -> AsyncIterator[FakeCarrier]:
    server = await new_fake(carrier).start()
    yield server
    await server.stop()


class Clock:
    """A clock the test moves: the sender's idea of now."""

    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)
