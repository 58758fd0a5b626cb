"""A local stand-in for Tencent Cloud SMS (sms 2021-01-11) that checks TC3-HMAC-SHA256.

As the service documents it: the Authorization header carries the SecretId, the credential
scope (date/service/tc3_request), the signed headers (at least content-type and host) and the
signature; the canonical request is the method, the path, the query, each signed header as
`name:value` in lower case, the signed header list and the hex SHA-256 of the body; the string
to sign is the algorithm, X-TC-Timestamp, the scope and the hex SHA-256 of that request; the
key is HMAC-SHA256 chained over "TC3"+secret, the date, the service and "tc3_request". A wrong
secret gets AuthFailure.SignatureFailure, an unknown SecretId AuthFailure.SecretIdNotFound and a
timestamp more than five minutes off AuthFailure.SignatureExpire, in the service's answer
shape (HTTP 200, Response.Error).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.outreach.fake_aliyun import _post
from tests.outreach.fake_carrier import FakeCarrier, Received, json_answer

AUTH = re.compile(
    r"TC3-HMAC-SHA256 Credential=(?P<id>[^/]+)/(?P<date>\d{4}-\d{2}-\d{2})/(?P<service>[^/]+)"
    r"/tc3_request, SignedHeaders=(?P<signed>[^,]+), Signature=(?P<signature>[0-9a-f]{64})"
)
MOBILE = re.compile(r"^\+861[3-9]\d{9}$")
CLOCK_SKEW = 300


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def signature(secret: str, date: str, service: str, string_to_sign: str) -> str:
    key = _hmac(_hmac(_hmac(("TC3" + secret).encode(), date), service), "tc3_request")
    return hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()


@dataclass
class FakeTencent(FakeCarrier):
    app_id: str = "1400000001"
    signs: set[str] = field(default_factory=lambda: {"云窗口"})
    templates: dict[str, int] = field(default_factory=dict)  # template id -> parameter count

    def _error(self, code: str, message: str) -> web.Response:
        self.refused.append(code)
        return json_answer(
            {"Response": {"Error": {"Code": code, "Message": message}, "RequestId": _rid()}}
        )

    def unavailable(self) -> web.Response:
        return web.Response(status=502, text="Bad Gateway")

    def verify(self, request: web.Request, body: bytes) -> web.Response | None:
        m = AUTH.fullmatch(request.headers.get("Authorization", ""))
        if m is None:
            return self._error("AuthFailure.InvalidAuthorization", "Authorization is invalid.")
        secret = self.credentials.get(m["id"])
        if secret is None:
            return self._error("AuthFailure.SecretIdNotFound", "The SecretId is not found.")
        try:
            ts = int(request.headers.get("X-TC-Timestamp", ""))
        except ValueError:
            return self._error("AuthFailure.InvalidAuthorization", "Bad X-TC-Timestamp.")
        if abs(time.time() - ts) > CLOCK_SKEW:
            return self._error("AuthFailure.SignatureExpire", "Signature expired.")
        date = dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d")
        signed = m["signed"].split(";")
        if (
            m["date"] != date
            or m["service"] != "sms"
            or not {"content-type", "host"} <= set(signed)
        ):
            return self._error("AuthFailure.SignatureFailure", "The credential scope is wrong.")
        headers = "".join(f"{h}:{request.headers.get(h, '').strip().lower()}\n" for h in signed)
        canon = "\n".join(
            [
                request.method,
                request.rel_url.raw_path,
                request.rel_url.raw_query_string,
                headers,
                ";".join(signed),
                hashlib.sha256(body).hexdigest(),
            ]
        )
        scope = f"{date}/sms/tc3_request"
        to_sign = f"TC3-HMAC-SHA256\n{ts}\n{scope}\n{hashlib.sha256(canon.encode()).hexdigest()}"
        if not hmac.compare_digest(signature(secret, date, "sms", to_sign), m["signature"]):
            return self._error(
                "AuthFailure.SignatureFailure",
                "The provided credentials could not be validated. Please check your signature.",
            )
        return None

    async def handle(self, request: web.Request, body: bytes) -> web.Response:
        refused = self.verify(request, body)
        if refused is not None:
            return refused
        if (request.headers.get("X-TC-Action"), request.headers.get("X-TC-Version")) != (
            "SendSms",
            "2021-01-11",
        ):
            return self._error("InvalidAction", "The action is not found.")
        try:
            args: dict[str, Any] = json.loads(body)
        except ValueError:
            return self._error("InvalidParameter", "The body is not JSON.")
        if args.get("SmsSdkAppId") != self.app_id:
            return self._error(
                "UnauthorizedOperation.SmsSdkAppIdVerifyFail", "SmsSdkAppId 校验失败"
            )
        if args.get("SignName") not in self.signs:
            return self._error(
                "FailedOperation.SignatureIncorrectOrUnapproved", "签名未审批或格式错误"
            )
        template = str(args.get("TemplateId", ""))
        if template not in self.templates:
            return self._error(
                "FailedOperation.TemplateIncorrectOrUnapproved", "模板未审批或不存在"
            )
        params = list(args.get("TemplateParamSet") or [])
        if len(params) != self.templates[template]:
            return self._error(
                "FailedOperation.TemplateParamSetNotMatchApprovedTemplate", "参数个数与模板不符"
            )
        statuses = []
        for phone in args.get("PhoneNumberSet") or []:
            status: dict[str, Any] = {"PhoneNumber": phone, "Fee": 0, "IsoCode": "CN"}
            status["SessionContext"] = args.get("SessionContext", "")
            if not MOBILE.match(phone):
                status |= {
                    "SerialNo": "",
                    "Code": "InvalidParameterValue.IncorrectPhoneNumber",
                    "Message": "手机号格式错误",
                }
                self.refused.append(status["Code"])
            else:
                serial = f"2433:{10**18 + self.next_id()}"
                status |= {"SerialNo": serial, "Fee": 1, "Code": "Ok", "Message": "send success"}
                self.messages.append(
                    Received(
                        phone, args["SignName"], template, params, status["SessionContext"], serial
                    )
                )
            statuses.append(status)
        return json_answer({"Response": {"SendStatusSet": statuses, "RequestId": _rid()}})

    # -- what the carrier pushes back

    async def push_report(self, url: str, message: Received, *, delivered: bool = True) -> int:
        """POST a status callback for one message to our webhook; its HTTP status."""
        report = {
            "user_receive_time": dt.datetime.now().strftime("%Y-%m-%d %H:%M:%S"),
            "nationcode": "86",
            "mobile": message.phone.removeprefix("+86"),
            "report_status": "SUCCESS" if delivered else "FAIL",
            "errmsg": "DELIVRD" if delivered else "MK:0001",
            "description": "用户短信送达成功" if delivered else "用户关机",
            "sid": message.message_id,
        }
        return await _post(url, [report])

    async def push_reply(self, url: str, phone: str, text: str) -> int:
        """POST a reply callback (a resident's answer) to our webhook; its HTTP status."""
        reply = {
            "extend": "",
            "mobile": phone,
            "nationcode": "86",
            "sign": "云窗口",
            "text": text,
            "time": int(time.time()),
        }
        return await _post(url, reply)


def _rid() -> str:
    return str(uuid.uuid4())
