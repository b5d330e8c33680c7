"""The store's contract for what history says of tests, on every backend: each
test's statistics, and machines suspected of causing a test's failures."""

from __future__ import annotations

import dataclasses

import pytest
from store_fakes import FakeClock, new_run, result

from farm.core import defaults
from farm.core.domain import MachineSuspect, Outcome, TestResult
from farm.core.errors import UsageError
from farm.core.quarantine import QuarantineRules
from farm.store import ResultStore, TestStats
from farm.store.stats import nearest_rank

P, F = Outcome.PASSED, Outcome.FAILED


def on(machine: str, run_id: str, node_id: str, outcome: Outcome, number: int = 1) -> TestResult:
    return dataclasses.replace(result(run_id, node_id, outcome, attempt=number), machine=machine)


def test_nearest_rank() -> None:
    values = [15.0, 20.0, 35.0, 40.0, 50.0]
    assert [nearest_rank(values, p) for p in (5, 30, 40, 50, 100)] == [15, 20, 20, 35, 50]
    assert nearest_rank([3.0, 1.0, 2.0], 90) == 3.0
    assert nearest_rank([7.0], 50) == nearest_rank([7.0], 0) == 7.0
    with pytest.raises(ValueError):
        nearest_rank([], 50)


class TestStatsContract:
    def test_stats_of_a_test(self, store: ResultStore, clock: FakeClock) -> None:
        first_seen = clock.now
        durations = [float(d) for d in range(1, 26)]  # more than the window keeps
        for number, duration_s in enumerate(durations):
            clock.now += 1
            outcome = F if number in (3, 20) else P
            attempts = [result(f"run{number}", "t.py::a", outcome, duration_s)]
            if number == 20:
                attempts.append(result("run20", "t.py::a", P, duration_s, attempt=2))
            store.update_history("p", attempts)
        stats = store.test_stats("p", ["t.py::a", "t.py::unknown"])
        assert list(stats) == ["t.py::a"]
        # Run 20 had two attempts of 21 s: the last 20 of 1..21, 21, 22..25 are kept.
        samples = [*durations[:21], 21.0, *durations[21:]]
        kept = samples[-defaults.DURATION_WINDOW :]
        assert kept[0] == 7.0 and len(kept) == 20
        got = stats["t.py::a"]
        outcomes = "p" * 3 + "f" + "p" * 16 + "k" + "p" * 4
        assert got == TestStats(
            node_id="t.py::a",
            ewma_s=got.ewma_s,
            p50_s=16.0,
            p90_s=23.0,
            samples=26,
            passes=24,
            failures=2,
            flaky_runs=1,
            first_seen_at=first_seen + 1,
            last_seen_at=clock.now,
            last_failure_at=first_seen + 21,
            last_failure_run="run20",
            recent_outcomes=outcomes[-defaults.QUARANTINE_WINDOW_RUNS :],
            flaky_rate=1 / 25,
            quarantine=None,
        )
        assert (got.p50_s, got.p90_s) == (nearest_rank(kept, 50), nearest_rank(kept, 90))
        assert got.ewma_s == pytest.approx(store.history("p").test_duration_s["t.py::a"])

    def test_the_window_of_recent_outcomes_comes_from_the_rules(self, store: ResultStore) -> None:
        rules = QuarantineRules(flaky_runs=5, window_runs=5, clean_runs=5)
        for outcome in (F, P, P, P, P, P, P):
            store.update_history("p", [result("r", "t.py::a", outcome)], rules=rules)
        assert store.test_stats("p", ["t.py::a"])["t.py::a"].recent_outcomes == "ppppp"

    def test_imported_durations_have_stats_too(self, store: ResultStore) -> None:
        store.import_durations("p", {"t.py::a": 2.5})
        stats = store.test_stats("p", ["t.py::a"])["t.py::a"]
        assert (stats.ewma_s, stats.p50_s, stats.p90_s, stats.samples) == (2.5, 2.5, 2.5, 1)
        assert (stats.recent_outcomes, stats.flaky_rate, stats.last_failure_at) == ("", 0.0, None)

    def test_many_and_repeated_node_ids(self, store: ResultStore) -> None:
        node_ids = [f"t.py::n{i}" for i in range(1200)]
        store.update_history("p", [result("r", n) for n in node_ids])
        stats = store.test_stats("p", [*node_ids, node_ids[0], "t.py::gone"])
        assert list(stats) == node_ids
        assert store.test_stats("p", []) == {} and store.test_stats("other", node_ids) == {}


class TestSuspectMachines:
    def test_failures_on_one_machine_and_passes_elsewhere(
        self, store: ResultStore, clock: FakeClock
    ) -> None:
        runs = []
        for _ in range(2):
            clock.now += 1
            runs.append(new_run(store))
        first, second = runs
        store.record_results(
            [
                # On bad-host only, and passes elsewhere: suspect.
                on("bad-host", first, "a.py::t", F),
                on("good-host", first, "a.py::t", P, 2),
                on("bad-host", second, "a.py::t", F),
                on("other-host", second, "a.py::t", P, 2),
                # One failure on bad-host, one pass elsewhere: suspect, fewer failures.
                on("bad-host", second, "b.py::t", F),
                on("good-host", second, "b.py::t", P, 2),
                # Failures on two machines: the test, not a machine.
                on("bad-host", first, "c.py::t", F),
                on("good-host", first, "c.py::t", F, 2),
                on("good-host", second, "c.py::t", P),
                # Never passed elsewhere (only on the same machine, or skipped): not.
                on("bad-host", first, "d.py::t", F),
                on("bad-host", second, "d.py::t", P),
                on("good-host", second, "d.py::t", Outcome.SKIPPED),
                # Failures on an unknown machine, or passes only on one: not.
                on("", first, "e.py::t", F),
                on("good-host", first, "e.py::t", P, 2),
                on("bad-host", first, "f.py::t", F),
                on("", first, "f.py::t", P, 2),
                # Never failed: not.
                on("good-host", first, "g.py::t", P),
            ]
        )
        found = store.suspect_machines("proj", window_runs=5)
        assert found == (
            MachineSuspect("a.py::t", "bad-host", 2, 2),
            MachineSuspect("b.py::t", "bad-host", 1, 1),
        )
        assert found[0].sentence() == "2 of 2 failures of a.py::t on bad-host, 2 passes elsewhere"
        # Only the last run: a.py::t's first failure and pass are out of the window.
        assert store.suspect_machines("proj", window_runs=1) == (
            MachineSuspect("a.py::t", "bad-host", 1, 1),
            MachineSuspect("b.py::t", "bad-host", 1, 1),
        )
        assert store.suspect_machines("proj", window_runs=5, node_ids=["b.py::t", "c.py::t"]) == (
            MachineSuspect("b.py::t", "bad-host", 1, 1),
        )
        assert store.suspect_machines("proj", window_runs=5, node_ids=[]) == ()
        assert store.suspect_machines("other", window_runs=5) == ()
        with pytest.raises(UsageError, match="at least 1"):
            store.suspect_machines("proj", window_runs=0)

    def test_the_window_is_the_projects_latest_runs(
        self, store: ResultStore, clock: FakeClock
    ) -> None:
        old = new_run(store)
        store.record_results([on("bad", old, "a.py::t", F), on("good", old, "a.py::t", P, 2)])
        clock.now += 1
        new_run(store, project="other")  # another project's runs do not fill the window
        clock.now += 1
        recent = new_run(store)
        store.record_results([on("good", recent, "z.py::t", P)])
        assert [s.node_id for s in store.suspect_machines("proj", window_runs=2)] == ["a.py::t"]
        clock.now += 1
        new_run(store)
        assert store.suspect_machines("proj", window_runs=2) == ()
