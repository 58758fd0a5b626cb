"""Aliyun SMS (dysmsapi 2017-05-25) through its official SDK, and its callback payloads.

SendSms(PhoneNumbers, SignName, TemplateCode, TemplateParam, OutId): OutId is our message's
own id, so every attempt at one message carries the same id and the delivery report names it.
The SDK signs with ACS3-HMAC-SHA256 (an Authorization header over the method, path, sorted
query, every header it sends and the body's SHA-256); its retries are off (the outbox retries).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from alibabacloud_dysmsapi20170525 import models as sms_models
from alibabacloud_dysmsapi20170525.client import Client
from alibabacloud_tea_openapi import utils_models
from alibabacloud_tea_openapi.exceptions import AlibabaCloudException
from darabonba.runtime import RuntimeOptions
from pydantic import BaseModel, ConfigDict

from core.settings import Settings
from outreach import templates
from outreach.carriers import Accepted, CarrierError, Outgoing, scrub_sdk_logs, split_endpoint

# The carrier's answers that no retry can change: the number, the sign, the template or the
# text is wrong (from SendSms's error codes). Everything else (flow control,
# balance, credentials, the service itself) is retried with backoff: the message is kept.
PERMANENT = frozenset(
    {
        "isv.MOBILE_NUMBER_ILLEGAL",
        "isv.MOBILE_COUNT_OVER_LIMIT",
        "isv.SMS_TEMPLATE_ILLEGAL",
        "isv.SMS_SIGNATURE_ILLEGAL",
        "isv.SMS_SIGN_ILLEGAL",
        "isv.TEMPLATE_MISSING_PARAMETERS",
        "isv.TEMPLATE_PARAMS_ILLEGAL",
        "isv.INVALID_PARAMETERS",
        "isv.INVALID_JSON_PARAM",
        "isv.PARAM_LENGTH_LIMIT",
        "isv.PARAM_NOT_SUPPORT_URL",
        "isv.BLACK_KEY_CONTROL_LIMIT",
        "isv.SMS_CONTENT_ILLEGAL",
        "isv.EXTEND_CODE_ERROR",
        "isv.DOMESTIC_NUMBER_NOT_SUPPORTED",
        "isv.SMS_TEST_NUMBER_LIMIT",
    }
)


class AliyunCarrier:
    """Sends through Aliyun SMS; one SDK client per attempt (the SDK is not shared by threads)."""

    name = "aliyun"

    def __init__(self, settings: Settings) -> None:
        if not settings.sms_aliyun_access_key_id or not settings.sms_aliyun_access_key_secret:
            raise ValueError(
                "sms_carrier=aliyun needs CLOUDWINDOW_SMS_ALIYUN_ACCESS_KEY_ID and "
                "CLOUDWINDOW_SMS_ALIYUN_ACCESS_KEY_SECRET"
            )
        scrub_sdk_logs()
        self.protocol, self.endpoint = split_endpoint(settings.sms_aliyun_endpoint)
        self.codes = templates.codes_for(self.name, settings.sms_aliyun_template_codes)
        self.sign = settings.sms_aliyun_sign_name or settings.sms_sign_name
        self._key_id = settings.sms_aliyun_access_key_id
        self._secret = settings.sms_aliyun_access_key_secret
        self._timeout_ms = int(settings.sms_timeout_seconds * 1000)

    def __repr__(self) -> str:  # never the secret
        return f"AliyunCarrier({self.protocol}://{self.endpoint})"

    async def send(self, message: Outgoing) -> Accepted:
        try:
            return await asyncio.to_thread(self._send, message)
        except CarrierError:
            raise
        except AlibabaCloudException as e:
            code = str(e.code or type(e).__name__)
            raise CarrierError(code, str(e.message or ""), permanent=code in PERMANENT) from None
        except Exception as e:  # network: refused, reset, timed out; retried
            inner = getattr(e, "inner_exception", None) or e
            raise CarrierError(type(inner).__name__, str(inner), permanent=False) from None

    def _send(self, message: Outgoing) -> Accepted:
        config = utils_models.Config(
            access_key_id=self._key_id,
            access_key_secret=self._secret,
            endpoint=self.endpoint,
            protocol=self.protocol,
            connect_timeout=self._timeout_ms,
            read_timeout=self._timeout_ms,
        )
        request = sms_models.SendSmsRequest(
            phone_numbers=_mainland(message.phone),
            sign_name=self.sign,
            template_code=self.codes[message.kind],
            template_param=json.dumps(dict(message.params), ensure_ascii=False),
            out_id=message.out_id,
        )
        runtime = RuntimeOptions(
            autoretry=False, connect_timeout=self._timeout_ms, read_timeout=self._timeout_ms
        )
        body = Client(config).send_sms_with_options(request, runtime).body
        if body is None:
            raise CarrierError("EmptyResponse", "SendSms answered without a body", permanent=False)
        if body.code != "OK":
            code = str(body.code or "Unknown")
            raise CarrierError(code, str(body.message or ""), permanent=code in PERMANENT)
        return Accepted(message_id=str(body.biz_id or ""))


def _mainland(phone: str) -> str:
    """Aliyun takes mainland numbers bare (13800138000) and others with their country code."""
    if phone.startswith("+86"):
        return phone[3:]
    return phone.lstrip("+")


class _Payload(BaseModel):
    # The carrier adds fields over time; a push with one we do not know must still be taken.
    model_config = ConfigDict(extra="ignore")


class AliyunReport(_Payload):
    """One delivery report of SmsReport (HTTP batch push: a JSON array of these)."""

    phone_number: str = ""
    send_time: str = ""
    report_time: str = ""
    success: bool
    err_code: str = ""
    err_msg: str = ""
    sms_size: str = ""
    biz_id: str = ""
    out_id: str = ""


class AliyunUpstream(_Payload):
    """One message a resident sent back (SmsUp, a JSON array of these)."""

    phone_number: str
    send_time: str = ""
    content: str = ""
    sign_name: str = ""
    dest_code: str = ""
    sequence_id: Any = None


ACK: dict[str, Any] = {"code": 0, "msg": "接收成功"}  # what the push expects back
