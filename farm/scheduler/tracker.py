"""What a run still owes: pure bookkeeping of shards and results, no I/O.

The tracker is told every event read from the run's stream and answers which
results to store and whether the run is complete. A shard that ends with tests
still lacking a result gets an ``error`` result for each of them, carrying the
worker's reason, so a lost test is never taken for a pass.

A running shard holds a *lease*, a number that grows each time the shard is handed
out again. Its worker renews it by heartbeat; a lease not renewed within
``lease_s`` (the worker was killed, its machine died, its network was cut) has
expired, and :meth:`RunTracker.reissue` hands the shard's tests that still lack a
result out again under the next lease. Events carrying any other lease than the
shard's current one are dropped (fencing), so a worker that comes back late can
neither duplicate nor overwrite a result.

A run may start *speculatively*, from shards planned on the last collection of
the same request, while pytest collects again. Until :meth:`RunTracker.settle`
is told what was really collected, the run cannot be complete; afterwards it
owes exactly the collected tests, and results for tests no longer collected are
kept as attempts but owed by nobody.

With ``max_failures`` (pytest's ``-x``/``--maxfail``) the run stops at that many
failing results, in the order they arrived: it then owes only the tests that have
a result, and every later event is ignored. Tests that had not run are not owed,
as pytest does not count them either; the verdict is failed all the same.

A result may call for a *follow-up* (see :mod:`farm.scheduler.follow_up`): a retry
of a failure, a repeat of a new test. The test then owes that attempt too, from a
shard of its own (:meth:`RunTracker.add_follow_up`); its earlier result stays as
its final one until the next arrives, so a follow-up that is lost leaves the
failure standing, never a pass. A failure that is retried does not count towards
``max_failures``; only a test's last failing attempt does.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from farm.core.domain import Outcome, TestResult
from farm.core.messages import (
    CollectFailed,
    Event,
    Heartbeat,
    ModuleCollected,
    ShardCoverage,
    ShardEnd,
    ShardStart,
)
from farm.scheduler.coverage_debt import CoverageDebt
from farm.scheduler.follow_up import FollowUp, FollowUpPolicy


@dataclass
class _ShardState:
    node_ids: tuple[str, ...]
    worker: str = ""
    started_at: float | None = None
    ended: bool = False
    lease: int = 1
    seen_at: float | None = None  # on the scheduler's clock: when its lease was last renewed
    reissued: int = 0


@dataclass
class Accepted:
    """The outcome of feeding events: what to store and what happened to shards."""

    results: list[TestResult] = field(default_factory=list)
    started: list[ShardStart] = field(default_factory=list)
    ended: list[ShardEnd] = field(default_factory=list)
    handed_back: list[ShardEnd] = field(default_factory=list)  # worker said: run it elsewhere
    renewed: int = 0  # events that renewed a lease
    collected: list[ModuleCollected | CollectFailed] = field(default_factory=list)
    coverage: list[ShardCoverage] = field(default_factory=list)  # under current leases
    ignored: list[str] = field(default_factory=list)  # why each ignored event was dropped


class RunTracker:
    """Shards of one run and the final result of each of its tests."""

    def __init__(
        self,
        run_id: str,
        shards: Iterable[tuple[int, tuple[str, ...]]],
        *,
        settled: bool = True,
        max_failures: int = 0,
        follow_ups: FollowUpPolicy | None = None,
        coverage: bool = False,
    ) -> None:
        self.run_id = run_id
        self.policy = follow_ups or FollowUpPolicy()
        self.awaiting: dict[str, int] = {}  # node id -> the follow-up attempt it still owes
        self.earlier: list[TestResult] = []  # results a later attempt superseded
        self._follow_ups: list[FollowUp] = []
        # Follow-ups decided but not in a shard yet: the shard whose result called
        # for one no longer owes the test, though its shard is not known yet.
        self._unplaced: set[str] = set()
        self.max_failures = max_failures
        self.failures = 0
        self.stopped = False  # at max_failures: nothing more is owed or accepted
        self.shards: dict[int, _ShardState] = {}
        self.shard_of: dict[str, int] = {}
        self.final: dict[str, TestResult] = {}
        self.owed: frozenset[str] | None = None
        self.add_shards(shards)
        self._missing = 0  # owed tests without a final result, once settled
        self.ever_started = False
        self.coverage = CoverageDebt(wanted=coverage)  # what shards owe of coverage data
        if settled:
            self.settle(self.shard_of)

    def add_shards(self, shards: Iterable[tuple[int, tuple[str, ...]]]) -> None:
        for shard_id, node_ids in shards:
            self.shards[shard_id] = _ShardState(node_ids)
            for node_id in node_ids:
                self.shard_of[node_id] = shard_id
        if self.owed is None:  # until it settles, the run owes what its shards hold
            self.policy.tests = len(self.shard_of)

    def add_follow_up(self, shard_id: int, follow_up: FollowUp) -> None:
        """Owe ``follow_up``'s attempt from the new shard ``shard_id``, its test alone."""
        self.shards[shard_id] = _ShardState((follow_up.node_id,))
        self.shard_of[follow_up.node_id] = shard_id
        self._unplaced.discard(follow_up.node_id)

    def unfinished_tests(self) -> Iterator[str]:
        """Tests of the run's shards still waiting for a result: none yet, or a
        follow-up attempt."""
        return (n for n in self.shard_of if n not in self.final or n in self.awaiting)

    def take_follow_ups(self) -> list[FollowUp]:
        """The follow-ups results called for since the last call."""
        follow_ups, self._follow_ups = self._follow_ups, []
        return follow_ups

    def owes(self, shard_id: int, node_id: str) -> bool:
        """Whether ``shard_id`` still owes a result for ``node_id``."""
        return (
            self.shard_of.get(node_id) == shard_id
            and node_id not in self._unplaced
            and (node_id not in self.final or node_id in self.awaiting)
        )

    def preload(
        self, shards: Mapping[int, tuple[str, ...]], final: Mapping[str, TestResult]
    ) -> None:
        """What an earlier scheduler of this run dispatched and stored (``--resume``):
        its shards are over, its results final. Tests already in one of this
        session's shards stay owed by that shard."""
        for shard_id, node_ids in shards.items():
            self.shards[shard_id] = _ShardState(node_ids, ended=True)
            for node_id in node_ids:
                self.shard_of.setdefault(node_id, shard_id)
        for result in final.values():
            self._record(result, follow=False)
        self.ever_started = True
        if final:
            self.coverage.note("the tests run before the resume were measured by a lost scheduler")

    def drop_shards(self, shard_ids: Iterable[int]) -> None:
        """Forget shards planned on a guess that proved wrong; their events are ignored."""
        for shard_id in shard_ids:
            state = self.shards.pop(shard_id)
            self.coverage.forget(shard_id)
            for node_id in state.node_ids:
                if self.shard_of.get(node_id) == shard_id:
                    del self.shard_of[node_id]
                    self.final.pop(node_id, None)
                    self.awaiting.pop(node_id, None)
                    self.policy.forget([node_id])

    def settle(self, collected: Iterable[str]) -> None:
        """Owe exactly ``collected``; every collected test must already be in a shard."""
        if self.stopped:
            return  # a stopped run owes what it ran, whatever the collection says
        owed = frozenset(collected)
        unplanned = owed - self.shard_of.keys()
        if unplanned:
            raise ValueError(f"{len(unplanned)} collected tests are in no shard")
        self.owed = owed
        self._missing = sum(1 for node_id in owed if node_id not in self.final)
        self.policy.tests = len(owed)
        for node_id in [n for n in self.awaiting if n not in owed]:
            del self.awaiting[node_id]
        self.policy.forget(n for n in self.policy.denied if n not in owed)

    def _record(self, result: TestResult, *, follow: bool = True) -> None:
        node_id = result.node_id
        if self.owed is not None and node_id in self.owed and node_id not in self.final:
            self._missing -= 1
        earlier = self.final.get(node_id)
        if earlier is not None:
            self.earlier.append(earlier)
        self.final[node_id] = result
        self.awaiting.pop(node_id, None)
        owed = self.owed is None or node_id in self.owed
        follow_up = self.policy.after(result) if follow and owed else None
        if follow_up is not None:
            self.awaiting[node_id] = follow_up.attempt
            self._follow_ups.append(follow_up)
            self._unplaced.add(node_id)
        elif result.outcome.is_failure and self.max_failures:
            self.failures += 1
            if self.failures >= self.max_failures:
                self._stop()

    def _stop(self) -> None:
        """Stop at ``max_failures``: the run owes what finished. A test still waiting
        for a retry has not finished (pytest would not have got to it): it is not
        counted, its earlier attempts aside."""
        for node_id in self.awaiting:
            self.earlier.append(self.final.pop(node_id))
        self.stopped = True
        self.owed = frozenset(self.final)
        self._missing = 0
        self.awaiting.clear()
        self._follow_ups.clear()
        self.coverage.give_up("the run stopped at its failure limit first")
        self._unplaced.clear()

    @property
    def complete(self) -> bool:
        return self.owed is not None and self._missing == 0 and not self.awaiting

    @property
    def any_started(self) -> bool:
        """Whether any worker has taken a shard of this run yet."""
        return self.ever_started

    def expired(self, now: float, lease_s: float) -> list[int]:
        """Running shards whose lease was not renewed within ``lease_s`` of ``now``."""
        return [
            shard_id
            for shard_id, state in self.shards.items()
            if not state.ended
            and state.started_at is not None
            and state.seen_at is not None
            and now - state.seen_at > lease_s
        ]

    def renew_running(self, now: float) -> None:
        """Count every running shard's lease as renewed at ``now`` (Redis is back: its
        workers could not renew while it was away)."""
        for state in self.shards.values():
            if state.started_at is not None and not state.ended:
                state.seen_at = now

    def unfinished(self) -> list[int]:
        """Shards that have not ended: queued or running."""
        return [shard_id for shard_id, state in self.shards.items() if not state.ended]

    def reissue(self, shard_id: int, *, counted: bool = True) -> tuple[int, tuple[str, ...]]:
        """Supersede the shard's lease: the new lease, and the tests it still owes.

        From now on only events of the new lease count. A shard that owes nothing
        more is ended instead (its lease is still superseded). A reissue not
        ``counted`` (a follow-up a slot declined) does not bring the shard closer
        to giving up.
        """
        state = self.shards[shard_id]
        self.coverage.superseded(shard_id)
        state.lease += 1
        state.reissued += int(counted)
        state.worker, state.started_at, state.seen_at = "", None, None
        owed = tuple(node_id for node_id in state.node_ids if self.owes(shard_id, node_id))
        if not owed:
            state.ended = True
        return state.lease, owed

    def reissued(self, shard_id: int) -> int:
        return self.shards[shard_id].reissued

    def fail_shard(self, end: ShardEnd) -> list[TestResult]:
        """End a shard that cannot be handed out again: its owed tests get errors."""
        return self._close(end, self.shards[end.shard_id])

    def done_but_not_ended(self) -> dict[int, float]:
        """Started shards not yet said to have ended whose tests all have results from
        them, with the time their last result finished."""
        done: dict[int, float] = {}
        for shard_id, state in self.shards.items():
            if state.started_at is None or state.ended:
                continue
            if any(self.owes(shard_id, node_id) for node_id in state.node_ids):
                continue
            # A test that moved on to a follow-up reported here first.
            times = [
                result.finished_at
                for result in (self.final.get(node_id) for node_id in state.node_ids)
                if result is not None and result.shard_id == shard_id
            ]
            done[shard_id] = max(times, default=state.started_at)
        return done

    @property
    def shards_left(self) -> int:
        return sum(1 for state in self.shards.values() if not state.ended)

    def feed(self, events: Iterable[Event], now: float = 0.0) -> Accepted:
        """Account for ``events``, read at ``now`` (the scheduler's clock, for leases)."""
        accepted = Accepted()
        for event in events:
            if self.stopped:
                accepted.ignored.append(f"run stopped after {self.failures} failure(s)")
                continue
            if event.run_id != self.run_id:
                accepted.ignored.append(f"event for another run {event.run_id!r}")
                continue
            state = self.shards.get(event.shard_id)
            if state is None:
                accepted.ignored.append(f"event for unknown shard {event.shard_id}")
                continue
            if isinstance(event, ModuleCollected | CollectFailed):
                # What a module holds does not depend on who collected it.
                accepted.collected.append(event)
                continue
            if event.lease != state.lease or state.ended:
                accepted.ignored.append(
                    f"{type(event).__name__} of shard {event.shard_id} under lease "
                    f"{event.lease}, superseded by lease {state.lease}"
                    if event.lease != state.lease
                    else f"{type(event).__name__} of ended shard {event.shard_id}"
                )
                continue
            state.seen_at = now
            accepted.renewed += 1
            if isinstance(event, ShardStart):
                state.worker, state.started_at = event.worker, event.at
                self.ever_started = True
                accepted.started.append(event)
            elif isinstance(event, Heartbeat):
                pass
            elif isinstance(event, ShardEnd):
                if event.retry:
                    accepted.handed_back.append(event)
                else:
                    accepted.results.extend(self._close(event, state))
                    accepted.ended.append(event)
            elif isinstance(event, ShardCoverage):
                self.coverage.arrived(event)
                accepted.coverage.append(event)
            elif self.shard_of.get(event.node_id) != event.shard_id:
                accepted.ignored.append(f"result for {event.node_id!r} not in shard")
            else:
                self._record(event)
                self.coverage.ran(event.shard_id)
                accepted.results.append(event)
        return accepted

    def _close(self, end: ShardEnd, state: _ShardState) -> list[TestResult]:
        state.ended = True
        self.coverage.ended(end.shard_id)
        reason = end.message or f"shard ended (pytest exit code {end.exit_code})"
        synthetic = []
        for node_id in state.node_ids:
            if self.stopped:
                break  # at max_failures: what ran is all the run owes
            if self.owes(end.shard_id, node_id):
                result = TestResult(
                    run_id=self.run_id,
                    shard_id=end.shard_id,
                    lease=end.lease,
                    node_id=node_id,
                    outcome=Outcome.ERROR,
                    duration_s=0.0,
                    worker=end.worker,
                    attempt=self.awaiting.get(node_id, 1),
                    longrepr=f"no result from the worker: {reason}",
                    started_at=end.at,
                    finished_at=end.at,
                )
                self._record(result)
                synthetic.append(result)
        return synthetic
