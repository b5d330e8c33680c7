"""Supervises one dispatched run: reads events, stores results, until every test has one.

The loop is exposed as :meth:`RunSession.step`, so tests drive it without sleeping.
Results are written to the store in batches (every ``flush_interval_s`` or
``flush_results`` results), never held back past the end of the run.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Protocol

from farm.domain import TestResult
from farm.messages import ShardEnd, ShardStart, ShardTask
from scheduler.ingest import EventReader
from scheduler.tracker import RunTracker


class ResultSink(Protocol):
    """The part of the results store a session writes to."""

    def record_results(self, results: Sequence[TestResult]) -> None: ...

    def shard_started(
        self, run_id: str, shard_id: int, *, worker: str, started_at: float
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
        liveness: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.monotonic,
        flush_interval_s: float = 0.5,
        flush_results: int = 2000,
    ) -> None:
        self.tasks = tasks
        self.run_id = tasks[0].run_id if tasks else ""
        self.tracker = RunTracker(self.run_id, ((t.shard_id, t.node_ids) for t in tasks))
        self.reader = reader
        self.store = store
        self.sender = sender
        self.progress = progress
        self.estimates_s = estimates_s
        self.liveness = liveness
        self.clock = clock
        self.flush_interval_s = flush_interval_s
        self.flush_results = flush_results
        self._pending: list[TestResult] = []
        self._starts: list[ShardStart] = []
        self._ends: list[ShardEnd] = []
        self._flushed_at = clock()
        self.ignored: list[str] = []

    @property
    def complete(self) -> bool:
        return self.tracker.complete

    def start(self) -> None:
        self.sender.send(self.tasks)

    def step(self, *, block_ms: int = 200) -> None:
        """Read what workers sent (waiting up to ``block_ms``), account for it, maybe flush."""
        self.liveness()
        accepted = self.tracker.feed(self.reader.read(block_ms=block_ms))
        self.ignored.extend(accepted.ignored)
        self._pending.extend(accepted.results)
        self._starts.extend(accepted.started)
        self._ends.extend(accepted.ended)
        for result in accepted.results:
            self.progress.add(result, self.estimates_s.get(result.node_id, 0.0))
        now = self.clock()
        self.progress.render(now)
        due = now - self._flushed_at >= self.flush_interval_s
        if self.complete or due or len(self._pending) >= self.flush_results:
            self.flush(now)

    def flush(self, now: float) -> None:
        for start in self._starts:
            self.store.shard_started(
                self.run_id, start.shard_id, worker=start.worker, started_at=start.at
            )
        if self._pending:
            self.store.record_results(self._pending)
        for end in self._ends:
            self.store.shard_finished(self.run_id, end.shard_id, finished_at=end.at)
        self._pending, self._starts, self._ends = [], [], []
        self.reader.trim()
        self._flushed_at = now

    def run(self) -> dict[str, TestResult]:
        """Dispatch, then step until every test has a final result; returns them."""
        self.start()
        while not self.complete:
            self.step()
        self.flush(self.clock())
        return dict(self.tracker.final)
