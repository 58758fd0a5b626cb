"""Every materials test runs on both object stores: the local directory and real S3."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from core.settings import Settings
from tests.conftest import base_settings

STORES = ("local", "s3")


@pytest.fixture(params=STORES)
def storage(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def storage_settings(storage: str, request: pytest.FixtureRequest) -> dict[str, Any]:
    if storage == "local":
        return {"storage_backend": "local"}
    server = request.getfixturevalue("s3_server")
    return {
        "storage_backend": "s3",
        "s3_endpoint_url": server.endpoint,
        "s3_access_key_id": server.access_key,
        "s3_secret_access_key": server.secret_key,
        "s3_bucket": f"cw-{uuid.uuid4().hex[:12]}",
    }


@pytest.fixture
def settings(db_url: str, tmp_path: Path, storage_settings: dict[str, Any]) -> Settings:
    return base_settings(
        db_url, tmp_path / "data", upload_part_bytes=5 * 1024 * 1024, **storage_settings
    )
