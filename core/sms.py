"""The port through which core and the domains send SMS; outreach provides the gateways."""

from __future__ import annotations

from typing import Protocol

from sqlmodel.ext.asyncio.session import AsyncSession


class SmsGateway(Protocol):
    async def send(self, session: AsyncSession, *, phone: str, body: str, kind: str) -> None:
        """Queue a message; it is sent when the caller's transaction commits."""
