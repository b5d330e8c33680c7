"""The store's contract for changes, a run's findings and every attempt of a run, on
every backend: what a verdict per change and failed-first scheduling read back."""

from __future__ import annotations

import dataclasses

import pytest
from store_fakes import FakeClock, new_run, result

from farm.core.domain import ChangeRef, Outcome, Retries, RunFindings, TestResult, Verdict
from farm.core.errors import UsageError
from farm.store import ResultStore

SHA_A = "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678"
SHA_B = "a1b2ffff00000000000000000000000000000000"
SHA_C = "c0ffee0000000000000000000000000000000000"


def run_of(store: ResultStore, change: ChangeRef | None, project: str = "proj") -> str:
    return store.create_run(project=project, trigger="ci", settings={}, change=change)


def attempt(
    run_id: str,
    node_id: str,
    outcome: Outcome = Outcome.PASSED,
    *,
    number: int = 1,
    machine: str = "",
    finished_at: float = 10.0,
) -> TestResult:
    made = result(run_id, node_id, outcome, attempt=number)
    return dataclasses.replace(made, machine=machine, finished_at=finished_at)


class TestChangeContract:
    # -- a run's findings ------------------------------------------------------------

    def test_findings_come_back_exactly(self, store: ResultStore) -> None:
        run_id = new_run(store)
        assert store.get_run(run_id).findings is None
        findings = RunFindings(
            failed=("a.py::t[\x00<b>]", "a.py::u"),
            flaky=("b.py::t",),
            quarantined_failures=("c.py::t",),
            new_flaky=("d.py::t[é]",),
            retries=Retries(allowed=2, budget=5, spent=5, denied=("e.py::t", "f.py::t")),
            first_failure_s=1.25,
        )
        store.finish_run(run_id, verdict=Verdict.FAILED, findings=findings)
        assert store.get_run(run_id).findings == findings

    def test_findings_default_and_none(self, store: ResultStore) -> None:
        empty, none = new_run(store), new_run(store)
        store.finish_run(empty, verdict=Verdict.PASSED, findings=RunFindings())
        store.finish_run(none, verdict=Verdict.PASSED)
        assert store.get_run(empty).findings == RunFindings()
        assert store.get_run(none).findings is None

    # -- attempts ----------------------------------------------------------------------

    def test_attempts_keep_their_machine(self, store: ResultStore) -> None:
        run_id = new_run(store)
        store.record_results(
            [
                attempt(run_id, "a.py::t", Outcome.FAILED, machine="host-a"),
                attempt(run_id, "a.py::t", number=2, machine="host-b", finished_at=11.0),
                attempt(run_id, "b.py::t"),
            ]
        )
        final = store.final_results(run_id)
        assert (final["a.py::t"].machine, final["b.py::t"].machine) == ("host-b", "")
        machines = [(a.node_id, a.attempt, a.machine) for a in store.all_attempts(run_id)]
        assert machines == [("a.py::t", 1, "host-a"), ("b.py::t", 1, ""), ("a.py::t", 2, "host-b")]

    def test_all_attempts_in_the_order_they_finished(self, store: ResultStore) -> None:
        run_id = new_run(store)
        assert store.all_attempts(run_id) == ()
        recorded = [
            attempt(run_id, "c.py::t", finished_at=30.0),
            attempt(run_id, "a.py::t", Outcome.FAILED, number=2, finished_at=20.0),
            attempt(run_id, "a.py::t", Outcome.FAILED, number=1, finished_at=20.0),
            attempt(run_id, "b.py::t", finished_at=5.0),
            attempt(run_id, "a.py::t", number=3, finished_at=25.0),
        ]
        store.record_results(recorded[:2])
        store.record_results(recorded[2:])
        assert store.all_attempts(run_id) == (
            recorded[3],
            recorded[2],
            recorded[1],
            recorded[4],
            recorded[0],
        )
        with pytest.raises(UsageError, match="no run 'nope'"):
            store.all_attempts("nope")

    def test_the_final_result_is_the_highest_attempt_however_recorded(
        self, store: ResultStore
    ) -> None:
        run_id = new_run(store)
        store.record_results([attempt(run_id, "a.py::t", Outcome.PASSED, number=3)])
        store.record_results([attempt(run_id, "a.py::t", Outcome.FAILED, number=1)])
        store.record_results([attempt(run_id, "a.py::t", Outcome.FAILED, number=2)])
        final = store.final_results(run_id)["a.py::t"]
        assert (final.attempt, final.outcome) == (3, Outcome.PASSED)
        assert len(store.all_attempts(run_id)) == 3

    # -- changes read back ----------------------------------------------------------

    def test_change_runs_oldest_first(self, store: ResultStore, clock: FakeClock) -> None:
        change = ChangeRef("github.com/o/r", SHA_A, "main", "12", "ana")
        first = run_of(store, ChangeRef("github.com/o/r", SHA_A))
        clock.now += 1
        run_of(store, ChangeRef("github.com/o/r", SHA_B))
        clock.now += 1
        second = run_of(store, change, project="other")
        store.finish_run(second, verdict=Verdict.FLAKY, findings=RunFindings(flaky=("t.py::a",)))
        found = store.change_runs(SHA_A)
        assert found is not None
        assert found.change == change
        assert [run.run_id for run in found.runs] == [first, second]
        assert found.runs[1].findings == RunFindings(flaky=("t.py::a",))
        assert all(run.change == change for run in found.runs)
        by_prefix = store.change_runs("A1B2C3")
        assert by_prefix == found
        assert store.change_runs(SHA_A, repository="github.com/o/r") == found
        assert store.change_runs(SHA_A, repository="elsewhere") is None
        assert store.change_runs("dead") is None

    def test_a_prefix_of_several_changes_is_refused_naming_them(self, store: ResultStore) -> None:
        run_of(store, ChangeRef("repo", SHA_A))
        run_of(store, ChangeRef("repo", SHA_B))
        run_of(store, ChangeRef("fork", SHA_A))
        with pytest.raises(UsageError, match="matches 3 changes") as raised:
            store.change_runs("a1b2")
        message = str(raised.value)
        assert f"repo@{SHA_A}" in message and f"repo@{SHA_B}" in message
        assert f"fork@{SHA_A}" in message and "\n" not in message
        with pytest.raises(UsageError, match="matches 2 changes"):
            store.change_runs(SHA_A)
        only = store.change_runs(SHA_A, repository="fork")
        assert only is not None and only.change == ChangeRef("fork", SHA_A)

    @pytest.mark.parametrize("commit", ["", "a1b", "a1b2-", "xyz123", "a1b2%"])
    def test_a_commit_must_be_four_hex_digits_or_more(
        self, store: ResultStore, commit: str
    ) -> None:
        with pytest.raises(UsageError, match="is not a commit"):
            store.change_runs(commit)

    def test_latest_change(self, store: ResultStore, clock: FakeClock) -> None:
        assert store.latest_change() is None
        run_of(store, ChangeRef("repo", SHA_A), project="p1")
        clock.now += 1
        run_of(store, ChangeRef("repo", SHA_B), project="p2")
        clock.now += 1
        run_of(store, None, project="p2")
        assert store.latest_change() == ChangeRef("repo", SHA_B)
        assert store.latest_change("p1") == ChangeRef("repo", SHA_A)
        assert store.latest_change("p3") is None
        clock.now += 1
        run_of(store, ChangeRef("repo", SHA_A, author="ana"), project="p2")
        assert store.latest_change() == ChangeRef("repo", SHA_A, author="ana")

    def test_previous_failures_of_a_branch(self, store: ResultStore, clock: FakeClock) -> None:
        main = ChangeRef("repo", SHA_A, "main")

        def finished_run(change: ChangeRef | None, failed: tuple[str, ...], **kw: str) -> str:
            clock.now += 1
            run_id = run_of(store, change, **kw)
            store.record_results([attempt(run_id, n, Outcome.FAILED) for n in failed])
            store.record_results([attempt(run_id, "ok.py::t")])
            store.finish_run(run_id, verdict=Verdict.FAILED)
            return run_id

        assert store.previous_failures("proj", "main", before_run="x") == ()
        older = finished_run(main, ("old.py::t",))
        finished_run(ChangeRef("repo", SHA_B, "topic"), ("topic.py::t",))
        finished_run(main, ("x.py::t",), project="other")
        finished_run(None, ("none.py::t",))
        last = run_of(store, ChangeRef("repo", SHA_C, "main"))
        store.record_results(
            [
                attempt(last, "b.py::t", Outcome.ERROR),
                attempt(last, "a.py::t", Outcome.TIMEOUT),
                attempt(last, "flaky.py::t", Outcome.FAILED),
                attempt(last, "flaky.py::t", Outcome.PASSED, number=2),
                attempt(last, "skip.py::t", Outcome.SKIPPED),
            ]
        )
        # Not finished yet: the run before it counts.
        assert store.previous_failures("proj", "main", before_run="x") == ("old.py::t",)
        store.finish_run(last, verdict=Verdict.FAILED)
        assert store.previous_failures("proj", "main", before_run="x") == ("a.py::t", "b.py::t")
        assert store.previous_failures("proj", "main", before_run=last) == ("old.py::t",)
        assert store.previous_failures("proj", "topic", before_run=older) == ("topic.py::t",)
        assert store.previous_failures("proj", "", before_run=older) == ()
        assert store.previous_failures("proj", "gone", before_run=older) == ()
