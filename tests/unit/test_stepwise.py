"""--sw, --sw-skip and --sw-reset over farm's store: pytest's stepwise rules, in parallel."""

from __future__ import annotations

import pytest

from farm.core.domain import Collection, Outcome, StepwiseMark, TestResult
from farm.core.pytest_options import PytestOptions
from farm.scheduler.last_failed import SOURCE, PastRuns, choose
from farm.scheduler.stepwise import LastStepwise, StepwisePlan, start, stop_after

ITEMS = ("t.py::a", "t.py::b", "t.py::c", "t.py::d")
SW = PytestOptions(stepwise=True)


def _result(node_id: str, outcome: Outcome) -> TestResult:
    return TestResult("run", 0, 1, node_id, outcome, 0.1)


def _last(last_failed: str | None, count: int = 4, age_s: float = 65.4) -> LastStepwise:
    return LastStepwise(StepwiseMark(last_failed, count), "r1", age_s)


def test_skips_the_tests_before_the_last_mark_in_pytests_words() -> None:
    begun = start(ITEMS, _last("t.py::c"), SW, test_count=4)
    assert begun.items == ("t.py::c", "t.py::d")
    assert begun.deselected == 2
    assert begun.line == (
        "skipping 2 already passed items (cache from 0:01:05 ago, use --sw-reset to discard)."
    )
    assert begun.plan == StepwisePlan(4, skip=False, previous="t.py::c", stops_run=True)


@pytest.mark.parametrize(
    ("last", "options", "line", "previous"),
    [
        (None, SW, "no previously failed tests, not skipping.", None),
        (_last(None), SW, "no previously failed tests, not skipping.", None),
        (_last("t.py::c", 5), SW, "test count changed, not skipping (now 4 tests, previously 5).",
         None),
        (_last("t.py::gone"), SW, "previously failed test not found, not skipping.", "t.py::gone"),
        (_last("t.py::c"), PytestOptions(stepwise=True, stepwise_reset=True),
         "resetting state, not skipping.", None),
    ],
)  # fmt: skip
def test_runs_everything_when_pytest_would(
    last: LastStepwise | None, options: PytestOptions, line: str, previous: str | None
) -> None:
    begun = start(ITEMS, last, options, test_count=4)
    assert (begun.items, begun.deselected, begun.line) == (ITEMS, 0, line)
    assert begun.plan.previous == previous


def test_the_mark_is_the_first_test_in_collection_order_that_did_not_pass() -> None:
    plan = StepwisePlan(4, skip=False, previous=None)
    # b failed and stopped the run; d had passed meanwhile on another worker.
    final = {
        "t.py::d": _result("t.py::d", Outcome.PASSED),
        "t.py::a": _result("t.py::a", Outcome.PASSED),
        "t.py::b": _result("t.py::b", Outcome.FAILED),
    }
    assert plan.mark(ITEMS, final) == StepwiseMark("t.py::b", 4)
    # a never ran before b's failure stopped the run: nothing before a passed.
    del final["t.py::a"]
    assert plan.mark(ITEMS, final) == StepwiseMark("t.py::a", 4)


def test_sw_skip_passes_over_the_first_failure_to_arrive() -> None:
    plan = StepwisePlan(4, skip=True, previous="t.py::a")
    final = {n: _result(n, Outcome.PASSED) for n in ITEMS}
    final["t.py::a"] = _result("t.py::a", Outcome.FAILED)
    final["t.py::c"] = _result("t.py::c", Outcome.ERROR)
    assert plan.mark(ITEMS, final) == StepwiseMark("t.py::c", 4)


@pytest.mark.parametrize(
    ("previous", "outcome", "mark"),
    [
        ("t.py::b", Outcome.PASSED, None),  # the marked test passed: start over next time
        ("t.py::b", Outcome.SKIPPED, "t.py::b"),  # pytest clears it on a passing call only
        ("t.py::gone", Outcome.PASSED, "t.py::gone"),  # not found: the mark stays
    ],
)
def test_with_no_failure_the_mark_clears_as_pytest_clears_it(
    previous: str, outcome: Outcome, mark: str | None
) -> None:
    final = {n: _result(n, Outcome.PASSED) for n in ITEMS}
    final["t.py::b"] = _result("t.py::b", outcome)
    plan = StepwisePlan(4, skip=False, previous=previous)
    assert plan.mark(ITEMS, final) == StepwiseMark(mark, 4)


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (PytestOptions(), (0, False)),
        (PytestOptions(maxfail=3), (3, False)),
        (SW, (1, True)),
        (PytestOptions(stepwise=True, stepwise_skip=True), (2, True)),
        (PytestOptions(stepwise=True, maxfail=1), (1, False)),  # -x says so first
        (PytestOptions(stepwise=True, stepwise_skip=True, maxfail=1), (1, False)),
        (PytestOptions(stepwise=True, maxfail=5), (1, True)),
    ],
)
def test_stop_after(options: PytestOptions, expected: tuple[int, bool]) -> None:
    assert stop_after(options) == expected


def test_choose_counts_the_skipped_tests_as_deselected_and_names_the_run() -> None:
    collection = Collection("/r", "", ITEMS, deselected=1, options=SW)
    chosen = choose(collection, PastRuns(stepwise=_last("t.py::b", count=5, age_s=3)))
    assert chosen.collection.node_ids == ITEMS[1:]
    assert chosen.collection.deselected == 2  # -k's one, then the one stepwise skipped
    assert chosen.lines == (
        "stepwise: skipping 1 already passed items (cache from 0:00:03 ago, use --sw-reset"
        f" to discard). ({SOURCE}, run r1)",
    )
    assert chosen.stepwise == StepwisePlan(5, skip=False, previous="t.py::b")
