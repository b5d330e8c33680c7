"""The store's contract for --lf, --ff and --sw, on every backend: the project's known
failures (each test's latest result, as pytest's ``lastfailed`` keeps it) and the
last ``--sw`` mark."""

from __future__ import annotations

from collections.abc import Sequence

from store_fakes import FakeClock, new_run, result

from farm.core.domain import Outcome, RunFindings, StepwiseMark, TestResult, Verdict
from farm.store import ResultStore

FAILED, PASSED, SKIPPED = Outcome.FAILED, Outcome.PASSED, Outcome.SKIPPED


def _ran(
    store: ResultStore,
    clock: FakeClock,
    outcomes: Sequence[tuple[str, Outcome] | tuple[str, Outcome, int]],
    *,
    project: str = "proj",
    findings: RunFindings | None = None,
    finish: bool = True,
) -> str:
    """A run of ``project`` with these attempts (node id, outcome[, attempt number]),
    finished and folded into history as a run does, a minute after the last."""
    clock.now += 60
    run_id = new_run(store, project)
    attempts: list[TestResult] = [
        result(run_id, entry[0], entry[1], attempt=entry[2] if len(entry) > 2 else 1)
        for entry in outcomes
    ]
    store.record_results(attempts)
    if finish:
        store.finish_run(run_id, verdict=Verdict.FAILED, findings=findings)
        store.update_history(project, attempts)
    return run_id


class TestRerunContract:
    def test_known_failures_are_final_failures_of_each_tests_latest_run(
        self, store: ResultStore, clock: FakeClock
    ) -> None:
        assert store.reruns.failures("proj").tests == {}
        first = _ran(
            store,
            clock,
            [
                ("a.py::t", FAILED),
                ("b.py::t", PASSED),
                ("c.py::t", FAILED),  # then passed on a retry: flaky, no failure
                ("c.py::t", PASSED, 2),
                ("d.py::t", Outcome.ERROR),
                ("e.py::t", Outcome.TIMEOUT),
            ],
        )
        found = store.reruns.failures("proj")
        assert found.tests == {"a.py::t": first, "d.py::t": first, "e.py::t": first}
        assert found.latest_run == first
        # A later run of some of them: a passed, d was skipped (pytest forgets a failure
        # then), e failed again; the others keep what their latest run said.
        second = _ran(
            store, clock, [("a.py::t", PASSED), ("d.py::t", SKIPPED), ("e.py::t", FAILED)]
        )
        found = store.reruns.failures("proj")
        assert found.tests == {"e.py::t": second}
        assert found.latest_run == second
        third = _ran(store, clock, [("b.py::t", FAILED)])
        assert store.reruns.failures("proj").tests == {"e.py::t": second, "b.py::t": third}

    def test_a_retry_that_failed_again_is_a_failure(
        self, store: ResultStore, clock: FakeClock
    ) -> None:
        run_id = _ran(store, clock, [("a.py::t", PASSED), ("a.py::t", FAILED, 2)])
        assert store.reruns.failures("proj").tests == {"a.py::t": run_id}

    def test_quarantined_running_and_other_projects_runs_do_not_count(
        self, store: ResultStore, clock: FakeClock
    ) -> None:
        failed = _ran(store, clock, [("a.py::t", FAILED), ("q.py::t", FAILED)])
        _ran(store, clock, [("a.py::t", PASSED)], finish=False)  # still running
        _ran(store, clock, [("a.py::t", PASSED)], project="other")
        found = store.reruns.failures("proj", besides=frozenset({"q.py::t"}))
        assert found.tests == {"a.py::t": failed}
        assert store.reruns.failures("other").tests == {}

    def test_the_last_stepwise_mark(self, store: ResultStore, clock: FakeClock) -> None:
        assert store.reruns.stepwise("proj") is None
        mark = StepwiseMark("a.py::t[x]", 12)
        marked = _ran(store, clock, [("a.py::t[x]", FAILED)], findings=RunFindings(stepwise=mark))
        marked_at = clock.now
        _ran(store, clock, [("a.py::t[x]", FAILED)], findings=RunFindings())  # no --sw
        _ran(store, clock, [("b.py::t", PASSED)], project="other",
             findings=RunFindings(stepwise=StepwiseMark(None, 1)))  # fmt: skip
        record = store.reruns.stepwise("proj")
        assert record is not None
        assert (record.mark, record.run_id, record.finished_at) == (mark, marked, marked_at)
        cleared = StepwiseMark(None, 12)
        newer = _ran(store, clock, [("a.py::t[x]", PASSED)], findings=RunFindings(stepwise=cleared))
        record = store.reruns.stepwise("proj")
        assert record is not None and (record.mark, record.run_id) == (cleared, newer)
