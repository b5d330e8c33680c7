"""Leases, fencing and recovery in RunTracker and RunSession, on a moved clock."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
import redis

from farm.core.domain import Outcome, TestResult
from farm.core.errors import BrokerUnavailable
from farm.core.messages import Event, Heartbeat, ShardEnd, ShardStart
from farm.core.shard_task import ShardTask
from farm.scheduler.session import Recovery, RunSession
from farm.scheduler.tracker import RunTracker


def result(node_id: str, lease: int = 1, shard_id: int = 0) -> TestResult:
    return TestResult("r", shard_id, lease, node_id, Outcome.PASSED, 0.1)


def test_a_lease_not_renewed_expires_and_a_heartbeat_renews_it() -> None:
    tracker = RunTracker("r", [(0, ("a", "b")), (1, ("c",))])
    tracker.feed([ShardStart("r", 0, 1, "w", 1.0)], now=100.0)
    assert tracker.expired(125.0, lease_s=30) == []
    tracker.feed([Heartbeat("r", 0, 1, "w", 2.0)], now=125.0)
    assert tracker.expired(150.0, lease_s=30) == []
    assert tracker.expired(156.0, lease_s=30) == [0]  # shard 1 never started: it is queued


def test_reissue_owes_only_tests_without_results_and_fences_the_old_lease() -> None:
    tracker = RunTracker("r", [(0, ("a", "b", "c"))])
    tracker.feed([ShardStart("r", 0, 1, "w1", 1.0), result("a")], now=1.0)
    lease, owed = tracker.reissue(0)
    assert (lease, owed) == (2, ("b", "c"))
    late = tracker.feed([result("b"), result("a"), ShardEnd("r", 0, 1, "w1", 9.0, 0)], now=2.0)
    assert late.results == [] and len(late.ignored) == 3  # the old worker came back late
    assert tracker.final["a"].lease == 1  # kept, not overwritten
    fresh = tracker.feed([ShardStart("r", 0, 2, "w2", 3.0), result("b", 2), result("c", 2)])
    assert [r.node_id for r in fresh.results] == ["b", "c"]
    assert tracker.complete


def test_a_shard_with_nothing_owed_ends_on_reissue() -> None:
    tracker = RunTracker("r", [(0, ("a",))])
    tracker.feed([ShardStart("r", 0, 1, "w", 1.0), result("a")], now=1.0)
    assert tracker.reissue(0) == (2, ())
    assert tracker.unfinished() == []


def test_a_handed_back_shard_is_not_closed_with_errors() -> None:
    tracker = RunTracker("r", [(0, ("a",))])
    accepted = tracker.feed([ShardEnd("r", 0, 1, "w", 1.0, 0, "stopping", retry=True)])
    assert accepted.results == [] and len(accepted.handed_back) == 1
    assert tracker.unfinished() == [0]


class Reader:
    def __init__(self) -> None:
        self.batches: list[list[Event] | Exception] = []

    def read(self, *, block_ms: int, count: int = 5000) -> list[Event]:
        batch = self.batches.pop(0) if self.batches else []
        if isinstance(batch, Exception):
            raise batch
        return batch

    def trim(self) -> None:
        pass


class Store:
    def __init__(self) -> None:
        self.reissued: list[tuple[int, int]] = []
        self.results: list[TestResult] = []

    def record_results(self, results: Sequence[TestResult]) -> None:
        self.results.extend(results)

    def shard_started(self, run_id: str, shard_id: int, **_: object) -> None:
        pass

    def shard_finished(self, run_id: str, shard_id: int, **_: object) -> None:
        pass

    def shard_reissued(self, run_id: str, shard_id: int, *, lease: int) -> None:
        self.reissued.append((shard_id, lease))


class Sender:
    def __init__(self) -> None:
        self.sent: list[ShardTask] = []

    def send(self, tasks: Sequence[ShardTask]) -> None:
        self.sent.extend(tasks)


class Progress:
    def add(self, result: TestResult, estimate_s: float) -> None:
        pass

    def render(self, now: float) -> None:
        pass


class World:
    """A session on fakes, with a clock the test moves and a Redis server id it sets."""

    def __init__(self, **recovery: float) -> None:
        self.now = 0.0
        self.server = "server-1"
        self.reader, self.store, self.sender = Reader(), Store(), Sender()
        tasks = [ShardTask("r", 0, 1, "/", ("a", "b")), ShardTask("r", 1, 1, "/", ("c",))]
        self.session = RunSession(
            tasks=tasks, reader=self.reader, store=self.store, sender=self.sender,
            progress=Progress(), estimates_s={}, clock=lambda: self.now,
            sleep=self.advance, recovery=Recovery(**recovery),  # type: ignore[arg-type]
            server_id=self.server_of, flush_interval_s=0.0,
        )  # fmt: skip
        self.session.start()
        self.sender.sent.clear()

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def server_of(self) -> str:
        return self.server

    def step(self, *events: Event, after_s: float = 1.0) -> None:
        self.now += after_s
        self.reader.batches.append(list(events))
        self.session.step()


def test_an_expired_lease_sends_the_owed_tests_to_another_worker() -> None:
    world = World(lease_s=30)
    world.step(ShardStart("r", 0, 1, "w1", 1.0), result("a"))
    world.step(after_s=31)  # w1 went silent
    assert [(t.shard_id, t.lease, t.node_ids) for t in world.sender.sent] == [(0, 2, ("b",))]
    assert world.store.reissued == [(0, 2)]
    world.step(ShardStart("r", 0, 2, "w2", 40.0), result("b", 2), result("c", 1, shard_id=1))
    assert world.session.complete
    assert [r.node_id for r in world.store.results] == ["a", "b", "c"]


def test_a_shard_that_keeps_losing_its_worker_ends_in_errors() -> None:
    world = World(lease_s=10, max_reissues=2)
    for lease in (1, 2, 3):
        world.step(ShardStart("r", 0, lease, f"w{lease}", 1.0))
        world.step(after_s=11)
    assert [t.lease for t in world.sender.sent] == [2, 3]
    errors = {r.node_id: r for r in world.store.results}
    assert {errors["a"].outcome, errors["b"].outcome} == {Outcome.ERROR}
    assert "gave up after handing it out 3 times" in errors["a"].longrepr


def test_a_restarted_redis_gets_everything_unfinished_again() -> None:
    world = World()
    world.step(ShardStart("r", 0, 1, "w1", 1.0), result("a"))
    world.server = "server-2"  # restarted empty: the queue held shard 1, the stream lost events
    world.step()
    sent = {t.shard_id: (t.lease, t.node_ids) for t in world.sender.sent}
    assert sent == {0: (2, ("b",)), 1: (2, ("c",))}


def test_the_session_waits_out_a_short_outage_and_gives_up_on_a_long_one() -> None:
    world = World(redis_outage_s=10)
    world.reader.batches = [redis.ConnectionError("refused")] * 3
    for _ in range(3):
        world.session.step()
    assert world.now < 10
    world.reader.batches = [redis.ConnectionError("refused")] * 100
    with pytest.raises(BrokerUnavailable, match="unreachable for 10s"):
        for _ in range(100):
            world.session.step()


def test_leases_do_not_lapse_while_redis_is_away() -> None:
    world = World(lease_s=10, redis_outage_s=60)
    world.step(ShardStart("r", 0, 1, "w1", 1.0))
    world.reader.batches = [redis.ConnectionError("refused")] * 40  # 20 s away at 0.5 s a try
    for _ in range(40):
        world.session.step()
    world.step()  # back: the worker gets a full lease to say it is alive
    world.step(after_s=5)
    assert world.sender.sent == []
    world.step(after_s=6)
    assert [(t.shard_id, t.lease) for t in world.sender.sent] == [(0, 2)]


def test_a_shard_the_broker_refused_is_sent_again_when_it_is_back() -> None:
    from kombu.exceptions import OperationalError

    world = World(lease_s=10)
    refusals = [OperationalError("connection refused")]

    def flaky_send(tasks: Sequence[ShardTask]) -> None:
        if refusals:
            raise refusals.pop()
        world.sender.sent.extend(tasks)

    world.session.sender = type("S", (), {"send": staticmethod(flaky_send)})()
    world.step(ShardStart("r", 0, 1, "w1", 1.0))
    world.step(after_s=11)  # lapsed; the first send is refused
    assert world.sender.sent == []
    world.step()
    assert [(t.shard_id, t.lease, t.node_ids) for t in world.sender.sent] == [(0, 2, ("a", "b"))]
