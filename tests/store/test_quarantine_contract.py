"""The store's contract for quarantine, on every backend: by hand through
``store.quarantine``, automatically through ``update_history`` with rules, and the
events that record every change."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from sqlalchemy import Engine
from store_fakes import FakeClock, result

from farm.core.domain import Outcome, TestResult
from farm.core.errors import UsageError
from farm.core.quarantine import QuarantineAction, QuarantineRules
from farm.store import QuarantineEntry, QuarantineEvent, ResultStore

RULES = QuarantineRules(flaky_runs=2, window_runs=4, clean_runs=3)
ENTERED, LEFT = QuarantineAction.ENTERED, QuarantineAction.LEFT

FLAKY = [Outcome.FAILED, Outcome.PASSED]
CLEAN = [Outcome.PASSED]
FAILED = [Outcome.FAILED, Outcome.FAILED]


def one_run(node_id: str, outcomes: Sequence[Outcome], run_id: str = "r") -> list[TestResult]:
    return [
        result(run_id, node_id, outcome, attempt=number)
        for number, outcome in enumerate(outcomes, start=1)
    ]


class TestQuarantineByHand:
    def test_add_list_and_remove(self, store: ResultStore, clock: FakeClock) -> None:
        book = store.quarantine
        assert book.current("p") == frozenset() and book.entries("p") == ()
        since = clock.now
        entry = book.add("p", "t.py::a[\x00]", reason="hits the network", owner="ana", actor="bo")
        assert entry == QuarantineEntry(
            "p", "t.py::a[\x00]", since, "hits the network", "ana", "bo", None, False
        )
        book.add("p", "t.py::b", reason="slow", owner="", actor="bo", until_at=since + 100)
        assert book.current("p") == {"t.py::a[\x00]", "t.py::b"}
        assert book.current("other") == frozenset()
        assert [e.node_id for e in book.entries("p")] == ["t.py::a[\x00]", "t.py::b"]

        clock.now += 10
        assert book.remove("p", "t.py::b", reason="fixed in #12", actor="cy")
        assert not book.remove("p", "t.py::b", reason="again", actor="cy")
        assert book.current("p") == {"t.py::a[\x00]"}
        assert book.events("p") == (
            QuarantineEvent("p", "t.py::b", clock.now, LEFT, "cy", "fixed in #12"),
            QuarantineEvent("p", "t.py::b", since, ENTERED, "bo", "slow"),
            QuarantineEvent("p", "t.py::a[\x00]", since, ENTERED, "bo", "hits the network"),
        )

    def test_adding_again_updates_the_entry_and_records_it(
        self, store: ResultStore, clock: FakeClock
    ) -> None:
        book = store.quarantine
        since = clock.now
        book.add("p", "t.py::a", reason="flaky", owner="ana", actor="bo")
        clock.now += 5
        again = book.add(
            "p", "t.py::a", reason="still flaky", owner="cy", actor="dee", until_at=clock.now + 9
        )
        assert again == QuarantineEntry(
            "p", "t.py::a", since, "still flaky", "cy", "dee", clock.now + 9, False
        )
        assert book.entries("p") == (again,)
        assert [(e.action, e.actor, e.reason) for e in book.events("p", "t.py::a")] == [
            (ENTERED, "dee", "still flaky"),
            (ENTERED, "bo", "flaky"),
        ]

    def test_a_reason_is_required_and_an_expiry_must_be_ahead(
        self, store: ResultStore, clock: FakeClock
    ) -> None:
        book = store.quarantine
        with pytest.raises(UsageError, match="needs a reason"):
            book.add("p", "t.py::a", reason=" ", owner="", actor="bo")
        with pytest.raises(UsageError, match="expiry must be in the future"):
            book.add("p", "t.py::a", reason="x", owner="", actor="bo", until_at=clock.now)
        with pytest.raises(UsageError, match="node id"):
            book.add("p", "", reason="x", owner="", actor="bo")
        book.add("p", "t.py::a", reason="x", owner="", actor="bo")
        with pytest.raises(UsageError, match="needs a reason"):
            book.remove("p", "t.py::a", reason="", actor="bo")
        assert book.current("p") == {"t.py::a"}
        assert len(book.events("p")) == 1

    def test_expired_entries_are_lifted_when_read(
        self, store: ResultStore, clock: FakeClock
    ) -> None:
        book = store.quarantine
        start = clock.now
        book.add("p", "t.py::a", reason="x", owner="", actor="bo", until_at=start + 60)
        book.add("p", "t.py::b", reason="y", owner="", actor="bo", until_at=start + 120)
        book.add("p", "t.py::c", reason="z", owner="", actor="bo")
        clock.now = start + 59.5
        assert book.current("p") == {"t.py::a", "t.py::b", "t.py::c"}
        assert store.test_stats("p", ["t.py::a"]) == {}  # quarantined, but no history yet
        clock.now = start + 60
        assert book.current("p") == {"t.py::b", "t.py::c"}
        assert book.events("p", limit=1) == (
            QuarantineEvent("p", "t.py::a", start + 60, LEFT, "farm", "expired"),
        )
        clock.now = start + 500
        assert [e.node_id for e in book.entries("p")] == ["t.py::c"]
        assert len(book.events("p")) == 5

    def test_events_newest_first_by_test_and_limited(
        self, store: ResultStore, clock: FakeClock
    ) -> None:
        book = store.quarantine
        for node_id in ("t.py::a", "t.py::b", "t.py::a"):
            clock.now += 1
            book.add("p", node_id, reason=f"at {clock.now}", owner="", actor="bo")
        assert [e.at for e in book.events("p")] == [clock.now, clock.now - 1, clock.now - 2]
        assert [e.at for e in book.events("p", "t.py::a")] == [clock.now, clock.now - 2]
        assert [e.at for e in book.events("p", limit=2)] == [clock.now, clock.now - 1]
        assert book.events("p", "t.py::zzz") == () and book.events("other") == ()
        with pytest.raises(UsageError, match="at least 1"):
            book.events("p", limit=0)


class TestAutomaticQuarantine:
    def test_a_test_flaky_often_enough_enters_and_clean_runs_take_it_out(
        self, store: ResultStore, clock: FakeClock
    ) -> None:
        assert store.update_history("p", one_run("t.py::a", FLAKY), rules=RULES) == ()
        assert store.update_history("p", one_run("t.py::a", FAILED), rules=RULES) == ()
        clock.now += 1
        events = store.update_history("p", one_run("t.py::a", FLAKY), rules=RULES)
        entered = QuarantineEvent(
            "p", "t.py::a", clock.now, ENTERED, "farm", "flaky in 2 of its last 3 runs"
        )
        assert events == (entered,)
        entry = QuarantineEntry(
            "p", "t.py::a", clock.now, "flaky in 2 of its last 3 runs", "", "farm", None, True
        )
        assert store.quarantine.entries("p") == (entry,)
        assert store.test_stats("p", ["t.py::a"])["t.py::a"].quarantine == entry

        # Still flaky while quarantined: nothing new; then three clean runs.
        assert store.update_history("p", one_run("t.py::a", FLAKY), rules=RULES) == ()
        assert store.update_history("p", one_run("t.py::a", CLEAN), rules=RULES) == ()
        assert store.update_history("p", one_run("t.py::a", CLEAN), rules=RULES) == ()
        clock.now += 1
        events = store.update_history("p", one_run("t.py::a", CLEAN), rules=RULES)
        left = QuarantineEvent("p", "t.py::a", clock.now, LEFT, "farm", "3 clean runs in a row")
        assert events == (left,)
        assert store.quarantine.current("p") == frozenset()
        assert store.quarantine.events("p") == (left, entered)

    def test_without_rules_nothing_enters(self, store: ResultStore) -> None:
        for _ in range(4):
            assert store.update_history("p", one_run("t.py::a", FLAKY)) == ()
        assert store.quarantine.current("p") == frozenset()
        assert store.test_stats("p", ["t.py::a"])["t.py::a"].flaky_runs == 4

    def test_a_manual_entry_stays_through_clean_runs_until_it_expires(
        self, store: ResultStore, clock: FakeClock
    ) -> None:
        start = clock.now
        store.quarantine.add("p", "t.py::a", reason="x", owner="", actor="bo", until_at=start + 9)
        for _ in range(5):
            assert store.update_history("p", one_run("t.py::a", CLEAN), rules=RULES) == ()
        clock.now = start + 9
        events = store.update_history("p", one_run("t.py::a", CLEAN), rules=RULES)
        assert events == (QuarantineEvent("p", "t.py::a", clock.now, LEFT, "farm", "expired"),)

    def test_skipped_runs_change_nothing(self, store: ResultStore) -> None:
        store.update_history("p", one_run("t.py::a", FLAKY), rules=RULES)
        skipped = one_run("t.py::a", [Outcome.SKIPPED])
        for _ in range(3):
            assert store.update_history("p", skipped, rules=RULES) == ()
        events = store.update_history("p", one_run("t.py::a", FLAKY), rules=RULES)
        assert [e.action for e in events] == [ENTERED]
        assert store.test_stats("p", ["t.py::a"])["t.py::a"].recent_outcomes == "kk"

    def test_many_tests_in_one_run(self, store: ResultStore, clock: FakeClock) -> None:
        results = [r for i in range(300) for r in one_run(f"t.py::n{i:03}", FLAKY)]
        store.update_history("p", results, rules=RULES)
        events = store.update_history("p", results, rules=RULES)
        assert [e.node_id for e in events] == [f"t.py::n{i:03}" for i in range(300)]
        assert len(store.quarantine.current("p")) == 300
        assert store.quarantine.current("other") == frozenset()

    def test_history_keeps_recent_runs(
        self, store: ResultStore, engine: Engine, clock: FakeClock
    ) -> None:
        first_seen = clock.now
        runs = [CLEAN, FLAKY, FAILED, CLEAN, CLEAN, [Outcome.XFAILED]]
        for number, outcomes in enumerate(runs):
            clock.now += 1
            store.update_history("p", one_run("t.py::a", outcomes, f"run{number}"), rules=RULES)
        stats = store.test_stats("p", ["t.py::a"])["t.py::a"]
        assert stats.recent_outcomes == "fppp"  # the last window_runs runs
        assert (stats.first_seen_at, stats.last_seen_at) == (first_seen + 1, clock.now)
        assert (stats.last_failure_at, stats.last_failure_run) == (first_seen + 3, "run2")
        assert (stats.passes, stats.failures, stats.flaky_runs) == (5, 3, 1)
        with engine.connect() as connection:
            streak = connection.exec_driver_sql("SELECT clean_streak FROM test_history")
            assert streak.scalar() == 3
