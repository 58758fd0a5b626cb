"""The full database schema: every domain's tables, for migrations and the drift test."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import MetaData
from sqlmodel import SQLModel

MIGRATIONS = Path(__file__).parent / "migrations"


def metadata() -> MetaData:
    """Import every models module so its tables register, then return the shared metadata."""
    import core.jobs
    import core.models  # noqa: F401
    import media.models  # noqa: F401
    import outreach.models  # noqa: F401
    import scheduler.models  # noqa: F401
    import signaling.models  # noqa: F401
    import supervision.models  # noqa: F401
    import uploads.models  # noqa: F401

    return SQLModel.metadata


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade_sync(url: str, revision: str = "head") -> None:
    """Apply migrations (blocking; env.py runs its own event loop)."""
    command.upgrade(alembic_config(url), revision)


async def upgrade(url: str, revision: str = "head") -> None:
    """Apply migrations from async code without blocking the running loop."""
    await asyncio.to_thread(upgrade_sync, url, revision)
