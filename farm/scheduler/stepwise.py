"""``--sw``/``--stepwise`` and ``--sw-skip`` as pytest's stepwise plugin does them, with
the run's *mark* kept in farm's store instead of pytest's cache: pure logic, no I/O.

pytest's stepwise plugin stops a session at its first failing test and remembers it
with the number of tests collected; the next ``--sw`` session deselects the tests
before it (``skipping N already passed items``), unless the count changed or the
test is gone. ``--sw-skip`` ignores one failure, ``--sw-reset`` forgets the mark.

farm runs tests in parallel, so when the run stops at its first failing result some
tests before that one (in collection order) may not have run yet. The mark a run
leaves is therefore the first of its tests, in collection order, that did not pass
(failed, or never ran): every test before it really passed, as pytest's rule
promises. When the run happens to reach its tests in collection order this is
pytest's mark exactly: the failing test that stopped it.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from farm.core.domain import Outcome, StepwiseMark, TestResult, is_test
from farm.core.pytest_options import PytestOptions

STOP_REASON = "Test failed, continuing from this test next run."  # pytest's words
# Outcomes whose report pytest's plugin does not take for a pass of the marked test.
_NOT_PASSED = frozenset({Outcome.SKIPPED, Outcome.XFAILED})


@dataclass(frozen=True)
class LastStepwise:
    """The mark the project's latest ``--sw`` run left, how old it is and whose it is."""

    mark: StepwiseMark
    run_id: str
    age_s: float


@dataclass(frozen=True)
class StepwiseStart:
    """What ``--sw`` leaves of a run's tests: ``items`` in order, how many of the
    tests before them it deselected, pytest's line saying why, and what the run
    needs at its end to leave its own mark (``plan``)."""

    items: tuple[str, ...]
    deselected: int
    line: str
    plan: StepwisePlan


@dataclass(frozen=True)
class StepwisePlan:
    """What a ``--sw`` run needs at its end to leave its mark."""

    test_count: int
    skip: bool  # --sw-skip: the first failing result stops nothing and marks nothing
    previous: str | None  # the mark the run started from (None: reset or none)
    stops_run: bool = True  # its first failure stops the run (not -x or --maxfail first)

    def mark(self, items: Sequence[str], final: Mapping[str, TestResult]) -> StepwiseMark:
        """The run's mark: its first test in collection order (``items``) that did
        not pass or never ran. ``final`` holds the run's final results in the order
        they arrived: under ``--sw-skip`` the first failing one is passed over.

        With no such test the previous mark stays if this run did not hold it, or
        held it and only skipped it (pytest clears it only when it passes)."""
        ignored = None
        if self.skip:
            ignored = next((n for n, r in final.items() if r.outcome.is_failure), None)
        for node_id in items:
            result = final.get(node_id)
            if node_id == ignored or not is_test(node_id):
                continue
            if result is None or result.outcome.is_failure:
                return StepwiseMark(node_id, self.test_count)
        previous = self.previous
        result = final.get(previous) if previous is not None else None
        if result is not None and result.outcome not in _NOT_PASSED:
            previous = None
        return StepwiseMark(previous, self.test_count)


def stop_after(options: PytestOptions) -> tuple[int, bool]:
    """How many failing results stop the run (0: none), and whether ``--sw`` is
    what stops it: ``-x``/``--maxfail`` win when they stop it no later, as
    pytest checks them first."""
    if not options.stepwise:
        return options.maxfail, False
    limit = 2 if options.stepwise_skip else 1
    if options.maxfail and options.maxfail <= limit:
        return options.maxfail, False
    return limit, True


def start(
    items: Sequence[str],
    last: LastStepwise | None,
    options: PytestOptions,
    *,
    test_count: int,
) -> StepwiseStart:
    """Deselect the tests before the last mark, as pytest's stepwise plugin does.

    ``test_count`` is the number of tests pytest's plugin would count (before
    ``-k``/``-m`` deselect any).
    """
    mark = None if last is None or options.stepwise_reset else last.mark
    stops = stop_after(options)[1]

    def kept(line: str, previous: str | None) -> StepwiseStart:
        plan = StepwisePlan(test_count, options.stepwise_skip, previous, stops)
        return StepwiseStart(tuple(items), 0, line, plan)

    if options.stepwise_reset:
        return kept("resetting state, not skipping.", None)
    if mark is None or mark.last_failed is None:
        return kept("no previously failed tests, not skipping.", None)
    assert last is not None
    if mark.test_count != test_count:
        changed = f"now {test_count} tests, previously {mark.test_count}"
        return kept(f"test count changed, not skipping ({changed}).", None)
    try:
        index = list(items).index(mark.last_failed)
    except ValueError:
        return kept("previously failed test not found, not skipping.", mark.last_failed)
    age = datetime.timedelta(seconds=int(max(last.age_s, 0.0)))
    line = (
        f"skipping {index} already passed items (cache from {age} ago, use --sw-reset to discard)."
    )
    plan = StepwisePlan(test_count, options.stepwise_skip, mark.last_failed, stops)
    return StepwiseStart(tuple(items[index:]), index, line, plan)
