"""What a run session has yet to write to the results store, written in one batch.

A session stores what it learns in batches (see :mod:`farm.scheduler.session`), so
a fast suite costs the database a transaction per batch, not per result. Shard
starts, ends and reissues wait in the same batch as the results, because the
order of the writes matters: a reissue clears the shard's worker before the new
lease's start names one, and a shard ends only after its results are stored.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from farm.core.domain import TestResult
from farm.core.messages import ShardEnd, ShardStart


class ResultSink(Protocol):
    """The part of the results store a session writes to."""

    def record_results(self, results: Sequence[TestResult]) -> None: ...

    def shard_started(
        self, run_id: str, shard_id: int, *, worker: str, started_at: float, machine: str | None
    ) -> None: ...

    def shard_finished(self, run_id: str, shard_id: int, *, finished_at: float) -> None: ...

    def shard_reissued(self, run_id: str, shard_id: int, *, lease: int) -> None: ...


class StoreWrites:
    """The results, shard starts, ends and reissues of run ``run_id`` not yet stored."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self.results: list[TestResult] = []
        self.starts: list[ShardStart] = []
        self.ends: list[ShardEnd] = []
        self.reissues: list[tuple[int, int]] = []  # (shard id, its new lease)

    def write(self, store: ResultSink) -> None:
        """Store everything pending, reissues first and shard ends last, and forget it."""
        for shard_id, lease in self.reissues:
            store.shard_reissued(self.run_id, shard_id, lease=lease)
        self.reissues = []
        for start in self.starts:
            store.shard_started(
                self.run_id,
                start.shard_id,
                worker=start.worker,
                started_at=start.at,
                machine=start.machine or None,
            )
        if self.results:
            store.record_results(self.results)
        for end in self.ends:
            store.shard_finished(self.run_id, end.shard_id, finished_at=end.at)
        self.results, self.starts, self.ends = [], [], []
