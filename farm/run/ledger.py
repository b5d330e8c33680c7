"""The ledger of a run: every write about its life in the results store.

A run is created (or reopened, to resume it), started with its first shards, given
more shards as it learns of more tests, kept alive by heartbeats, and finished
with its verdict and the history its results update. Nothing else in a run
writes these rows, so the order of a run's life is read in one place. Results
themselves are written by the session as they arrive (:mod:`farm.scheduler.session`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from farm.core.domain import RunState, ShardTimeline, TestResult, Verdict
from farm.core.messages import ShardTask
from farm.run.planner import Shards
from farm.run.records import shard_records, shard_timeline
from farm.store import ShardRecord, ShardView


class RunRows(Protocol):
    """The part of the results store a ledger writes to."""

    def create_run(
        self,
        *,
        project: str,
        trigger: str,
        settings: Mapping[str, object],
        snapshot_digest: str | None = None,
    ) -> str: ...

    def start_run(
        self,
        run_id: str,
        *,
        total_tests: int,
        estimated_makespan_s: float,
        shards: Sequence[ShardRecord],
    ) -> None: ...

    def add_shards(
        self, run_id: str, shards: Sequence[ShardRecord], *, total_tests: int
    ) -> None: ...

    def save_shard_tests(self, run_id: str, shard_tests: Mapping[int, Sequence[str]]) -> None: ...

    def reopen_run(self, run_id: str) -> None: ...

    def heartbeat(self, run_id: str) -> None: ...

    def finish_run(
        self, run_id: str, *, verdict: Verdict, message: str = "", state: RunState = ...
    ) -> None: ...

    def update_history(self, project: str, results: Sequence[TestResult]) -> None: ...

    def get_shards(self, run_id: str) -> tuple[ShardView, ...]: ...


class RunLedger:
    """The store's record of run ``run_id`` of ``project``."""

    def __init__(self, store: RunRows, run_id: str, project: str) -> None:
        self.store = store
        self.run_id = run_id
        self.project = project

    @classmethod
    def create(
        cls,
        store: RunRows,
        *,
        project: str,
        settings: Mapping[str, object],
        snapshot_digest: str | None = None,
    ) -> RunLedger:
        """A new run, recorded as asked for from the command line."""
        run_id = store.create_run(
            project=project, trigger="cli", settings=settings, snapshot_digest=snapshot_digest
        )
        return cls(store, run_id, project)

    @classmethod
    def reopen(cls, store: RunRows, run_id: str, project: str) -> RunLedger:
        """An abandoned run, running again under a new scheduler."""
        store.reopen_run(run_id)
        return cls(store, run_id, project)

    def start(self, shards: Shards, *, total_tests: int) -> None:
        """The run's first shards are about to go out."""
        self.store.start_run(
            self.run_id,
            total_tests=total_tests,
            estimated_makespan_s=shards.plan.estimated_makespan_s,
            shards=shard_records(shards.plan, shards.tasks),
        )
        self._save_tests(shards.tasks)

    def add(self, shards: Shards, *, total_tests: int) -> None:
        """More shards of a run under way; the run now holds ``total_tests``."""
        self.store.add_shards(
            self.run_id, shard_records(shards.plan, shards.tasks), total_tests=total_tests
        )
        self._save_tests(shards.tasks)

    def heartbeat(self) -> None:
        """The run's scheduler is alive."""
        self.store.heartbeat(self.run_id)

    def finish(self, verdict: Verdict, message: str, state: RunState = RunState.FINISHED) -> None:
        """The run is over with ``verdict``."""
        self.store.finish_run(self.run_id, verdict=verdict, message=message, state=state)

    def learn(self, results: Sequence[TestResult]) -> None:
        """Fold a finished run's final results into its project's history."""
        self.store.update_history(self.project, results)

    def timeline(self) -> tuple[ShardTimeline, ...]:
        """Who ran each shard and when."""
        return shard_timeline(self.store.get_shards(self.run_id))

    def _save_tests(self, tasks: Sequence[ShardTask]) -> None:
        # What a resumed run must dispatch again if this scheduler dies.
        self.store.save_shard_tests(self.run_id, {t.shard_id: t.node_ids for t in tasks})
