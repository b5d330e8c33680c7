"""Narrowing an order-dependent test down to one module, with an injected probe in
place of pytest: the trials it asks for, what it finds, and what it says."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import pytest

from farm.core.domain import AttemptOrder, Outcome
from farm.run.bisect import Bisection, Finding, Trial, bisect, diagnosis
from farm.run.isolate import IsolateRequest, Isolation, choose_attempt

MODULES = [f"tests/test_{i:02}.py" for i in range(13)]


class Recorder:
    """A probe: the test fails after ``breaks`` (all of them), or, with ``fixes``,
    fails unless some module of it ran first; it keeps every list it was given."""

    def __init__(self, breaks: Sequence[str] = (), fixes: Sequence[str] = ()) -> None:
        self.breaks, self.fixes = set(breaks), set(fixes)
        self.asked: list[tuple[str, ...]] = []

    def __call__(self, modules: Sequence[str]) -> Outcome:
        self.asked.append(tuple(modules))
        ran = set(modules)
        if self.fixes:
            return Outcome.PASSED if ran & self.fixes else Outcome.FAILED
        return Outcome.FAILED if self.breaks and self.breaks <= ran else Outcome.PASSED


@pytest.mark.parametrize("culprit", MODULES)
def test_one_polluting_module_is_found_in_log_n_trials(culprit: str) -> None:
    probe = Recorder(breaks=[culprit])
    found = bisect(MODULES, probe)
    assert (found.finding, found.culprit) == (Finding.CULPRIT, culprit)
    assert (found.alone, found.after_all) == (Outcome.PASSED, Outcome.FAILED)
    assert len(found.trials) <= math.ceil(math.log2(len(MODULES))) + 3
    assert probe.asked[:2] == [(), tuple(MODULES)]
    for asked in probe.asked:  # every trial keeps the order the modules ran in
        assert list(asked) == [m for m in MODULES if m in asked]


@pytest.mark.parametrize("count", [1, 2, 3, 8, 100])
def test_a_module_the_test_needs_is_found_whatever_the_count(count: int) -> None:
    modules = [f"m{i}.py" for i in range(count)]
    needed = modules[count // 3]
    found = bisect(modules, Recorder(fixes=[needed]))
    assert (found.finding, found.culprit) == (Finding.CULPRIT, needed)
    assert (found.alone, found.after_all) == (Outcome.FAILED, Outcome.PASSED)
    assert len(found.trials) <= math.ceil(math.log2(count)) + 3


def test_the_module_found_is_confirmed_alone() -> None:
    probe = Recorder(breaks=[MODULES[-1]])
    found = bisect(MODULES, probe)
    assert probe.asked[-1] == (MODULES[-1],)
    assert found.trials[-1] == Trial((MODULES[-1],), Outcome.FAILED)


def test_same_outcome_alone_and_after_them_stops_after_two_trials() -> None:
    probe = Recorder()
    found = bisect(MODULES, probe)
    assert found.finding is Finding.NOT_ORDER and found.culprit == ""
    assert probe.asked == [(), tuple(MODULES)]


def test_modules_that_act_only_together() -> None:
    found = bisect(MODULES, Recorder(breaks=[MODULES[1], MODULES[11]]))
    assert found.finding is Finding.TOGETHER and found.culprit == ""


def test_each_trial_is_heard_as_it_ends() -> None:
    heard: list[Trial] = []
    found = bisect(MODULES, Recorder(breaks=[MODULES[4]]), heard.append)
    assert tuple(heard) == found.trials


def test_nothing_to_bisect_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        bisect([], Recorder())


def made(finding: Finding, *trials: tuple[Sequence[str], Outcome], culprit: str = "") -> Bisection:
    """A bisection that ran ``trials`` (modules, outcome) and found ``finding``."""
    return Bisection(finding, tuple(Trial(tuple(m), o) for m, o in trials), culprit)


class TestDiagnosis:
    NODE = "tests/test_b.py::test_needs_a"
    WHERE = "on w:12 (host-a), run 3f2a attempt 1, which failed"

    def test_passes_alone_fails_after_a_polluter(self) -> None:
        trials = [([], Outcome.PASSED), (MODULES[:3], Outcome.FAILED)]
        found = made(Finding.CULPRIT, *trials, (MODULES[:1], Outcome.FAILED), culprit=MODULES[0])
        assert diagnosis(found, self.NODE, self.WHERE) == (
            f"{self.NODE} passes alone, fails after tests/test_00.py (which ran before it "
            f"{self.WHERE}): it depends on state that module leaves"
        )

    def test_fails_alone_passes_after_the_module_it_needs(self) -> None:
        trials = [([], Outcome.FAILED), (MODULES[:2], Outcome.PASSED)]
        found = made(Finding.CULPRIT, *trials, (MODULES[:1], Outcome.PASSED), culprit=MODULES[0])
        text = diagnosis(found, self.NODE, "as given with --after")
        assert text.startswith(f"{self.NODE} fails alone, passes after tests/test_00.py ")
        assert text.endswith(": it depends on an import or state of that module")

    def test_a_module_imported_with_it(self) -> None:
        trials = [([], Outcome.FAILED), (MODULES[:2], Outcome.PASSED)]
        found = made(Finding.CULPRIT, *trials, (MODULES[1:2], Outcome.PASSED), culprit=MODULES[1])
        text = diagnosis(found, self.NODE, self.WHERE, frozenset({MODULES[1]}))
        assert "passes with tests/test_01.py imported first" in text
        assert text.endswith("it depends on what importing that module does")

    def test_not_order_dependent(self) -> None:
        found = made(Finding.NOT_ORDER, ([], Outcome.FAILED), (MODULES[:3], Outcome.ERROR))
        assert diagnosis(found, self.NODE, self.WHERE) == (
            f"{self.NODE} fails alone and fails (error) after the 3 modules that ran before "
            f"it ({self.WHERE}): same outcome alone and after them: not order-dependent "
            "(flaky?)"
        )

    def test_several_together(self) -> None:
        found = made(Finding.TOGETHER, ([], Outcome.PASSED), (MODULES[:1], Outcome.FAILED))
        text = diagnosis(found, self.NODE, self.WHERE)
        assert "after the module that ran before it" in text
        assert text.endswith("it depends on several of them together (or it is flaky)")


def order(
    outcome: Outcome, before: tuple[str, ...] | None, after: tuple[str, ...] = ()
) -> AttemptOrder:
    return AttemptOrder("r", 1, outcome, "w", "m", before, after)


def test_the_attempt_to_bisect_is_the_newest_failing_one_with_modules() -> None:
    newest_alone = order(Outcome.FAILED, ())
    failing = order(Outcome.FAILED, ("a.py",))
    passing = order(Outcome.PASSED, ("b.py",))
    assert choose_attempt([newest_alone, passing, failing]) is failing
    imported = order(Outcome.FAILED, (), ("c.py",))
    assert choose_attempt([imported, failing]) is imported
    assert choose_attempt([newest_alone, passing]) is passing
    assert choose_attempt([newest_alone, order(Outcome.PASSED, None)]) is None
    assert choose_attempt([]) is None


def test_a_trial_keeps_the_test_where_it_ran(tmp_path: Path) -> None:
    request = IsolateRequest("tests/t.py::x", (), (), (), tmp_path / "sub", {})
    isolation = Isolation("tests/t.py::x", ("a.py", "b.py"), ("c.py",), "w", tmp_path, request)
    assert isolation.arguments(["c.py", "a.py"]) == ["../a.py", "../tests/t.py::x", "../c.py"]
    assert isolation.arguments([]) == ["../tests/t.py::x"]
    assert isolation.label([]) == "alone"
    assert isolation.label(["b.py"]) == "after b.py"
    assert isolation.label(["a.py", "b.py", "c.py"]) == (
        "after 2 modules (a.py ... b.py), with c.py imported"
    )
