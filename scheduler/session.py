"""Supervises one dispatched run: reads events, stores results, until every test has one.

The loop is exposed as :meth:`RunSession.step`, so tests drive it without sleeping.
Results are written to the store in batches (every ``flush_interval_s`` or
``flush_results`` results), never held back past the end of the run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Protocol

from farm.domain import TestResult
from farm.errors import InfrastructureError
from farm.messages import CollectFailed, ModuleCollected, ShardEnd, ShardStart, ShardTask
from scheduler.ingest import EventReader
from scheduler.tracker import RunTracker

log = logging.getLogger(__name__)


class ResultSink(Protocol):
    """The part of the results store a session writes to."""

    def record_results(self, results: Sequence[TestResult]) -> None: ...

    def shard_started(
        self, run_id: str, shard_id: int, *, worker: str, started_at: float, machine: str | None
    ) -> None: ...

    def shard_finished(self, run_id: str, shard_id: int, *, finished_at: float) -> None: ...


class ProgressView(Protocol):
    """What the session tells the user as results arrive."""

    def add(self, result: TestResult, estimate_s: float) -> None: ...

    def render(self, now: float) -> None: ...


class Sender(Protocol):
    def send(self, tasks: Sequence[ShardTask]) -> None: ...


class RunSession:
    """One run from dispatch to the last result."""

    def __init__(
        self,
        *,
        tasks: Sequence[ShardTask],
        reader: EventReader,
        store: ResultSink,
        sender: Sender,
        progress: ProgressView,
        estimates_s: dict[str, float],
        settled: bool = True,
        liveness: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        flush_interval_s: float = 0.5,
        flush_results: int = 2000,
        min_step_s: float = 0.05,
    ) -> None:
        self.tasks = tasks
        self.run_id = tasks[0].run_id if tasks else ""
        self.tracker = RunTracker(
            self.run_id, ((t.shard_id, t.node_ids) for t in tasks), settled=settled
        )
        self.reader = reader
        self.store = store
        self.sender = sender
        self.progress = progress
        self.estimates_s = estimates_s
        self.liveness = liveness
        self.clock = clock
        self.sleep = sleep
        self.min_step_s = min_step_s
        self._stepped_at = float("-inf")
        self.flush_interval_s = flush_interval_s
        self.flush_results = flush_results
        self._pending: list[TestResult] = []
        self._starts: list[ShardStart] = []
        self._ends: list[ShardEnd] = []
        self._flushed_at = clock()

    @property
    def complete(self) -> bool:
        return self.tracker.complete

    def start(self) -> None:
        self.sender.send(self.tasks)

    def add_tasks(self, tasks: Sequence[ShardTask]) -> None:
        """Dispatch more shards of this run (tests the speculative plan did not know)."""
        self.tracker.add_shards((t.shard_id, t.node_ids) for t in tasks)
        self.tasks = [*self.tasks, *tasks]
        self.sender.send(tasks)

    def settle(self, collected: Sequence[str]) -> None:
        """From now on the run owes exactly the ``collected`` tests."""
        self.tracker.settle(collected)

    def step(self, *, block_ms: int = 200) -> list[ModuleCollected | CollectFailed]:
        """Read what workers sent (waiting up to ``block_ms``), account for it, maybe flush.

        Steps are at least ``min_step_s`` apart: results then arrive in batches, and
        the scheduler does not spend a core on one read per result of a fast suite.
        Returns what workers said of collection, for a run that is not settled yet.
        """
        wait_s = self._stepped_at + self.min_step_s - self.clock()
        if wait_s > 0:
            self.sleep(wait_s)
        self._stepped_at = self.clock()
        self.liveness()
        accepted = self.tracker.feed(self.reader.read(block_ms=block_ms))
        for reason in accepted.ignored:
            log.warning("ignored an event of run %s: %s", self.run_id, reason)
        self._pending.extend(accepted.results)
        self._starts.extend(accepted.started)
        self._ends.extend(accepted.ended)
        for result in accepted.results:
            self.progress.add(result, self.estimates_s.get(result.node_id, 0.0))
        for end in accepted.ended:
            if end.fatal:
                raise InfrastructureError(f"shard {end.shard_id} cannot run: {end.message}")
        now = self.clock()
        self.progress.render(now)
        due = now - self._flushed_at >= self.flush_interval_s
        if self.complete or due or len(self._pending) >= self.flush_results:
            self.flush(now)
        return accepted.collected

    def flush(self, now: float) -> None:
        for start in self._starts:
            self.store.shard_started(
                self.run_id,
                start.shard_id,
                worker=start.worker,
                started_at=start.at,
                machine=start.host or None,
            )
        if self._pending:
            self.store.record_results(self._pending)
        for end in self._ends:
            self.store.shard_finished(self.run_id, end.shard_id, finished_at=end.at)
        self._pending, self._starts, self._ends = [], [], []
        self.reader.trim()
        self._flushed_at = now

    def run(self) -> dict[str, TestResult]:
        """Step until every owed test has a final result (the run is settled); returns them.

        A worker says a shard ended only after its test session has closed, a little
        after the shard's last result; the run does not wait for that. Shards whose
        tests all have results are recorded as finished with their last result.
        """
        while not self.complete:
            self.step()
        self.flush(self.clock())
        for shard_id, finished_at in self.tracker.done_but_not_ended().items():
            self.store.shard_finished(self.run_id, shard_id, finished_at=finished_at)
        return dict(self.tracker.final)
