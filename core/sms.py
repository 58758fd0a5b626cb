"""The port through which core and the domains send SMS; outreach provides the gateways.

A message is a template (`kind`, registered with the carrier as a template code under a sign
name) with parameters. `body` is the rendered text for the embedded gateway and the log;
`key` makes sending idempotent: a second message with the same key is not sent again.
`not_before` holds a message back until then (quiet hours are the caller's rule).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Protocol

from sqlmodel.ext.asyncio.session import AsyncSession


class SmsGateway(Protocol):
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
        """Queue a message; it is sent when the caller's transaction commits."""
