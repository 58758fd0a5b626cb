"""Carriers: what the outbox's sender hands a message to (Aliyun SMS, Tencent Cloud SMS).

Each adapter calls its carrier's official SDK in a worker thread (the SDKs block), with the
SDK's own retries off and its connect and read timeouts set, so an attempt ends within
`sms_timeout_seconds` and the outbox alone decides about retrying.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

from core.residents import mask_phone  # 138****8000, as everywhere else
from core.settings import Settings

PHONE_RUN = re.compile(r"\+?\d{7,}")


def scrub(text: str, limit: int = 200) -> str:
    """A carrier's message with any phone-number-like run of digits masked, cut to `limit`."""
    return PHONE_RUN.sub(lambda m: mask_phone(m.group(0)), text)[:limit]


class PhoneScrubber(logging.Filter):
    """Masks phone numbers in records of the SDKs' loggers: at DEBUG, urllib3 logs the request
    URL (Aliyun sends the number in the query) and the Tencent SDK logs its answers."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        masked = PHONE_RUN.sub(lambda m: mask_phone(m.group(0)), text)
        if masked != text:
            record.msg, record.args = masked, None
        return True


SDK_LOGGERS = ("urllib3.connectionpool", "tencentcloud_sdk_common", "darabonba-core")


def scrub_sdk_logs() -> None:
    """Put the PhoneScrubber on the SDKs' loggers (once; a carrier calls it when built)."""
    for name in SDK_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, PhoneScrubber) for f in logger.filters):
            logger.addFilter(PhoneScrubber())


@dataclass(frozen=True)
class Outgoing:
    """One attempt at one message, as a carrier needs it."""

    out_id: str  # ours, the same on every attempt (OutId / SessionContext)
    phone: str
    kind: str  # the template; each carrier knows its own code for it and its sign name
    params: Mapping[str, str]


@dataclass(frozen=True)
class Accepted:
    message_id: str  # the carrier's id (Aliyun BizId, Tencent SerialNo)


class CarrierError(Exception):
    """The carrier did not take the message: `permanent` ones are not tried again."""

    def __init__(self, code: str, message: str, *, permanent: bool) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code[:64]
        self.message = scrub(message)
        self.permanent = permanent


class Carrier(Protocol):
    name: str

    async def send(self, message: Outgoing) -> Accepted:
        """Hand one message to the carrier; CarrierError when it is not taken."""
        ...


def split_endpoint(url: str) -> tuple[str, str]:
    """("https", "host:port") from an endpoint setting; a bare host means https."""
    if "://" not in url:
        return "https", url.strip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"SMS endpoint must be http(s)://host[:port], got {url!r}")
    return parts.scheme, parts.netloc


def build_carrier(settings: Settings) -> Carrier | None:
    """The carrier the settings name; None for the recording gateway (nothing to send)."""
    if settings.sms_carrier == "aliyun":
        from outreach.carriers.aliyun import AliyunCarrier

        return AliyunCarrier(settings)
    if settings.sms_carrier == "tencent":
        from outreach.carriers.tencent import TencentCarrier

        return TencentCarrier(settings)
    return None
