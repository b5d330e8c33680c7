"""Retries and repeats inside a run: the policy, the tracker's bookkeeping of them,
and the shard each follow-up runs as."""

from __future__ import annotations

from farm.core.domain import Outcome, TestResult
from farm.core.messages import ShardEnd, ShardStart
from farm.core.shard_task import ShardTask
from farm.scheduler.follow_up import (
    FarmShape,
    FollowUp,
    FollowUpKind,
    FollowUpPolicy,
    avoid,
    follow_up_task,
    relaxed,
    retry_budget,
)
from farm.scheduler.tracker import RunTracker


def attempt(
    node_id: str,
    outcome: Outcome,
    *,
    shard_id: int = 0,
    number: int = 1,
    worker: str = "w:1",
    machine: str = "m1",
    lease: int = 1,
) -> TestResult:
    return TestResult(
        "r", shard_id, lease, node_id, outcome, 0.1, worker=worker, attempt=number,
        machine=machine,
    )  # fmt: skip


def test_budget_is_a_share_of_the_tests_and_at_least_one() -> None:
    assert retry_budget(200, 0.05) == 10
    assert retry_budget(10, 0.05) == 1
    assert retry_budget(0, 0.05) == 1


def test_a_failure_is_retried_once_by_default_and_passes_are_not() -> None:
    policy = FollowUpPolicy(retries=1, budget_share=0.5, tests=10)
    assert policy.after(attempt("a", Outcome.PASSED)) is None
    follow_up = policy.after(attempt("b", Outcome.FAILED))
    assert follow_up == FollowUp("b", 2, FollowUpKind.RETRY, 0, ("w:1",), ("m1",))
    assert policy.after(attempt("b", Outcome.FAILED, number=2)) is None
    assert policy.spent == 1


def test_timeouts_crashes_and_errors_are_retried_too() -> None:
    policy = FollowUpPolicy(retries=1, budget_share=1.0, tests=10)
    for outcome in (Outcome.TIMEOUT, Outcome.CRASHED, Outcome.ERROR):
        assert policy.after(attempt(outcome.value, outcome)) is not None
    for outcome in (Outcome.SKIPPED, Outcome.XFAILED, Outcome.XPASSED):
        assert policy.after(attempt(outcome.value, outcome)) is None


def test_the_budget_runs_out_and_names_what_it_denied() -> None:
    policy = FollowUpPolicy(retries=2, budget_share=0.05, tests=40)  # budget 2
    assert policy.after(attempt("a", Outcome.FAILED)) is not None
    assert policy.after(attempt("a", Outcome.FAILED, number=2)) is not None
    assert policy.after(attempt("b", Outcome.FAILED)) is None
    assert policy.after(attempt("c", Outcome.FAILED)) is None
    made = policy.retries_made()
    assert (made.allowed, made.budget, made.spent, made.denied) == (2, 2, 2, ("b", "c"))
    assert made.exhausted


def test_no_retries_means_no_budget_and_nothing_denied() -> None:
    policy = FollowUpPolicy(retries=0, budget_share=0.05, tests=100)
    assert policy.after(attempt("a", Outcome.FAILED)) is None
    assert policy.retries_made().budget == 0
    assert not policy.retries_made().exhausted


def test_new_tests_repeat_whatever_their_outcome_and_spend_no_budget() -> None:
    policy = FollowUpPolicy(retries=1, budget_share=0.01, tests=10, repeat=3, new_tests={"n"})
    first = policy.after(attempt("n", Outcome.PASSED, worker="w:1"))
    assert first is not None and first.kind is FollowUpKind.REPEAT and first.attempt == 2
    second = policy.after(attempt("n", Outcome.FAILED, number=2, worker="w:2"))
    assert second is not None and second.ran_on_workers == ("w:1", "w:2")
    assert policy.after(attempt("n", Outcome.PASSED, number=3)) is None
    assert policy.spent == 0


def test_avoid_leaves_one_place_free() -> None:
    assert avoid(("a", "b"), 1) == ()
    assert avoid(("a", "b"), 2) == ("b",)
    assert avoid(("a", "b"), 5) == ("b", "a")


def test_a_follow_up_task_runs_the_test_alone_away_from_where_it_ran() -> None:
    base = ShardTask("r", 3, 2, "/root", ("a", "b"), pytest_args=("-q",))
    follow_up = FollowUp("a", 2, FollowUpKind.RETRY, 3, ("w:1",), ("m1",))
    task = follow_up_task(base, follow_up, shard_id=9, shape=FarmShape(slots=4, machines=2))
    assert (task.shard_id, task.lease, task.node_ids, task.attempt) == (9, 1, ("a",), 2)
    assert task.pytest_args == ("-q",)
    assert task.declined_by("w:1", "m2") and task.declined_by("w:2", "m1")
    assert not task.declined_by("w:2", "m2")
    one_machine = follow_up_task(base, follow_up, shard_id=9, shape=FarmShape(4, 1))
    assert one_machine.avoid_machines == () and one_machine.avoid_workers == ("w:1",)
    assert not relaxed(task).declined_by("w:1", "m1")
    assert ShardTask.from_json(task.to_json()) == task


def retrying_tracker(*shards: tuple[int, tuple[str, ...]], **policy: object) -> RunTracker:
    settings: dict[str, object] = {"retries": 1, "budget_share": 1.0, **policy}
    return RunTracker("r", shards, follow_ups=FollowUpPolicy(**settings))  # type: ignore[arg-type]


def test_a_retried_test_is_owed_until_its_retry_reports() -> None:
    tracker = retrying_tracker((0, ("a", "b")))
    tracker.feed([attempt("a", Outcome.FAILED), attempt("b", Outcome.PASSED)])
    follow_ups = tracker.take_follow_ups()
    assert [f.node_id for f in follow_ups] == ["a"]
    assert not tracker.complete
    assert tracker.final["a"].outcome is Outcome.FAILED  # until the retry reports
    tracker.add_follow_up(5, follow_ups[0])
    late = tracker.feed([attempt("a", Outcome.PASSED, shard_id=0)])
    assert late.ignored and not tracker.complete  # the first shard no longer owes it
    tracker.feed([attempt("a", Outcome.PASSED, shard_id=5, number=2, worker="w:2")])
    assert tracker.complete
    assert tracker.final["a"].attempt == 2
    assert [r.outcome for r in tracker.earlier] == [Outcome.FAILED]


def test_a_lost_retry_leaves_a_failure_never_a_pass() -> None:
    tracker = retrying_tracker((0, ("a",)))
    tracker.feed([attempt("a", Outcome.FAILED)])
    tracker.add_follow_up(1, tracker.take_follow_ups()[0])
    tracker.feed([ShardStart("r", 1, 1, "w:2", 1.0)])
    closed = tracker.feed([ShardEnd("r", 1, 1, "w:2", 2.0, -9, "worker died")])
    assert [(r.node_id, r.outcome, r.attempt) for r in closed.results] == [("a", Outcome.ERROR, 2)]
    assert tracker.complete and tracker.final["a"].outcome.is_failure


def test_the_first_shard_is_done_once_its_tests_moved_on_to_follow_ups() -> None:
    tracker = retrying_tracker((0, ("a", "b")))
    tracker.feed([ShardStart("r", 0, 1, "w:1", 1.0), attempt("a", Outcome.FAILED)])
    tracker.add_follow_up(1, tracker.take_follow_ups()[0])
    tracker.feed([attempt("b", Outcome.PASSED)])
    assert 0 in tracker.done_but_not_ended()


def test_only_a_last_failure_counts_towards_maxfail() -> None:
    tracker = RunTracker(
        "r", [(0, ("a", "b", "c"))], max_failures=1,
        follow_ups=FollowUpPolicy(retries=1, budget_share=1.0),
    )  # fmt: skip
    tracker.feed([attempt("a", Outcome.FAILED)])
    assert not tracker.stopped
    tracker.add_follow_up(1, tracker.take_follow_ups()[0])
    tracker.feed([attempt("a", Outcome.PASSED, shard_id=1, number=2)])
    assert not tracker.stopped
    tracker.feed([attempt("b", Outcome.FAILED)])
    tracker.add_follow_up(2, tracker.take_follow_ups()[0])
    tracker.feed([attempt("b", Outcome.FAILED, shard_id=2, number=2)])
    assert tracker.stopped and tracker.complete


def test_a_reissued_follow_up_owes_only_its_test() -> None:
    tracker = retrying_tracker((0, ("a", "b")))
    tracker.feed([attempt("a", Outcome.FAILED)])
    tracker.add_follow_up(1, tracker.take_follow_ups()[0])
    assert tracker.reissue(1, counted=False) == (2, ("a",))
    assert tracker.reissued(1) == 0
    assert tracker.reissue(0) == (2, ("b",))


def test_the_shard_end_right_after_a_failure_does_not_owe_its_retry() -> None:
    # The failure and its shard's end arrive in one batch, before the retry's shard
    # exists: the first shard must not turn the awaited retry into an error.
    tracker = retrying_tracker((0, ("a", "b")))
    accepted = tracker.feed(
        [
            ShardStart("r", 0, 1, "w:1", 1.0),
            attempt("a", Outcome.FAILED),
            attempt("b", Outcome.PASSED),
            ShardEnd("r", 0, 1, "w:1", 2.0, 1, ""),
        ]
    )
    assert [r.outcome for r in accepted.results] == [Outcome.FAILED, Outcome.PASSED]
    tracker.add_follow_up(1, tracker.take_follow_ups()[0])
    assert not tracker.complete
    tracker.feed([attempt("a", Outcome.PASSED, shard_id=1, number=2)])
    assert tracker.complete and tracker.final["a"].outcome is Outcome.PASSED


def test_a_test_awaiting_its_retry_when_the_run_stops_is_not_counted() -> None:
    # --maxfail=2: a and b fail twice; c failed once meanwhile and waits for its
    # retry. pytest (with reruns, one test at a time) would have stopped before c.
    tracker = RunTracker(
        "r", [(0, ("a", "b", "c"))], max_failures=2,
        follow_ups=FollowUpPolicy(retries=1, budget_share=1.0),
    )  # fmt: skip
    tracker.feed([attempt(n, Outcome.FAILED) for n in ("a", "b", "c")])
    for shard_id, follow_up in enumerate(tracker.take_follow_ups(), start=1):
        tracker.add_follow_up(shard_id, follow_up)
    tracker.feed([attempt("a", Outcome.FAILED, shard_id=1, number=2)])
    tracker.feed([attempt("b", Outcome.FAILED, shard_id=2, number=2)])
    assert tracker.stopped and tracker.complete
    assert sorted(tracker.final) == ["a", "b"]
    assert "c" in {r.node_id for r in tracker.earlier}
