"""RunSession driven step by step with recording fakes and a moved clock."""

from collections.abc import Sequence

from farm.core.domain import Outcome, TestResult
from farm.core.messages import Event, ShardEnd, ShardStart
from farm.core.shard_task import ShardTask
from farm.scheduler.session import RunSession


class FakeReader:
    def __init__(self, batches: list[list[Event]]) -> None:
        self.batches = batches
        self.trims = 0

    def read(self, *, block_ms: int, count: int = 5000) -> list[Event]:
        return self.batches.pop(0) if self.batches else []

    def trim(self) -> None:
        self.trims += 1


class RecordingStore:
    def __init__(self) -> None:
        self.results: list[list[str]] = []
        self.started: list[int] = []
        self.finished: list[int] = []
        self.reissued: list[tuple[int, int]] = []

    def record_results(self, results: Sequence[TestResult]) -> None:
        self.results.append([r.node_id for r in results])

    def shard_started(
        self, run_id: str, shard_id: int, *, worker: str, started_at: float, machine: str | None
    ) -> None:
        self.started.append(shard_id)

    def shard_finished(self, run_id: str, shard_id: int, *, finished_at: float) -> None:
        self.finished.append(shard_id)

    def shard_reissued(self, run_id: str, shard_id: int, *, lease: int) -> None:
        self.reissued.append((shard_id, lease))


class RecordingSender:
    def __init__(self) -> None:
        self.sent: list[int] = []

    def send(self, tasks: Sequence[ShardTask]) -> None:
        self.sent.extend(t.shard_id for t in tasks)


class Progress:
    def __init__(self) -> None:
        self.added: list[tuple[str, float]] = []
        self.rendered: list[float] = []

    def add(self, result: TestResult, estimate_s: float) -> None:
        self.added.append((result.node_id, estimate_s))

    def render(self, now: float) -> None:
        self.rendered.append(now)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def passed(node_id: str, shard_id: int) -> TestResult:
    return TestResult("r", shard_id, 1, node_id, Outcome.PASSED, 0.1)


def make_session(
    reader: FakeReader, clock: Clock
) -> tuple[RunSession, RecordingStore, RecordingSender, Progress]:
    tasks = [ShardTask("r", 0, 1, "/", ("a", "b")), ShardTask("r", 1, 1, "/", ("c",))]
    store, sender, progress = RecordingStore(), RecordingSender(), Progress()
    session = RunSession(
        tasks=tasks, reader=reader, store=store, sender=sender, progress=progress,
        estimates_s={"a": 1.0, "b": 2.0, "c": 3.0}, clock=clock, flush_interval_s=1.0,
        sleep=lambda s: None,
    )  # fmt: skip
    return session, store, sender, progress


def test_results_are_batched_until_the_flush_interval_passes() -> None:
    clock = Clock()
    reader = FakeReader([[ShardStart("r", 0, 1, "w", 1.0), passed("a", 0)], [passed("b", 0)], []])
    session, store, sender, progress = make_session(reader, clock)
    session.start()
    assert sender.sent == [0, 1]
    session.step()
    assert store.results == []  # not due yet
    clock.now += 1.5
    session.step()
    assert store.results == [["a", "b"]] and store.started == [0]
    assert progress.added == [("a", 1.0), ("b", 2.0)]
    assert reader.trims == 1


def test_run_ends_when_every_test_has_a_result_and_flushes_everything() -> None:
    clock = Clock()
    reader = FakeReader([[passed("a", 0)], [ShardEnd("r", 0, 1, "w", 2.0, -9, "lost")],
                         [passed("c", 1), ShardEnd("r", 1, 1, "w", 3.0, 0)]])  # fmt: skip
    session, store, _, _ = make_session(reader, clock)
    session.start()
    final = session.run()
    assert final["b"].outcome is Outcome.ERROR
    assert sorted(final) == ["a", "b", "c"]
    assert sorted(n for batch in store.results for n in batch) == ["a", "b", "c"]
    assert store.finished == [0, 1]


def test_liveness_failure_stops_the_loop() -> None:
    clock = Clock()
    session, _, _, _ = make_session(FakeReader([]), clock)

    def dead() -> None:
        raise RuntimeError("workers gone")

    session.liveness = dead
    try:
        session.step()
    except RuntimeError as e:
        assert "workers gone" in str(e)
    else:
        raise AssertionError("step went on without live workers")


def test_shards_whose_tests_are_done_are_recorded_finished_without_waiting() -> None:
    clock = Clock()
    reader = FakeReader(
        [
            [ShardStart("r", 0, 1, "w", 1.0), ShardStart("r", 1, 1, "w", 1.0)],
            [passed("a", 0), passed("b", 0), passed("c", 1), ShardEnd("r", 1, 1, "w", 2.0, 0)],
            [ShardEnd("r", 0, 1, "w", 2.1, 0)],  # trails the last result: not waited for
        ]
    )
    session, store, _, _ = make_session(reader, clock)
    session.start()
    session.run()
    assert sorted(store.finished) == [0, 1]
    assert len(reader.batches) == 1
