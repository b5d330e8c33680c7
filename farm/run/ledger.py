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

from farm.core.domain import ChangeRef, RunFindings, RunState, ShardTimeline, TestResult, Verdict
from farm.core.quarantine import QuarantineRules
from farm.core.shard_task import ShardTask
from farm.run.planner import Shards
from farm.run.records import shard_records, shard_timeline
from farm.store import ShardRecord, ShardView
from farm.store.records import QuarantineEvent


class RunRows(Protocol):
    """The part of the results store a ledger writes to."""

    def create_run(
        self,
        *,
        project: str,
        trigger: str,
        settings: Mapping[str, object],
        change: ChangeRef | None = None,
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
        self,
        run_id: str,
        *,
        verdict: Verdict,
        message: str = "",
        state: RunState = ...,
        findings: RunFindings | None = None,
    ) -> None: ...

    def update_history(
        self, project: str, results: Sequence[TestResult], *, rules: QuarantineRules | None = None
    ) -> tuple[QuarantineEvent, ...]: ...

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
        change: ChangeRef | None = None,
        snapshot_digest: str | None = None,
        trigger: str = "cli",
    ) -> RunLedger:
        """A new run of ``change``, recorded as asked for by ``trigger`` (the command
        line, or a trigger source of the server)."""
        run_id = store.create_run(
            project=project,
            trigger=trigger,
            settings=settings,
            change=change,
            snapshot_digest=snapshot_digest,
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

    def add_follow_ups(
        self, tasks: Sequence[ShardTask], estimates_s: Mapping[str, float], *, total_tests: int
    ) -> None:
        """Shards of one test each that run a test again (retries, repeats)."""
        records = [
            ShardRecord(
                t.shard_id, len(t.node_ids), sum(estimates_s.get(n, 0.0) for n in t.node_ids)
            )
            for t in tasks
        ]
        self.store.add_shards(self.run_id, records, total_tests=total_tests)
        self._save_tests(tasks)

    def heartbeat(self) -> None:
        """The run's scheduler is alive."""
        self.store.heartbeat(self.run_id)

    def finish(
        self,
        verdict: Verdict,
        message: str,
        state: RunState = RunState.FINISHED,
        findings: RunFindings | None = None,
    ) -> None:
        """The run is over with ``verdict``, having found ``findings``."""
        self.store.finish_run(
            self.run_id, verdict=verdict, message=message, state=state, findings=findings
        )

    def learn(
        self, attempts: Sequence[TestResult], rules: QuarantineRules | None = None
    ) -> tuple[QuarantineEvent, ...]:
        """Fold a finished run's attempts (retries included, oldest first) into its
        project's history; with ``rules``, quarantine what they call for."""
        return self.store.update_history(self.project, attempts, rules=rules)

    def timeline(self) -> tuple[ShardTimeline, ...]:
        """Who ran each shard and when."""
        return shard_timeline(self.store.get_shards(self.run_id))

    def _save_tests(self, tasks: Sequence[ShardTask]) -> None:
        # What a resumed run must dispatch again if this scheduler dies.
        self.store.save_shard_tests(self.run_id, {t.shard_id: t.node_ids for t in tasks})
