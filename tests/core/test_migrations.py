"""The checked-in migrations build exactly the schema the models describe."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from core.db import Database
from web.schema import metadata


@pytest.mark.dataset("empty")
async def test_models_and_migrations_agree(db_url: str) -> None:
    db = Database(db_url)
    try:
        async with db.engine.connect() as conn:
            diff = await conn.run_sync(
                lambda sync: compare_metadata(
                    MigrationContext.configure(sync, opts={"compare_type": True}), metadata()
                )
            )
    finally:
        await db.dispose()
    assert diff == [], f"models differ from migrations; add a migration: {diff}"
