"""The PostgreSQL pool after the server dropped its connections (a restart, a failover)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from sqlalchemy import text

from core.db import Database
from tests.conftest import Templates, _pg_admin


@pytest.fixture
def pg_url(templates: Templates) -> Iterator[str]:
    templates.require_pg()
    url = templates.clone("postgresql", templates.get("postgresql", "demo"))
    yield url
    templates.drop("postgresql", url)


async def test_a_request_after_the_server_dropped_every_pooled_connection_succeeds(
    pg_url: str,
) -> None:
    db = Database(pg_url, pool_size=3)
    try:
        # Fill the pool: three connections, each used once and returned.
        sessions = [db.sessionmaker() for _ in range(3)]
        for s in sessions:
            await s.execute(text("SELECT 1"))
        for s in sessions:
            await s.close()
        assert db.engine.pool.checkedin() == 3
        name = pg_url.rsplit("/", 1)[1]
        await _pg_admin(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            f"WHERE datname = '{name}' AND pid <> pg_backend_pid()"
        )
        await asyncio.sleep(0.3)  # the closed sockets reach the event loop
        # What the next users do: every request gets an answer, none an error.
        for _ in range(4):
            async with db.session() as s:
                assert (await s.execute(text("SELECT 41 + 1"))).scalar_one() == 42
    finally:
        await db.dispose()
