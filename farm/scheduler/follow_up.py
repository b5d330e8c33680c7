"""Which tests run again within a run, and why: pure bookkeeping, no I/O.

A *follow-up* is one more attempt of a test that already has a result in this run:

- a *retry* of a failing attempt (failed, error, timeout, crashed), up to
  ``retries`` more attempts per test, within the run's *budget* of retries: a
  change that breaks many tests is broken, not flaky, and retrying every failure
  would only run it twice. The budget is a share of the run's tests, at least 1;
  tests denied a retry are named, so the report can say the budget ran out;
- a *repeat* of a test never seen before (``--new-tests-repeat N``): it runs N
  times whatever its outcomes, so a flaky test is caught before it lands. Repeats
  are not retried, and do not spend the budget.

Every follow-up runs as a shard of its own, on a slot (and machine, when the farm
has another) where the test has not run yet in this run.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field

from farm.core.domain import Outcome, Retries, TestResult
from farm.core.shard_task import ShardTask


class FollowUpKind(str, enum.Enum):
    RETRY = "retry"
    REPEAT = "repeat"


@dataclass(frozen=True)
class FollowUp:
    """One more attempt of ``node_id``, numbered ``attempt``, away from where it ran."""

    node_id: str
    attempt: int
    kind: FollowUpKind
    after_shard: int  # the shard of the attempt it follows, whose task it is made from
    ran_on_workers: tuple[str, ...]  # slots of its earlier attempts, oldest first
    ran_on_machines: tuple[str, ...]


def retry_budget(tests: int, share: float) -> int:
    """Retries a run of ``tests`` tests may spend: ``share`` of them, at least 1."""
    return max(1, int(tests * share))


@dataclass
class FollowUpPolicy:
    """Decides, result by result, whether a test runs again.

    ``retries`` is how many more attempts a failing test gets; the run may spend
    ``budget_share`` of its ``tests`` on retries (see :func:`retry_budget`);
    ``repeat`` is how many times a test in ``new_tests`` runs in all. The policy is
    told every result in the order the run accepted them.
    """

    retries: int = 0
    budget_share: float = 0.0
    tests: int = 0  # the run's tests, known in full once its collection settles
    repeat: int = 0
    new_tests: Collection[str] = frozenset()
    spent: int = 0
    denied: list[str] = field(default_factory=list)
    _workers: dict[str, list[str]] = field(default_factory=dict)
    _machines: dict[str, list[str]] = field(default_factory=dict)

    def after(self, result: TestResult) -> FollowUp | None:
        """The follow-up ``result`` calls for, if any (spending budget on a retry)."""
        node_id = result.node_id
        kind = self._kind(result)
        if kind is None:
            # The test is done: where it ran is only kept while it runs again, so a
            # run of a million passing tests keeps nothing.
            self._workers.pop(node_id, None)
            self._machines.pop(node_id, None)
            return None
        if result.worker:
            self._workers.setdefault(node_id, []).append(result.worker)
        if result.machine:
            self._machines.setdefault(node_id, []).append(result.machine)
        return FollowUp(
            node_id,
            result.attempt + 1,
            kind,
            result.shard_id,
            tuple(dict.fromkeys(self._workers.get(node_id, ()))),
            tuple(dict.fromkeys(self._machines.get(node_id, ()))),
        )

    def _kind(self, result: TestResult) -> FollowUpKind | None:
        if self.repeat > 1 and result.node_id in self.new_tests:
            if result.attempt < self.repeat and result.outcome is not Outcome.SKIPPED:
                return FollowUpKind.REPEAT
            return None
        if not result.outcome.is_failure or result.attempt > self.retries:
            return None
        if self.spent >= self.budget:
            if result.node_id not in self.denied:
                self.denied.append(result.node_id)
            return None
        self.spent += 1
        return FollowUpKind.RETRY

    @property
    def budget(self) -> int:
        return retry_budget(self.tests, self.budget_share) if self.retries else 0

    def forget(self, node_ids: Iterable[str]) -> None:
        """Tests no longer owed (a guess proved wrong): their denials do not count."""
        gone = set(node_ids)
        self.denied = [node_id for node_id in self.denied if node_id not in gone]

    def retries_made(self) -> Retries:
        return Retries(
            allowed=self.retries, budget=self.budget, spent=self.spent, denied=tuple(self.denied)
        )


@dataclass(frozen=True)
class FarmShape:
    """How many worker slots and machines the farm has live, as far as it can tell."""

    slots: int
    machines: int


def avoid(ran_on: Sequence[str], available: int) -> tuple[str, ...]:
    """The places to keep a follow-up from: where it ran, newest first, leaving at
    least one of the ``available`` places free (none to avoid on a farm of one)."""
    keep = max(0, available - 1)
    return tuple(reversed(ran_on))[:keep]


def follow_up_task(
    base: ShardTask, follow_up: FollowUp, *, shard_id: int, shape: FarmShape
) -> ShardTask:
    """The shard of ``follow_up``: ``base``'s options, the test alone, away from where
    it ran. The first attempt's lease starts again at 1: the shard is new."""
    return dataclasses.replace(
        base,
        shard_id=shard_id,
        lease=1,
        node_ids=(follow_up.node_id,),
        attempt=follow_up.attempt,
        avoid_workers=avoid(follow_up.ran_on_workers, shape.slots),
        avoid_machines=avoid(follow_up.ran_on_machines, shape.machines),
    )


def relaxed(task: ShardTask) -> ShardTask:
    """``task`` free to run anywhere: no other slot took it in time."""
    return dataclasses.replace(task, avoid_workers=(), avoid_machines=())


@dataclass
class Declined:
    """Follow-ups a slot declined, waiting to go out again: when each shard was
    first declined, and when each task is due. After ``wait_s`` of declines a
    shard may run anywhere."""

    delay_s: float
    wait_s: float
    _since: dict[int, float] = field(default_factory=dict)
    _waiting: list[tuple[float, ShardTask]] = field(default_factory=list)

    def waited_out(self, shard_id: int, now: float) -> bool:
        """Note a decline of ``shard_id`` at ``now``: whether it has waited long enough."""
        return now - self._since.setdefault(shard_id, now) >= self.wait_s

    def later(self, task: ShardTask, now: float) -> None:
        self._waiting.append((now + self.delay_s, task))

    def due(self, now: float) -> list[ShardTask]:
        """The tasks to send again now, no longer waiting."""
        due = [task for when, task in self._waiting if when <= now]
        if due:
            self._waiting = [(when, task) for when, task in self._waiting if when > now]
        return due
