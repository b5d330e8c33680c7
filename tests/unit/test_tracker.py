from farm.core.domain import Outcome, TestResult
from farm.core.messages import ShardEnd, ShardStart
from farm.scheduler.tracker import RunTracker


def result(node_id: str, shard_id: int = 0, run_id: str = "r") -> TestResult:
    return TestResult(run_id, shard_id, 1, node_id, Outcome.PASSED, 0.1)


def test_complete_when_every_test_has_a_result() -> None:
    tracker = RunTracker("r", [(0, ("a", "b")), (1, ("c",))])
    accepted = tracker.feed([ShardStart("r", 0, 1, "w", 1.0), result("a"), result("b")])
    assert [r.node_id for r in accepted.results] == ["a", "b"]
    assert not tracker.complete
    tracker.feed([result("c", 1)])
    assert tracker.complete


def test_shard_end_turns_missing_tests_into_errors_never_passes() -> None:
    tracker = RunTracker("r", [(0, ("a", "b", "c"))])
    tracker.feed([result("a")])
    accepted = tracker.feed([ShardEnd("r", 0, 1, "w", 2.0, -9, "worker died")])
    assert {r.node_id: r.outcome for r in accepted.results} == {
        "b": Outcome.ERROR,
        "c": Outcome.ERROR,
    }
    assert "worker died" in accepted.results[0].longrepr
    assert tracker.complete and tracker.shards_left == 0


def test_foreign_and_misplaced_events_are_ignored() -> None:
    tracker = RunTracker("r", [(0, ("a",)), (1, ("b",))])
    accepted = tracker.feed([result("a", run_id="other"), result("b", 0), result("a", 7)])
    assert accepted.results == []
    assert len(accepted.ignored) == 3
    assert tracker.final == {}


def test_last_result_of_a_test_wins() -> None:
    tracker = RunTracker("r", [(0, ("a",))])
    first = TestResult("r", 0, 1, "a", Outcome.FAILED, 0.1)
    tracker.feed([first, result("a")])
    assert tracker.final["a"].outcome is Outcome.PASSED
