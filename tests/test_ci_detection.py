"""CI is recognised by the values CI services really set, so a required server is never skipped."""

from __future__ import annotations

import pytest

from tests.conftest import in_ci


# Most services set true; some 1 or yes, and Woodpecker sets its own name.
@pytest.mark.parametrize(
    "value", ["true", "True", "TRUE", "1", "yes", "YES", "on", " true ", "woodpecker"]
)
def test_truthy_values_mean_ci(value: str) -> None:
    assert in_ci({"CI": value})


@pytest.mark.parametrize("value", ["", "0", "false", "False", "no", "off"])
def test_unset_or_false_values_mean_a_developer_machine(value: str) -> None:
    assert not in_ci({"CI": value})
    assert not in_ci({})
