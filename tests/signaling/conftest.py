"""Fixtures for socket tests: connect logged-in users' sockets and close them afterwards."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import pytest

from tests.signaling.helpers import Sock


@pytest.fixture
async def sock(as_user: Any) -> AsyncIterator[Callable[..., Coroutine[Any, Any, Sock]]]:
    """sock("clerk") -> a connected socket of a freshly logged-in user."""
    opened: list[Sock] = []

    async def make(username: str) -> Sock:
        s = Sock(await as_user(username))
        await s.connect()
        opened.append(s)
        return s

    yield make
    for s in opened:
        await s.close()
