"""CI is recognised by the values CI services really set, so a required server is never skipped."""

from __future__ import annotations

import pytest

from tests.conftest import in_ci


@pytest.mark.parametrize("value", ["true", "True", "TRUE", "1", "yes", " true "])
def test_truthy_values_mean_ci(value: str) -> None:
    assert in_ci({"CI": value})


@pytest.mark.parametrize("value", ["", "0", "false", "False", "no", "off"])
def test_unset_or_false_values_mean_a_developer_machine(value: str) -> None:
    assert not in_ci({"CI": value})
    assert not in_ci({})
