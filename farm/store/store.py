"""The results store: runs, shards, attempts and history in SQLite or PostgreSQL.

The store is the source of truth for what a run still owes. It is opened from a URL
(``sqlite:///path/farm.db``, ``postgresql://user:pw@host/db``), which brings the
schema to the newest migration; every method is one transaction. Every database
failure is raised as :class:`farm.core.errors.StoreError` naming the URL with its password
masked; an unknown run or shard id as :class:`farm.core.errors.UsageError` (see
:mod:`farm.store.connection`).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType

from sqlalchemy import Connection, Engine, insert, select

from farm.core.domain import History, RunState, TestResult, Verdict
from farm.core.errors import UsageError
from farm.store import history as history_queries
from farm.store.connection import StoreConnection, connect
from farm.store.records import ChangeInfo, RunRecord, ShardRecord, ShardState, ShardView
from farm.store.rows import (
    ATTEMPTS,
    CHANGE_FIELDS,
    CHANGES,
    RUNS,
    SHARDS,
    attempt_row,
    change_id,
    clip_text,
    run_record,
    shard_view,
    test_result,
)
from farm.store.urls import mask_url

DEFAULT_EWMA_ALPHA = 0.3


class ResultStore(StoreConnection):
    """Runs, their shards and test attempts, and each project's duration history.

    ``ewma_alpha`` is the weight of a new sample in the duration estimates (see
    :mod:`farm.store.history`); ``clock`` gives the unix time stamped on rows, and
    is there so that tests can move time.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        display_url: str,
        ewma_alpha: float = DEFAULT_EWMA_ALPHA,
        clock: Callable[[], float] = time.time,
    ) -> None:
        _check_alpha(ewma_alpha)
        super().__init__(engine, display_url=display_url)
        self._alpha = ewma_alpha
        self._clock = clock

    @classmethod
    def open(
        cls,
        url: str,
        *,
        ewma_alpha: float = DEFAULT_EWMA_ALPHA,
        clock: Callable[[], float] = time.time,
    ) -> ResultStore:
        """Connect to ``url`` and upgrade its schema to the newest migration."""
        _check_alpha(ewma_alpha)
        engine = connect(url)
        return cls(engine, display_url=mask_url(url), ewma_alpha=ewma_alpha, clock=clock)

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- runs and shards -------------------------------------------------------------

    def create_run(
        self,
        *,
        project: str,
        trigger: str,
        settings: Mapping[str, object],
        change: ChangeInfo | None = None,
        snapshot_digest: str | None = None,
    ) -> str:
        """Record a new pending run and return its id (32 hex digits).

        ``settings`` is stored as JSON; values JSON cannot hold are stored as text.
        """
        run_id = uuid.uuid4().hex
        now = self._clock()
        settings_json = json.dumps(dict(settings), sort_keys=True, default=str)
        with self.transaction("create a run") as connection:
            known_change = None if change is None else change_id(connection, change, now)
            connection.execute(
                insert(RUNS).values(
                    id=run_id,
                    change_id=known_change,
                    project=project,
                    trigger=trigger,
                    settings_json=settings_json,
                    snapshot_digest=snapshot_digest,
                    state=RunState.PENDING,
                    message="",
                    total_tests=0,
                    estimated_makespan_s=0.0,
                    created_at=now,
                )
            )
        return run_id

    def start_run(
        self,
        run_id: str,
        *,
        total_tests: int,
        estimated_makespan_s: float,
        shards: Sequence[ShardRecord],
    ) -> None:
        """Mark the run running with its plan: how many tests, in which shards."""
        now = self._clock()
        with self.transaction("start a run") as connection:
            self._update_run(
                connection,
                run_id,
                {
                    "state": RunState.RUNNING,
                    "total_tests": total_tests,
                    "estimated_makespan_s": estimated_makespan_s,
                    "started_at": now,
                    "heartbeat_at": now,
                },
            )
            _insert_shards(connection, run_id, shards)

    def add_shards(self, run_id: str, shards: Sequence[ShardRecord], *, total_tests: int) -> None:
        """Add shards to a running run (tests found after a speculative start)."""
        with self.transaction("add shards") as connection:
            self._update_run(connection, run_id, {"total_tests": total_tests})
            _insert_shards(connection, run_id, shards)

    def heartbeat(self, run_id: str, *, at: float | None = None) -> None:
        """Say the run's scheduler is alive (at ``at``, or now)."""
        with self.transaction("record a heartbeat") as connection:
            self._update_run(
                connection, run_id, {"heartbeat_at": self._clock() if at is None else at}
            )

    def shard_started(
        self,
        run_id: str,
        shard_id: int,
        *,
        worker: str,
        started_at: float,
        machine: str | None = None,
    ) -> None:
        """Record that ``worker`` (on ``machine``) began running the shard."""
        with self.transaction("record a shard start") as connection:
            self._update_shard(
                connection,
                run_id,
                shard_id,
                {
                    "worker": worker,
                    "machine": machine,
                    "state": ShardState.RUNNING,
                    "started_at": started_at,
                },
            )

    def shard_finished(self, run_id: str, shard_id: int, *, finished_at: float) -> None:
        """Record that the shard's worker reported its last test."""
        with self.transaction("record a shard end") as connection:
            self._update_shard(
                connection,
                run_id,
                shard_id,
                {"state": ShardState.FINISHED, "finished_at": finished_at},
            )

    def shard_reissued(self, run_id: str, shard_id: int, *, lease: int) -> None:
        """Record that the shard's lease lapsed and its owed tests went out under ``lease``."""
        with self.transaction("record a reissued shard") as connection:
            self._update_shard(
                connection,
                run_id,
                shard_id,
                {"state": ShardState.LOST, "lease": lease, "worker": None, "machine": None},
            )

    def finish_run(
        self,
        run_id: str,
        *,
        verdict: Verdict,
        message: str = "",
        state: RunState = RunState.FINISHED,
    ) -> None:
        """Record the run's verdict and end (``state`` ABANDONED for a run given up on)."""
        with self.transaction("finish a run") as connection:
            self._update_run(
                connection,
                run_id,
                {
                    "state": state,
                    "verdict": verdict,
                    "message": clip_text(message),
                    "finished_at": self._clock(),
                },
            )

    def get_run(self, run_id: str) -> RunRecord:
        """The run as it is now. Raises UsageError for an unknown id."""
        query = (
            select(RUNS, *(CHANGES.c[name].label(f"change_{name}") for name in CHANGE_FIELDS))
            .outerjoin(CHANGES, RUNS.c.change_id == CHANGES.c.id)
            .where(RUNS.c.id == run_id)
        )
        with self.transaction("read a run") as connection:
            row = connection.execute(query).first()
        if row is None:
            raise self._unknown_run(run_id)
        return run_record(row)

    def get_shards(self, run_id: str) -> tuple[ShardView, ...]:
        """The run's shards by shard id; empty before the run started."""
        query = select(SHARDS).where(SHARDS.c.run_id == run_id).order_by(SHARDS.c.shard_id)
        with self.transaction("read shards") as connection:
            return tuple(shard_view(row) for row in connection.execute(query))

    def has_runs(self, project: str) -> bool:
        """Whether any run of ``project`` was ever recorded."""
        query = select(RUNS.c.id).where(RUNS.c.project == project).limit(1)
        with self.transaction("look for runs") as connection:
            return connection.execute(query).first() is not None

    # -- attempts --------------------------------------------------------------------

    def record_results(self, results: Sequence[TestResult]) -> None:
        """Store attempts, in one transaction; they may belong to several runs."""
        if not results:
            return
        rows = [attempt_row(r) for r in results]
        with self.transaction(f"record {len(rows)} results") as connection:
            connection.execute(insert(ATTEMPTS), rows)

    def final_results(self, run_id: str) -> dict[str, TestResult]:
        """Node id to its final result: the attempt with the highest number (ties:
        the one recorded last). Raises UsageError for an unknown run."""
        query = select(ATTEMPTS).where(ATTEMPTS.c.run_id == run_id).order_by(ATTEMPTS.c.id)
        final: dict[str, TestResult] = {}
        with self.transaction("read results") as connection:
            for row in connection.execute(query):
                kept = final.get(row.node_id)
                if kept is None or row.attempt >= kept.attempt:
                    final[row.node_id] = test_result(row)
            if not final and not self._run_exists(connection, run_id):
                raise self._unknown_run(run_id)
        return final

    # -- history ---------------------------------------------------------------------

    def update_history(self, project: str, results: Sequence[TestResult]) -> None:
        """Fold a run's attempts into the project's estimates (see history module)."""
        with self.transaction("update history") as connection:
            history_queries.update_history(
                connection, project, results, alpha=self._alpha, now=self._clock()
            )

    def history(self, project: str) -> History:
        """Every estimate the project has, for planning."""
        with self.transaction("read history") as connection:
            return history_queries.read_history(connection, project)

    def import_durations(self, project: str, durations: Mapping[str, float]) -> int:
        """Set estimates from a durations file; returns how many were set."""
        with self.transaction("import durations") as connection:
            return history_queries.import_durations(
                connection, project, durations, now=self._clock()
            )

    def export_durations(self, project: str) -> dict[str, float]:
        """Node id to estimated seconds, ready for a pytest-split durations file."""
        with self.transaction("export durations") as connection:
            return history_queries.export_durations(connection, project)


def _check_alpha(ewma_alpha: float) -> None:
    if not 0 < ewma_alpha <= 1:
        raise UsageError(f"EWMA alpha must be in (0, 1], not {ewma_alpha!r}")


def _insert_shards(connection: Connection, run_id: str, shards: Sequence[ShardRecord]) -> None:
    if shards:
        rows = [
            {
                "run_id": run_id,
                "shard_id": shard.shard_id,
                "test_count": shard.test_count,
                "estimate_s": shard.estimate_s,
                "lease": 1,
                "state": ShardState.PENDING,
            }
            for shard in shards
        ]
        connection.execute(insert(SHARDS), rows)
