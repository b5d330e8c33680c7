"""The session's side of retries: follow-up shards go out, declined ones come back
later and, after enough declines, may run anywhere."""

from __future__ import annotations

from collections.abc import Sequence

from test_session import Clock, FakeReader, Progress, RecordingStore

from farm.core.domain import Outcome, TestResult
from farm.core.messages import Event, ShardEnd, ShardStart
from farm.core.shard_task import ShardTask
from farm.scheduler.follow_up import FarmShape, FollowUp, FollowUpPolicy, follow_up_task
from farm.scheduler.session import Recovery, RunSession


class KeepingSender:
    def __init__(self) -> None:
        self.sent: list[ShardTask] = []

    def send(self, tasks: Sequence[ShardTask]) -> None:
        self.sent.extend(tasks)


def failed(node_id: str, shard_id: int, worker: str = "w:1", attempt: int = 1) -> TestResult:
    return TestResult(
        "r", shard_id, 1, node_id, Outcome.FAILED, 0.1, worker=worker, attempt=attempt,
        machine="m",
    )  # fmt: skip


def retrying_session(
    batches: list[list[Event]], clock: Clock, *, decline_wait_s: float = 60.0
) -> tuple[RunSession, KeepingSender, Progress]:
    tasks = [ShardTask("r", 0, 1, "/", ("a", "b"))]
    sender, progress = KeepingSender(), Progress()
    next_id = iter(range(10, 100))
    session: RunSession

    def make(follow_ups: Sequence[FollowUp]) -> list[ShardTask]:
        return [
            follow_up_task(
                session.task_of[f.after_shard],
                f,
                shard_id=next(next_id),
                shape=FarmShape(slots=2, machines=1),
            )
            for f in follow_ups
        ]

    session = RunSession(
        tasks=tasks, reader=FakeReader(batches), store=RecordingStore(), sender=sender,
        progress=progress, estimates_s={}, clock=clock, sleep=lambda s: None,
        follow_ups=FollowUpPolicy(retries=1, budget_share=1.0), follow_up_tasks=make,
        recovery=Recovery(decline_delay_s=0.5, decline_wait_s=decline_wait_s),
    )  # fmt: skip
    return session, sender, progress


def test_a_failure_goes_out_again_as_attempt_2_away_from_its_slot() -> None:
    clock = Clock()
    batches: list[list[Event]] = [
        [ShardStart("r", 0, 1, "w:1", 1.0), failed("a", 0), failed("b", 0)],
        [failed("a", 10, "w:2", 2), failed("b", 11, "w:2", 2)],
    ]
    session, sender, progress = retrying_session(batches, clock)
    session.start()
    session.step()
    retries = sender.sent[1:]
    assert [(t.node_ids, t.attempt, t.avoid_workers) for t in retries] == [
        (("a",), 2, ("w:1",)),
        (("b",), 2, ("w:1",)),
    ]
    assert not session.complete
    session.step()
    assert session.complete
    assert [node_id for node_id, _ in progress.added] == ["a", "b"]  # tests, not attempts
    assert session.first_failure_at == 100.0


def test_a_declined_retry_comes_back_after_a_delay_and_then_anywhere() -> None:
    clock = Clock()
    declined = [ShardEnd("r", 10, lease, "w:1", 2.0, 0, "declined", False, True, True)
                for lease in (1, 2, 3)]  # fmt: skip
    batches: list[list[Event]] = [
        [
            ShardStart("r", 0, 1, "w:1", 1.0),
            failed("a", 0),
            TestResult("r", 0, 1, "b", Outcome.PASSED, 0.1),
        ],
        [declined[0]],
        [],
        [declined[1]],
        [],
        [declined[2]],
        [],
    ]
    session, sender, _ = retrying_session([*batches, []], clock, decline_wait_s=1.0)
    session.start()
    session.step()
    assert [t.shard_id for t in sender.sent] == [0, 10]
    session.step()  # declined: not sent again at once
    assert len(sender.sent) == 2
    clock.now += 0.6
    session.step()
    assert (sender.sent[-1].lease, sender.sent[-1].avoid_workers) == (2, ("w:1",))
    for _ in range(2):
        session.step()
        clock.now += 0.6
        session.step()
    last = sender.sent[-1]
    assert (last.shard_id, last.lease, last.avoid_workers) == (10, 4, ())
    assert session.tracker.reissued(10) == 0  # declines never give up on a shard
