"""Every materials test runs on both object stores: the local directory and real S3."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from core.settings import Settings
from tests.conftest import base_settings


@pytest.fixture
def settings(db_url: str, tmp_path: Path, storage_settings: dict[str, Any]) -> Settings:
    return base_settings(
        db_url, tmp_path / "data", upload_part_bytes=5 * 1024 * 1024, **storage_settings
    )
