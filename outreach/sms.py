"""SMS gateways: the outbox for a carrier, and the embedded default that records instead.

Both implement core.sms.SmsGateway and queue in the caller's transaction (outreach.outbox):
with a carrier, this node's sender sends after commit; the recording gateway marks the row
sent at once and keeps the text in sms_message, so the embedded profile needs no server.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager

from sqlmodel.ext.asyncio.session import AsyncSession

from core.db import Database
from core.settings import Settings
from core.sms import SmsGateway
from outreach import outbox
from outreach.carriers import build_carrier, mask_phone
from outreach.models import SmsMessage

__all__ = ["OutboxSmsGateway", "RecordingSmsGateway", "SmsGateway", "build_gateway", "sending"]

log = logging.getLogger("cloudwindow.sms")


class OutboxSmsGateway:
    """Queues each message in the outbox; this node's sender sends it once the caller commits."""

    recorded = False

    def __init__(self, *, sign: str = "云窗口") -> None:
        self.sign = sign
        self.wake = asyncio.Event()  # set after a commit that queued a message

    async def send(
        self,
        session: AsyncSession,
        *,
        phone: str,
        kind: str,
        body: str = "",
        params: Mapping[str, str] | None = None,
        key: str | None = None,
        not_before: dt.datetime | None = None,
    ) -> None:
        queued = await outbox.enqueue(
            session,
            phone=phone,
            kind=kind,
            sign=self.sign,
            body=body,
            params=params,
            key=key,
            not_before=not_before,
            recorded=self.recorded,
        )
        if queued.id is not None:
            await self._queued(session, phone=phone, kind=kind, queued=queued)
            self._wake(session)

    async def send_many(self, session: AsyncSession, messages: list[outbox.Message]) -> int:
        """Queue many messages in one INSERT per few hundred (a day's reminders); how many
        were new."""
        queued = await outbox.enqueue_many(
            session, messages, sign=self.sign, recorded=self.recorded
        )
        new = 0
        for m, q in zip(messages, queued, strict=True):
            if q.id is not None:
                new += 1
                await self._queued(session, phone=m.phone, kind=m.kind, queued=q)
        if new:
            self._wake(session)
        return new

    async def _queued(
        self, session: AsyncSession, *, phone: str, kind: str, queued: outbox.Queued
    ) -> None:
        log.info("sms #%d %s to %s queued", queued.id, kind, mask_phone(phone))

    def _wake(self, session: AsyncSession) -> None:
        outbox.wake_after_commit(session, self.wake)


class RecordingSmsGateway(OutboxSmsGateway):
    """The embedded default: nothing leaves the machine. The outbox row is marked sent at once
    (carrier "recording") and the text, secrets included, goes to sms_message, where the
    embedded profile and the tests read it. Phone numbers are logged masked."""

    recorded = True

    async def _queued(
        self, session: AsyncSession, *, phone: str, kind: str, queued: outbox.Queued
    ) -> None:
        session.add(SmsMessage(phone=phone, body=queued.body[:500], kind=kind))
        log.info("sms #%d %s to %s recorded", queued.id, kind, mask_phone(phone))

    def _wake(self, session: AsyncSession) -> None:
        """Nothing to wake: a recorded message is sent already."""


async def send_many(sms: SmsGateway, session: AsyncSession, messages: list[outbox.Message]) -> None:
    """Queue the messages through `sms`: in batches when it is an outbox gateway, else one by
    one through the port."""
    if isinstance(sms, OutboxSmsGateway):
        await sms.send_many(session, messages)
        return
    for m in messages:
        params = {k: str(v) for k, v in (m.params or {}).items()}
        await sms.send(
            session,
            phone=m.phone,
            kind=m.kind,
            body=m.body,
            params=params,
            key=m.key,
            not_before=m.not_before,
        )


def build_gateway(settings: Settings) -> OutboxSmsGateway:
    """The gateway the settings name (sms_carrier)."""
    if settings.sms_carrier == "recording":
        return RecordingSmsGateway(sign=settings.sms_sign_name)
    own = {"aliyun": settings.sms_aliyun_sign_name, "tencent": settings.sms_tencent_sign_name}
    return OutboxSmsGateway(sign=own.get(settings.sms_carrier) or settings.sms_sign_name)


@asynccontextmanager
async def sending(
    gateway: SmsGateway, *, db: Database, settings: Settings, node_id: str
) -> AsyncIterator[outbox.Sender | None]:
    """This node's sender, running while the context is open; none for the recording gateway.

    The carrier is built here, at startup, so missing credentials or template codes stop the
    node at once instead of failing every message.
    """
    carrier = build_carrier(settings)
    if carrier is None:
        yield None
        return
    wake = gateway.wake if isinstance(gateway, OutboxSmsGateway) else None
    sender = outbox.Sender(db=db, carrier=carrier, settings=settings, node_id=node_id, wake=wake)
    task = asyncio.create_task(sender.run(), name="sms-sender")
    log.info("sms: sending through %r", carrier)
    try:
        yield sender
    finally:
        await sender.stop(task)


# What a resident replies to stop messages: the carriers' own unsubscribe keywords.
UNSUBSCRIBE = frozenset({"退订", "TD", "T"})
OptOut = Callable[..., Awaitable[int]]  # opt_out(session, *, phone) -> reminders stopped


def is_unsubscribe(text: str) -> bool:
    """退订, TD or T, in any case, with spaces and punctuation around it."""
    word = text.strip().strip("。.!！ ").upper()
    return word in UNSUBSCRIBE


async def reply(session: AsyncSession, *, phone: str, text: str, opt_out: OptOut) -> bool:
    """A resident's reply: an unsubscribe keyword stops their reminders; True when it was one."""
    if not is_unsubscribe(text):
        log.info("sms reply from %s ignored (not an unsubscribe keyword)", mask_phone(phone))
        return False
    stopped = await opt_out(session, phone=phone)
    log.info("sms reply from %s: unsubscribed (%d stopped)", mask_phone(phone), stopped)
    return True
