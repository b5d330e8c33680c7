"""The pytest options' facts: written once, read back, old cache entries still readable."""

from __future__ import annotations

import pytest

from farm.core.pytest_options import PytestOptions


def test_facts_round_trip() -> None:
    options = PytestOptions(maxfail=2, reportchars="sxXEf")
    assert PytestOptions.from_facts(options.to_facts()) == options


def test_a_missing_fact_takes_its_default() -> None:
    # A collection cached before an option existed is read with that option unset.
    assert PytestOptions.from_facts({"maxfail": 1}) == PytestOptions(maxfail=1)
    assert PytestOptions.from_facts({}) == PytestOptions()


@pytest.mark.parametrize("facts", [{"maxfail": "1"}, {"reportchars": 3}, {"maxfail": True}])
def test_a_fact_of_the_wrong_type_is_refused(facts: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="wrong type"):
        PytestOptions.from_facts(facts)
