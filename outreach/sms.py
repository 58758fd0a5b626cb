"""SMS gateways: one interface; the embedded default records messages instead of sending."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from sqlmodel.ext.asyncio.session import AsyncSession

from core.sms import SmsGateway
from outreach.models import SmsMessage

__all__ = ["RecordingSmsGateway", "SmsGateway"]

log = logging.getLogger("cloudwindow.sms")


class RecordingSmsGateway:
    """Writes each message to sms_message (and the log) instead of a carrier.

    The embedded profile and the tests use it; a carrier's adapter implements SmsGateway and
    sends after commit. Phone numbers are logged masked.
    """

    async def send(
        self,
        session: AsyncSession,
        *,
        phone: str,
        kind: str,
        body: str = "",
        params: Mapping[str, str] | None = None,
        key: str | None = None,
    ) -> None:
        body = body or " ".join(f"{k}={v}" for k, v in (params or {}).items())
        session.add(SmsMessage(phone=phone, body=body, kind=kind))
        log.info("sms %s to %s", kind, phone[:3] + "****" + phone[-4:])
