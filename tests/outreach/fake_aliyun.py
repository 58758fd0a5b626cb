"""A local stand-in for Aliyun SMS (dysmsapi 2017-05-25, RPC style) that checks signatures.

It verifies ACS3-HMAC-SHA256 the way the service documents it: the Authorization header names
the AccessKey ID, the signed headers and the signature; the canonical request is the method,
the path, the query sorted by name with RFC 3986 percent-encoding, each signed header as
`name:value` (lower-case name, trimmed value), the list of signed headers, and the hex SHA-256
of the body (which must equal x-acs-content-sha256); the string to sign is the algorithm and
the hex SHA-256 of that request; the signature is HMAC-SHA256 under the AccessKey secret. A
wrong secret gets 400 SignatureDoesNotMatch, an unknown key 404 InvalidAccessKeyId.NotFound,
a stale x-acs-date 400 InvalidTimeStamp.Expired and a reused nonce 400 SignatureNonceUsed,
as the real service answers. SendSms then checks the sign, the template and the number and
answers with its business codes (isv.*).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import re
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote

import aiohttp
from aiohttp import web

from tests.outreach.fake_carrier import FakeCarrier, Received, json_answer

AUTH = re.compile(
    r"ACS3-HMAC-SHA256 Credential=(?P<key>[^,]+),SignedHeaders=(?P<signed>[^,]+),"
    r"Signature=(?P<signature>[0-9a-f]{64})"
)
MUST_SIGN = {
    "host",
    "x-acs-action",
    "x-acs-version",
    "x-acs-date",
    "x-acs-signature-nonce",
    "x-acs-content-sha256",
}
MOBILE = re.compile(r"^1[3-9]\d{9}$")
CLOCK_SKEW = dt.timedelta(minutes=15)


def _enc(text: str) -> str:
    return quote(text, safe="-_.~")


def canonical_request(
    method: str, path: str, query: list[tuple[str, str]], headers: Any, signed: list[str]
) -> str:
    q = "&".join(f"{k}={_enc(v)}" for k, v in sorted((_enc(k), v) for k, v in query))
    hdrs = "".join(f"{name}:{headers.get(name, '').strip()}\n" for name in signed)
    return "\n".join(
        [method, path or "/", q, hdrs, ";".join(signed), headers.get("x-acs-content-sha256", "")]
    )


@dataclass
class FakeAliyun(FakeCarrier):
    signs: set[str] = field(default_factory=lambda: {"云窗口"})
    templates: dict[str, set[str]] = field(default_factory=dict)  # code -> parameter names
    nonces: set[str] = field(default_factory=set)

    def unavailable(self) -> web.Response:
        return json_answer(
            {
                "Code": "ServiceUnavailable",
                "Message": "The request has failed due to a temporary failure of the server.",
                "RequestId": uuid.uuid4().hex,
            },
            503,
        )

    def _refuse(self, status: int, code: str, message: str) -> web.Response:
        self.refused.append(code)
        return json_answer(
            {"Code": code, "Message": message, "RequestId": uuid.uuid4().hex}, status
        )

    def verify(self, request: web.Request, body: bytes) -> web.Response | None:
        m = AUTH.fullmatch(request.headers.get("Authorization", ""))
        if m is None:
            return self._refuse(400, "IncompleteSignature", "The request signature is missing.")
        secret = self.credentials.get(m["key"])
        if secret is None:
            return self._refuse(
                404, "InvalidAccessKeyId.NotFound", "Specified access key is not found."
            )
        signed = m["signed"].split(";")
        if not MUST_SIGN <= set(signed) or signed != sorted(signed):
            return self._refuse(400, "IncompleteSignature", "Required headers are not signed.")
        if request.headers.get("x-acs-content-sha256") != hashlib.sha256(body).hexdigest():
            return self._refuse(400, "InvalidParameter.ContentSHA256", "Body hash mismatch.")
        try:
            when = dt.datetime.strptime(request.headers["x-acs-date"], "%Y-%m-%dT%H:%M:%SZ")
        except (KeyError, ValueError):
            return self._refuse(400, "InvalidTimeStamp.Format", "Bad x-acs-date.")
        if abs(dt.datetime.now(dt.UTC) - when.replace(tzinfo=dt.UTC)) > CLOCK_SKEW:
            return self._refuse(
                400, "InvalidTimeStamp.Expired", "Specified time stamp or date value is expired."
            )
        query = parse_qsl(request.rel_url.raw_query_string, keep_blank_values=True)
        canon = canonical_request(
            request.method, request.rel_url.raw_path, query, request.headers, signed
        )
        to_sign = "ACS3-HMAC-SHA256\n" + hashlib.sha256(canon.encode()).hexdigest()
        expected = hmac.new(secret.encode(), to_sign.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, m["signature"]):
            return self._refuse(
                400,
                "SignatureDoesNotMatch",
                "Specified signature does not match our calculation.",
            )
        nonce = request.headers["x-acs-signature-nonce"]
        if nonce in self.nonces:
            return self._refuse(
                400, "SignatureNonceUsed", "Specified signature nonce was used already."
            )
        self.nonces.add(nonce)
        return None

    async def handle(self, request: web.Request, body: bytes) -> web.Response:
        refused = self.verify(request, body)
        if refused is not None:
            return refused
        if (request.headers.get("x-acs-action"), request.headers.get("x-acs-version")) != (
            "SendSms",
            "2017-05-25",
        ):
            return self._refuse(404, "InvalidAction.NotFound", "Specified api is not found.")
        args = dict(parse_qsl(request.rel_url.raw_query_string, keep_blank_values=True))
        if request.content_type == "application/x-www-form-urlencoded":
            args.update(parse_qsl(body.decode(), keep_blank_values=True))
        phone, sign = args.get("PhoneNumbers", ""), args.get("SignName", "")
        code = args.get("TemplateCode", "")
        try:
            params = json.loads(args.get("TemplateParam") or "{}")
        except ValueError:
            return self._business("isv.INVALID_JSON_PARAM", "JSON参数不合法")
        if sign not in self.signs:
            return self._business("isv.SMS_SIGNATURE_ILLEGAL", "该账号下找不到对应签名")
        if code not in self.templates:
            return self._business("isv.SMS_TEMPLATE_ILLEGAL", "该账号下找不到对应模板")
        if set(params) != self.templates[code]:
            return self._business("isv.TEMPLATE_MISSING_PARAMETERS", "模板变量缺少对应参数值")
        if not MOBILE.match(phone):
            return self._business("isv.MOBILE_NUMBER_ILLEGAL", "手机号码格式错误")
        biz_id = f"{900000000000000 + self.next_id()}^0"
        self.messages.append(Received(phone, sign, code, params, args.get("OutId", ""), biz_id))
        return json_answer(
            {"Code": "OK", "Message": "OK", "BizId": biz_id, "RequestId": uuid.uuid4().hex}
        )

    def _business(self, code: str, message: str) -> web.Response:
        self.refused.append(code)
        return json_answer({"Code": code, "Message": message, "RequestId": uuid.uuid4().hex})

    # -- what the carrier pushes back

    async def push_report(self, url: str, message: Received, *, delivered: bool = True) -> int:
        """POST a SmsReport batch for one message to our webhook; its HTTP status."""
        now = dt.datetime.now().strftime("%Y-%m-%d %H:%M:%S")
        report = {
            "phone_number": message.phone,
            "send_time": now,
            "report_time": now,
            "success": delivered,
            "err_code": "DELIVERED" if delivered else "MK:0001",
            "err_msg": "用户接收成功" if delivered else "用户关机",
            "sms_size": "1",
            "biz_id": message.message_id,
            "out_id": message.out_id,
        }
        return await _post(url, [report])

    async def push_upstream(self, url: str, phone: str, content: str) -> int:
        """POST a SmsUp batch (a resident's reply) to our webhook; its HTTP status."""
        up = {
            "phone_number": phone,
            "send_time": dt.datetime.now().strftime("%Y-%m-%d %H:%M:%S"),
            "content": content,
            "sign_name": "云窗口",
            "dest_code": "1234",
            "sequence_id": self.next_id(),
        }
        return await _post(url, [up])


async def _post(url: str, payload: Any) -> int:
    async with aiohttp.ClientSession() as http, http.post(url, json=payload) as resp:
        return resp.status
