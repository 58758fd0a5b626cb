"""Each adapter through its official SDK against a fake that checks the request signature."""

from __future__ import annotations

import logging

import pytest

from core.settings import Settings
from outreach.carriers import Accepted, CarrierError, Outgoing, build_carrier
from tests.outreach import sms_helpers
from tests.outreach.fake_carrier import FakeCarrier
from tests.outreach.sms_helpers import (
    ALIYUN_CODES,
    ALIYUN_SECRET,
    TENCENT_CODES,
    TENCENT_SECRET,
    carrier_settings,
)

carrier = sms_helpers.carrier
fake = sms_helpers.fake
PHONE = "13800138000"
CODE = Outgoing("a1b2c3", PHONE, "login.code", {"code": "204817"})


def adapter(carrier: str, fake: FakeCarrier, **kw: object):  # type: ignore[no-untyped-def]
    built = build_carrier(Settings(**carrier_settings(carrier, fake, **kw)))
    assert built is not None and built.name == carrier
    return built


async def test_a_message_arrives_signed_with_our_id(carrier: str, fake: FakeCarrier) -> None:
    accepted = await adapter(carrier, fake).send(CODE)
    assert isinstance(accepted, Accepted) and accepted.message_id
    [got] = fake.messages
    assert got.out_id == "a1b2c3" and got.message_id == accepted.message_id
    assert got.sign == "云窗口"
    if carrier == "aliyun":
        assert (got.phone, got.template, got.params) == (
            PHONE,
            ALIYUN_CODES["login.code"],
            {"code": "204817"},
        )
    else:
        assert (got.phone, got.template, got.params) == (
            "+86" + PHONE,
            TENCENT_CODES["login.code"],
            ["204817"],
        )


async def test_parameters_go_in_the_templates_order(carrier: str, fake: FakeCarrier) -> None:
    params = {
        "line": "高桥镇·民政",
        "level": "红色",
        "measure": "等候人数",
        "value": "21",
        "threshold": "20",
    }
    await adapter(carrier, fake).send(
        Outgoing("x", PHONE, "alert.line", dict(reversed(params.items())))
    )
    [got] = fake.messages
    expected = params if carrier == "aliyun" else list(params.values())
    assert got.params == expected


async def test_a_wrong_secret_is_refused_like_the_real_service(
    carrier: str, fake: FakeCarrier, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = "not-the-secret"
    secret = "sms_aliyun_access_key_secret" if carrier == "aliyun" else "sms_tencent_secret_key"
    caplog.set_level(logging.DEBUG)
    with pytest.raises(CarrierError) as refused:
        await adapter(carrier, fake, **{secret: wrong}).send(CODE)
    expected = "SignatureDoesNotMatch" if carrier == "aliyun" else "AuthFailure.SignatureFailure"
    assert refused.value.code == expected
    assert refused.value.permanent is False  # kept and retried: see docs/sms.md
    assert fake.messages == [] and fake.refused == [expected]
    logged = caplog.text + repr(refused.value) + repr(adapter(carrier, fake))
    for s in (wrong, ALIYUN_SECRET, TENCENT_SECRET):
        assert s not in logged


async def test_an_unknown_key_is_refused(carrier: str, fake: FakeCarrier) -> None:
    key = "sms_aliyun_access_key_id" if carrier == "aliyun" else "sms_tencent_secret_id"
    with pytest.raises(CarrierError) as refused:
        await adapter(carrier, fake, **{key: "someone-else"}).send(CODE)
    assert refused.value.code in ("InvalidAccessKeyId.NotFound", "AuthFailure.SecretIdNotFound")
    assert not refused.value.permanent


async def test_a_bad_number_is_permanent_and_masked(carrier: str, fake: FakeCarrier) -> None:
    with pytest.raises(CarrierError) as refused:
        await adapter(carrier, fake).send(Outgoing("x", "1380013", "login.code", {"code": "1"}))
    assert refused.value.permanent
    assert refused.value.code in (
        "isv.MOBILE_NUMBER_ILLEGAL",
        "InvalidParameterValue.IncorrectPhoneNumber",
    )


async def test_a_rejected_template_is_permanent(carrier: str, fake: FakeCarrier) -> None:
    fake.templates.clear()  # type: ignore[attr-defined]
    with pytest.raises(CarrierError) as refused:
        await adapter(carrier, fake).send(CODE)
    assert refused.value.permanent
    assert refused.value.code in (
        "isv.SMS_TEMPLATE_ILLEGAL",
        "FailedOperation.TemplateIncorrectOrUnapproved",
    )


async def test_an_outage_is_retryable(carrier: str, fake: FakeCarrier) -> None:
    fake.outage = 1
    with pytest.raises(CarrierError) as refused:
        await adapter(carrier, fake).send(CODE)
    assert not refused.value.permanent
    assert fake.messages == []
    await adapter(carrier, fake).send(CODE)  # back: the same message goes through once
    assert len(fake.messages) == 1


async def test_a_carrier_that_does_not_answer_times_out(carrier: str, fake: FakeCarrier) -> None:
    fake.hang = 1
    with pytest.raises(CarrierError) as refused:
        await adapter(carrier, fake, sms_timeout_seconds=0.3).send(CODE)
    assert not refused.value.permanent
    assert fake.messages == []


async def test_a_carrier_that_is_down_is_retryable(carrier: str, fake: FakeCarrier) -> None:
    url = fake.url
    await fake.stop()  # nothing listens there any more: connection refused
    endpoint = "sms_aliyun_endpoint" if carrier == "aliyun" else "sms_tencent_endpoint"
    with pytest.raises(CarrierError) as refused:
        await adapter(carrier, fake, **{endpoint: url}).send(CODE)
    assert not refused.value.permanent


def test_missing_credentials_or_codes_stop_the_node() -> None:
    with pytest.raises(ValueError, match="ACCESS_KEY"):
        build_carrier(Settings(sms_carrier="aliyun"))
    with pytest.raises(ValueError, match="no tencent template code"):
        build_carrier(
            Settings(
                sms_carrier="tencent",
                sms_tencent_secret_id="i",
                sms_tencent_secret_key="k",
                sms_tencent_app_id="1",
            )
        )
    assert build_carrier(Settings()) is None
