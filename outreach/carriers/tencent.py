"""Tencent Cloud SMS (sms 2021-01-11) through its official SDK, and its callback payloads.

SendSms(PhoneNumberSet, SmsSdkAppId, TemplateId, SignName, TemplateParamSet, SessionContext):
SessionContext is our message's own id, echoed in the answer. The SDK signs with
TC3-HMAC-SHA256 (a key derived from the secret, the date and the service, over the method,
path, content-type, host and the body's SHA-256); its retries are off (the outbox retries).
"""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import BaseModel, ConfigDict
from tencentcloud.common.credential import Credential
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.sms.v20210111 import models as sms_models
from tencentcloud.sms.v20210111.sms_client import SmsClient

from core.settings import Settings
from outreach import templates
from outreach.carriers import Accepted, CarrierError, Outgoing, scrub_sdk_logs, split_endpoint

# Answers no retry can change: the number, sign, template or parameters are wrong (from
# SendSms's error codes). Credentials, limits, balance and the service itself are retried.
PERMANENT = frozenset(
    {
        "InvalidParameterValue.IncorrectPhoneNumber",
        "InvalidParameterValue.TemplateParameterFormatError",
        "InvalidParameterValue.TemplateParameterLengthLimit",
        "InvalidParameterValue.ProhibitedUseUrlInTemplateParameter",
        "InvalidParameterValue.ContentLengthLimit",
        "InvalidParameterValue.MissingSignatureList",
        "FailedOperation.TemplateIncorrectOrUnapproved",
        "FailedOperation.SignatureIncorrectOrUnapproved",
        "FailedOperation.TemplateParamSetNotMatchApprovedTemplate",
        "FailedOperation.MissingTemplateToModify",
        "FailedOperation.PhoneNumberInBlacklist",
        "FailedOperation.PhoneNumberParseFail",
        "FailedOperation.ContainSensitiveWord",
        "FailedOperation.TemplateUnapprovedOrNotExist",
        "UnsupportedOperation.ContainDomesticAndInternationalPhoneNumber",
        "UnsupportedOperation.UnsupportedRegion",
    }
)


class TencentCarrier:
    """Sends through Tencent Cloud SMS; one SDK client per attempt (not shared by threads)."""

    name = "tencent"

    def __init__(self, settings: Settings) -> None:
        if not settings.sms_tencent_secret_id or not settings.sms_tencent_secret_key:
            raise ValueError(
                "sms_carrier=tencent needs CLOUDWINDOW_SMS_TENCENT_SECRET_ID and "
                "CLOUDWINDOW_SMS_TENCENT_SECRET_KEY"
            )
        if not settings.sms_tencent_app_id:
            raise ValueError("sms_carrier=tencent needs CLOUDWINDOW_SMS_TENCENT_APP_ID")
        scrub_sdk_logs()
        self.protocol, self.endpoint = split_endpoint(settings.sms_tencent_endpoint)
        self.codes = templates.codes_for(self.name, settings.sms_tencent_template_codes)
        self.sign = settings.sms_tencent_sign_name or settings.sms_sign_name
        self.app_id = settings.sms_tencent_app_id
        self.region = settings.sms_tencent_region
        self._secret_id = settings.sms_tencent_secret_id
        self._secret_key = settings.sms_tencent_secret_key
        self._timeout = settings.sms_timeout_seconds

    def __repr__(self) -> str:  # never the secret
        return f"TencentCarrier({self.protocol}://{self.endpoint})"

    async def send(self, message: Outgoing) -> Accepted:
        try:
            return await asyncio.to_thread(self._send, message)
        except CarrierError:
            raise
        except TencentCloudSDKException as e:
            code = str(e.code or "TencentCloudSDKException")
            raise CarrierError(code, str(e.message or ""), permanent=code in PERMANENT) from None
        except Exception as e:  # anything the SDK did not wrap; retried
            raise CarrierError(type(e).__name__, str(e), permanent=False) from None

    def _send(self, message: Outgoing) -> Accepted:
        http = HttpProfile(protocol=self.protocol, endpoint=self.endpoint, reqTimeout=self._timeout)
        client = SmsClient(
            Credential(self._secret_id, self._secret_key),
            self.region,
            ClientProfile(httpProfile=http),
        )
        request = sms_models.SendSmsRequest()
        request.PhoneNumberSet = [_e164(message.phone)]
        request.SmsSdkAppId = self.app_id
        request.SignName = self.sign
        request.TemplateId = self.codes[message.kind]
        request.TemplateParamSet = [message.params[p] for p in templates.get(message.kind).params]
        request.SessionContext = message.out_id
        answer = client.SendSms(request)
        statuses = answer.SendStatusSet or []
        if not statuses:
            raise CarrierError("EmptyResponse", "SendSms answered no status", permanent=False)
        status = statuses[0]
        if status.Code != "Ok":
            code = str(status.Code or "Unknown")
            raise CarrierError(code, str(status.Message or ""), permanent=code in PERMANENT)
        return Accepted(message_id=str(status.SerialNo or ""))


def _e164(phone: str) -> str:
    """Tencent takes E.164: +86 in front of a mainland number."""
    return phone if phone.startswith("+") else "+86" + phone


class _Payload(BaseModel):
    # The carrier adds fields over time; a push with one we do not know must still be taken.
    model_config = ConfigDict(extra="ignore")


class TencentReport(_Payload):
    """One delivery report (短信下发状态通知: a JSON array of these)."""

    user_receive_time: str = ""
    nationcode: str = ""
    mobile: str = ""
    report_status: str  # SUCCESS or FAIL
    errmsg: str = ""
    description: str = ""
    sid: str  # the SerialNo SendSms answered


class TencentReply(_Payload):
    """A message a resident sent back (短信回复)."""

    extend: str = ""
    mobile: str
    nationcode: str = "86"
    sign: str = ""
    text: str = ""
    time: int = 0


ACK: dict[str, Any] = {"result": 0, "errmsg": "OK"}  # what the callback expects back
