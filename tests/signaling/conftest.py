"""Fixtures of the socket tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from core.settings import Settings
from tests.conftest import DEMO_PASSWORD, User
from web.app import create_app


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "settings(**kw): CLOUDWINDOW_* settings of the test's server process"
    )


@pytest.fixture
async def node(
    settings: Settings, aiohttp_client: Any
) -> AsyncIterator[Callable[[Settings], Awaitable[tuple[str, Callable[..., Awaitable[Any]]]]]]:
    """node(custom settings) -> (base url, login(username) -> User) on a fresh app.

    Takes the `settings` fixture so the test database outlives the apps started here.
    """
    sessions: list[aiohttp.ClientSession] = []

    async def start(settings: Settings) -> tuple[str, Callable[..., Awaitable[Any]]]:
        tc = await aiohttp_client(create_app(settings))
        base = str(tc.make_url("")).rstrip("/")

        async def login(username: str) -> User:
            http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
            sessions.append(http)
            user = User(http, base)
            resp = await user.login(username, DEMO_PASSWORD)
            assert resp.status == 200, await resp.text()
            return user

        return base, login

    yield start
    for h in sessions:
        await h.close()
