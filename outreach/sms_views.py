"""The carriers' callbacks: delivery reports and residents' replies, for Aliyun and Tencent.

Neither carrier signs its callbacks (their documentation gives none for the HTTP push of
delivery reports and upstream messages), so the URL registered in each console carries a
shared token, `?token=<sms_webhook_token>`, compared in constant time. Only the path reaches
the access log, never the query. A wrong or missing token is 403 and changes nothing; with no
token configured the callbacks answer 404. Carriers retry a push until it is acknowledged,
so every callback is idempotent: the first report of a message is kept, and unsubscribing
twice stops nothing more.
"""

from __future__ import annotations

import datetime as dt
import hmac
import logging
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, RootModel

from core import idnumber
from core.db import utcnow
from core.errors import AppError, Forbidden, NotFound
from core.settings import Settings
from httpapi.api import Api, Ctx
from outreach import licences, outbox, sms
from outreach.carriers import mask_phone
from outreach.carriers.aliyun import ACK as ALIYUN_ACK
from outreach.carriers.aliyun import AliyunReport, AliyunUpstream
from outreach.carriers.tencent import ACK as TENCENT_ACK
from outreach.carriers.tencent import TencentReply, TencentReport

log = logging.getLogger("cloudwindow.sms")

V1 = "/api/v1"
MAX_BATCH = 1000  # reports in one push; carriers send at most a few hundred


class CallbackQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    token: str = Field(default="", max_length=200, description="The shared callback token.")


class AliyunReports(RootModel[list[AliyunReport]]):
    root: list[AliyunReport] = Field(max_length=MAX_BATCH)


class AliyunUpstreams(RootModel[list[AliyunUpstream]]):
    root: list[AliyunUpstream] = Field(max_length=MAX_BATCH)


class TencentReports(RootModel[list[TencentReport]]):
    root: list[TencentReport] = Field(max_length=MAX_BATCH)


class TencentReplies(RootModel[TencentReply | list[TencentReply]]):
    root: TencentReply | list[TencentReply]


class AliyunAck(BaseModel):
    code: int
    msg: str


class TencentAck(BaseModel):
    result: int
    errmsg: str


def _check_token(ctx: Ctx) -> None:
    expected = ctx.settings.sms_webhook_token
    if not expected:
        raise NotFound("短信回调", "SMS callback")
    given = ctx.query.token if ctx.query is not None else ""
    if not given.isascii() or not hmac.compare_digest(given.encode(), expected.encode()):
        raise Forbidden("sms.callback_token")


def _local_time(text: str, settings: Settings) -> dt.datetime:
    """A carrier's "2024-01-02 03:04:05" (local time) as UTC; now when it is not one."""
    try:
        naive = dt.datetime.strptime(text, "%Y-%m-%d %H:%M:%S")
    except ValueError:
        return utcnow()
    return naive.replace(tzinfo=ZoneInfo(settings.timezone)).astimezone(dt.UTC)


async def aliyun_reports(ctx: Ctx) -> dict[str, Any]:
    _check_token(ctx)
    changed = 0
    for r in ctx.body.root:
        changed += await outbox.record_report(
            ctx.session,
            carrier="aliyun",
            delivered=r.success,
            code=r.err_code,
            at=_local_time(r.report_time, ctx.settings),
            message_id=r.biz_id,
            out_id=r.out_id,
        )
    log.info("sms: %d aliyun reports, %d new", len(ctx.body.root), changed)
    return ALIYUN_ACK


async def tencent_reports(ctx: Ctx) -> dict[str, Any]:
    _check_token(ctx)
    changed = 0
    for r in ctx.body.root:
        changed += await outbox.record_report(
            ctx.session,
            carrier="tencent",
            delivered=r.report_status.upper() == "SUCCESS",
            code=r.errmsg,
            at=_local_time(r.user_receive_time, ctx.settings),
            message_id=r.sid,
        )
    log.info("sms: %d tencent reports, %d new", len(ctx.body.root), changed)
    return TENCENT_ACK


async def _reply(ctx: Ctx, raw_phone: str, text: str) -> None:
    try:
        phone = idnumber.normalize_phone(raw_phone)
    except AppError:
        log.info("sms reply from an unusable number %s ignored", mask_phone(raw_phone))
        return
    await sms.reply(ctx.session, phone=phone, text=text, opt_out=licences.opt_out_phone)


async def aliyun_upstream(ctx: Ctx) -> dict[str, Any]:
    _check_token(ctx)
    for up in ctx.body.root:
        await _reply(ctx, up.phone_number, up.content)
    return ALIYUN_ACK


async def tencent_replies(ctx: Ctx) -> dict[str, Any]:
    _check_token(ctx)
    root = ctx.body.root
    for r in root if isinstance(root, list) else [root]:
        phone = r.mobile if r.nationcode in ("", "86") else f"+{r.nationcode}{r.mobile}"
        await _reply(ctx, phone, r.text)
    return TENCENT_ACK


def register(api: Api) -> None:
    def callback(path: str, handler: Any, body: Any, ack: Any, summary: str) -> None:
        api.add(
            "POST",
            f"{V1}/sms/{path}",
            handler,
            summary=summary,
            auth=False,
            body=body,
            query=CallbackQuery,
            response=ack,
            tags=("sms",),
        )

    callback(
        "aliyun/reports",
        aliyun_reports,
        AliyunReports,
        AliyunAck,
        "Aliyun SMS delivery reports (SmsReport push; ?token= the shared callback token)",
    )
    callback(
        "aliyun/replies",
        aliyun_upstream,
        AliyunUpstreams,
        AliyunAck,
        "Aliyun SMS replies from residents (SmsUp push); 退订 / TD / T unsubscribes",
    )
    callback(
        "tencent/reports",
        tencent_reports,
        TencentReports,
        TencentAck,
        "Tencent Cloud SMS delivery reports (status callback; ?token= the shared token)",
    )
    callback(
        "tencent/replies",
        tencent_replies,
        TencentReplies,
        TencentAck,
        "Tencent Cloud SMS replies from residents (reply callback); 退订 / TD / T unsubscribes",
    )
