"""The fuzz suite: generated HTTP requests and socket events against a real app, both databases.

Budget: both parts on both backends stay well under 90 s on a loaded 2-CPU machine (see
docs/operations.md, "Fuzz suite"). Every test here fails if the server logged a traceback.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from core.settings import Settings
from tests.conftest import base_settings
from tests.signaling.test_boundary import tracebacks

# One seed for every generated input, so a failure found once is found again on every run.
SEED = 20_251_111


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    # A fuzzer sends thousands of requests and events from one address within seconds: the
    # limits meant for people (events per second, lookups per hour, logins per address) would
    # answer almost all of them 429 / rate_limited and hide the handlers behind.
    return base_settings(
        db_url,
        tmp_path / "data",
        socket_events_per_second=100_000,
        socket_event_burst=100_000,
        resident_lookups_per_hour=1_000_000,
        login_max_failures_per_ip=1_000_000,
    )


@pytest.fixture
def server_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """The app's log records (the server runs in this process); see `assert_no_tracebacks`."""
    caplog.set_level(logging.WARNING)
    return caplog


def assert_no_tracebacks(log: pytest.LogCaptureFixture) -> None:
    found = tracebacks(log)
    assert found == [], "the server logged errors:\n" + "\n".join(found[:20])
