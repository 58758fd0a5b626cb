"""Wrong passwords cannot lock the real user out: limits follow the guessing address."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from core import staff
from core.db import Database, keep_refusals
from core.errors import RateLimited, Unauthenticated
from core.settings import Settings
from tests.conftest import DEMO_PASSWORD


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[Database]:
    database = Database(settings.effective_database_url)
    yield database
    await database.dispose()


async def attempt(db: Database, settings: Settings, ip: str, password: str) -> str:
    """One login as the demo clerk from an address, in its own unit of work."""
    async with db.session() as session:
        try:
            async with keep_refusals(session):
                await staff.login(
                    session=session,
                    passwords=staff.Passwords(settings),
                    settings=settings,
                    username="clerk",
                    password=password,
                    ip=ip,
                )
            await session.commit()
        except Unauthenticated:
            return "refused"
        except RateLimited:
            return "limited"
    return "ok"


async def test_an_attacker_locks_only_their_own_address(db: Database, settings: Settings) -> None:
    fast = settings.model_copy(update={"password_hash_time_cost": 1, "password_hash_memory_kib": 8})
    attacker = [await attempt(db, fast, "203.0.113.9", "wrong-password") for _ in range(6)]
    assert attacker == ["refused"] * 5 + ["limited"]
    # The clerk at the counter still gets in, from their own address.
    assert await attempt(db, fast, "198.51.100.20", DEMO_PASSWORD) == "ok"


async def test_many_addresses_guessing_one_account_slow_it_down(
    db: Database, settings: Settings
) -> None:
    fast = settings.model_copy(
        update={
            "password_hash_time_cost": 1,
            "password_hash_memory_kib": 8,
            "login_max_failures": 2,
        }
    )
    free = fast.login_max_failures * staff.ACCOUNT_FREE_FAILURES_FACTOR  # 8
    results = [await attempt(db, fast, f"203.0.113.{i}", "wrong-password") for i in range(free)]
    assert results == ["refused"] * free
    # The next attempt, from yet another address, has to wait a little: not a lockout.
    assert await attempt(db, fast, "203.0.113.200", DEMO_PASSWORD) == "limited"
