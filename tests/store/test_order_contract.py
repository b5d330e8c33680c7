"""The store's contract for order dependence, on every backend: an attempt's modules
before and after it come back as recorded, and ``store.order`` reads a change's
previous run and a test's recent attempts, filling unrecorded ones from their
shard's plan."""

from __future__ import annotations

import dataclasses

from store_fakes import FakeClock, new_run, result

from farm.core.domain import AttemptOrder, ChangeRef, Outcome, TestResult, Verdict
from farm.store import ResultStore

CHANGE = ChangeRef("github.com/org/shop", "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678", "main")
OTHER = dataclasses.replace(CHANGE, commit_sha="c0ffee0000000000000000000000000000000000")
B = "tests/test_b.py::test_needs_a"


def ordered(
    run_id: str,
    node_id: str,
    outcome: Outcome,
    before: tuple[str, ...] | None,
    after: tuple[str, ...] = (),
    *,
    attempt: int = 1,
    shard_id: int = 0,
) -> TestResult:
    made = result(run_id, node_id, outcome, attempt=attempt, shard_id=shard_id)
    return dataclasses.replace(made, modules_before=before, modules_after=after)


def finished_run(store: ResultStore, clock: FakeClock, change: ChangeRef | None) -> str:
    clock.now += 10
    run_id = store.create_run(project="proj", trigger="ci", settings={}, change=change)
    store.finish_run(run_id, verdict=Verdict.PASSED)
    return run_id


class TestOrderContract:
    def test_modules_before_and_after_come_back_as_recorded(self, store: ResultStore) -> None:
        run_id = new_run(store)
        recorded = [
            ordered(run_id, "a.py::t", Outcome.FAILED, ("x.py", "y/\x00é.py"), ("z.py",)),
            ordered(run_id, "a.py::t", Outcome.PASSED, (), attempt=2),
            ordered(run_id, "b.py::t", Outcome.PASSED, None),
        ]
        store.record_results(recorded)
        back = {(a.node_id, a.attempt): a for a in store.all_attempts(run_id)}
        assert back[("a.py::t", 1)].modules_before == ("x.py", "y/\x00é.py")
        assert back[("a.py::t", 1)].modules_after == ("z.py",)
        assert (back[("a.py::t", 2)].modules_before, back[("a.py::t", 2)].modules_after) == (
            (),
            (),
        )
        assert (back[("b.py::t", 1)].modules_before, back[("b.py::t", 1)].modules_after) == (
            None,
            (),
        )
        assert store.final_results(run_id)["a.py::t"].modules_before == ()

    def test_previous_run_of_the_change_with_planned_order(
        self, store: ResultStore, clock: FakeClock
    ) -> None:
        older = finished_run(store, clock, CHANGE)
        store.record_results([ordered(older, B, Outcome.FAILED, ("old.py",))])
        previous = finished_run(store, clock, CHANGE)
        shard = ["tests/test_a.py::t", B, "tests/test_b.py::u", "tests/test_c.py::t"]
        store.save_shard_tests(previous, {3: shard})
        store.record_results(
            [
                ordered(previous, B, Outcome.PASSED, None, shard_id=3),
                ordered(previous, "tests/test_c.py::t", Outcome.FAILED, ("d.py",), shard_id=3),
                ordered(previous, "lost.py::t", Outcome.PASSED, None, shard_id=9),
            ]
        )
        finished_run(store, clock, OTHER)  # another change's run is not the previous one
        clock.now += 10
        current = store.create_run(project="proj", trigger="ci", settings={}, change=CHANGE)

        found = store.order.previous_run(
            "proj",
            CHANGE,
            before_run=current,
            node_ids=[B, "tests/test_c.py::t", "lost.py::t", "never.py::t"],
        )
        assert found[B] == AttemptOrder(
            previous,
            1,
            Outcome.PASSED,
            "w1",
            "",
            ("tests/test_a.py",),
            ("tests/test_c.py",),
            planned=True,
        )
        assert found["tests/test_c.py::t"].modules_before == ("d.py",)
        assert not found["tests/test_c.py::t"].planned
        # No shard saved for it: not known, rather than guessed.
        assert found["lost.py::t"].modules_before is None
        assert set(found) == {B, "tests/test_c.py::t", "lost.py::t"}

        assert store.order.previous_run("proj", CHANGE, before_run=current, node_ids=[]) == {}
        assert store.order.previous_run("other", CHANGE, before_run=current, node_ids=[B]) == {}

    def test_an_unfinished_run_is_not_the_previous_one(
        self, store: ResultStore, clock: FakeClock
    ) -> None:
        running = store.create_run(project="proj", trigger="ci", settings={}, change=CHANGE)
        store.record_results([ordered(running, B, Outcome.PASSED, ())])
        current = store.create_run(project="proj", trigger="ci", settings={}, change=CHANGE)
        assert store.order.previous_run("proj", CHANGE, before_run=current, node_ids=[B]) == {}

    def test_recent_attempts_newest_first(self, store: ResultStore, clock: FakeClock) -> None:
        assert store.order.recent("proj", B) == ()
        first = finished_run(store, clock, None)
        store.save_shard_tests(first, {0: ["tests/test_a.py::t", B]})
        store.record_results([ordered(first, B, Outcome.PASSED, None)])
        second = finished_run(store, clock, CHANGE)
        failed = dataclasses.replace(
            ordered(second, B, Outcome.FAILED, (), ("tests/test_z.py",)), finished_at=50.0
        )
        retried = dataclasses.replace(
            ordered(second, B, Outcome.FAILED, (), attempt=2, shard_id=1), finished_at=60.0
        )
        store.record_results([failed, retried])
        other_project = store.create_run(project="elsewhere", trigger="ci", settings={})
        store.record_results([ordered(other_project, B, Outcome.FAILED, ("q.py",))])

        recent = store.order.recent("proj", B)
        assert [(a.run_id, a.attempt, a.outcome) for a in recent] == [
            (second, 2, Outcome.FAILED),
            (second, 1, Outcome.FAILED),
            (first, 1, Outcome.PASSED),
        ]
        assert recent[1].modules_after == ("tests/test_z.py",)
        assert (recent[2].modules_before, recent[2].planned) == (("tests/test_a.py",), True)
