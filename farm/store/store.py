"""The results store: runs, shards, attempts and history in SQLite or PostgreSQL.

:class:`ResultStore` is the store's one facade: its methods and parts are the whole
API, and each call is one transaction. It is opened from a URL
(``sqlite:///path/farm.db``, ``postgresql://user:pw@host/db``), which brings the
schema to the newest migration, with one clock: every time the store writes
(created, started, heartbeat, finished, updated) or compares (the heartbeat
deadline) is read from it, and nowhere else. The statements live in focused query
modules behind it, each taking the open connection: :mod:`~farm.store.runs` (runs,
shards, attempts), :mod:`~farm.store.changes` (a change's runs),
:mod:`~farm.store.recovery` (what ``--resume`` needs), :mod:`~farm.store.history`
(estimates and recent runs), :mod:`~farm.store.stats` (test statistics, suspect
machines). Its parts share its connection: ``quarantine``
(:class:`~farm.store.quarantine.QuarantineBook`), ``order``
(:class:`~farm.store.order.OrderRecords`), ``reruns``
(:class:`~farm.store.last_failed.RerunRecords`: known failures, the last ``--sw``
mark) and ``collection_cache`` (:class:`~farm.store.collections.CachedCollections`).

Every database failure is raised as :class:`farm.core.errors.StoreError` naming the
URL with its password masked; an unknown run or shard id as
:class:`farm.core.errors.UsageError` (see :mod:`farm.store.connection`).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping, Sequence
from types import TracebackType

from sqlalchemy import Engine

from farm.core import defaults
from farm.core.domain import (
    ChangeRef,
    History,
    MachineSuspect,
    RunFindings,
    RunState,
    TestResult,
    Verdict,
)
from farm.core.errors import UsageError
from farm.core.quarantine import QuarantineRules
from farm.store import changes, recovery, runs, stats
from farm.store import history as history_queries
from farm.store import quarantine as quarantine_queries
from farm.store.collections import CachedCollections
from farm.store.connection import Clock, StoreConnection, connect
from farm.store.dashboard import DashboardQueries
from farm.store.deliveries import Deliveries
from farm.store.last_failed import RerunRecords
from farm.store.order import OrderRecords
from farm.store.quarantine import QuarantineBook
from farm.store.records import (
    ChangeRuns,
    QuarantineEvent,
    RunRecord,
    ShardRecord,
    ShardState,
    ShardView,
    TestStats,
)
from farm.store.rows import clip_text, findings_json
from farm.store.urls import mask_url

__all__ = ["Clock", "ResultStore"]


class ResultStore:
    """Runs, their changes, shards and test attempts, each project's history and
    quarantine, the collection cache and what a resumed run needs.

    ``ewma_alpha`` is the weight of a new sample in the duration estimates (see
    :mod:`farm.store.history`); ``clock`` gives the unix time of every timestamp
    the store writes or compares. Times that workers report (a shard's start and
    end, an attempt's) are stored as given.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        display_url: str,
        ewma_alpha: float = defaults.EWMA_ALPHA,
        clock: Clock = time.time,
    ) -> None:
        _check_alpha(ewma_alpha)
        self._db = StoreConnection(engine, display_url=display_url)
        self._alpha = ewma_alpha
        self._clock = clock
        self.quarantine = QuarantineBook(self._db, clock)
        """Quarantine by hand, and who is in it now (see :class:`QuarantineBook`)."""
        self.order = OrderRecords(self._db)
        """The modules that ran before a test's attempts (see :class:`OrderRecords`)."""
        self.reruns = RerunRecords(self._db)
        """What --lf, --ff and --sw read of earlier runs (see :class:`RerunRecords`)."""
        self.collection_cache = CachedCollections(self._db, clock)
        """What pytest collected last time for a request (see :class:`CachedCollections`)."""
        self.deliveries = Deliveries(self._db, clock)
        """Webhook deliveries and triggered commits seen once (see :class:`Deliveries`)."""
        self.dashboard = DashboardQueries(self._db, clock)
        """Paginated reads for the dashboard's pages (see :class:`DashboardQueries`)."""

    @classmethod
    def open(
        cls,
        url: str,
        *,
        ewma_alpha: float = defaults.EWMA_ALPHA,
        clock: Clock = time.time,
    ) -> ResultStore:
        """Connect to ``url`` and upgrade its schema to the newest migration."""
        _check_alpha(ewma_alpha)
        engine = connect(url)
        return cls(engine, display_url=mask_url(url), ewma_alpha=ewma_alpha, clock=clock)

    @property
    def url(self) -> str:
        """The store's URL with its password masked, for messages."""
        return self._db.url

    def close(self) -> None:
        """Close every pooled connection; the store is not usable afterwards."""
        self._db.close()

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
        change: ChangeRef | None = None,
        snapshot_digest: str | None = None,
    ) -> str:
        """Record a new pending run and return its id (32 hex digits).

        ``settings`` is stored as JSON; values JSON cannot hold are stored as text.
        Runs of one repository and commit share one change, whose branch, pull
        request and author the latest run naming them sets.
        """
        run_id = uuid.uuid4().hex
        now = self._clock()
        settings_json = json.dumps(dict(settings), sort_keys=True, default=str)
        with self._db.transaction("create a run") as connection:
            runs.insert_run(
                connection,
                run_id,
                project=project,
                trigger=trigger,
                settings_json=settings_json,
                change=change,
                snapshot_digest=snapshot_digest,
                now=now,
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
        with self._db.transaction("start a run") as connection:
            runs.update_run(
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
            runs.insert_shards(connection, run_id, shards)

    def add_shards(self, run_id: str, shards: Sequence[ShardRecord], *, total_tests: int) -> None:
        """Add shards to a running run (tests found after a speculative start)."""
        with self._db.transaction("add shards") as connection:
            runs.update_run(connection, run_id, {"total_tests": total_tests})
            runs.insert_shards(connection, run_id, shards)

    def heartbeat(self, run_id: str) -> None:
        """Say the run's scheduler is alive now."""
        now = self._clock()
        with self._db.transaction("record a heartbeat") as connection:
            runs.update_run(connection, run_id, {"heartbeat_at": now})

    def shard_started(
        self,
        run_id: str,
        shard_id: int,
        *,
        worker: str,
        started_at: float,
        machine: str | None = None,
    ) -> None:
        """Record that ``worker`` (on ``machine``) began running the shard at ``started_at``
        (the worker's time)."""
        values = {
            "worker": worker,
            "machine": machine,
            "state": ShardState.RUNNING,
            "started_at": started_at,
        }
        with self._db.transaction("record a shard start") as connection:
            runs.update_shard(connection, run_id, shard_id, values)

    def shard_finished(self, run_id: str, shard_id: int, *, finished_at: float) -> None:
        """Record that the shard's worker reported its last test at ``finished_at``."""
        values = {"state": ShardState.FINISHED, "finished_at": finished_at}
        with self._db.transaction("record a shard end") as connection:
            runs.update_shard(connection, run_id, shard_id, values)

    def shard_reissued(self, run_id: str, shard_id: int, *, lease: int) -> None:
        """Record that the shard's lease lapsed and its owed tests went out under ``lease``."""
        values = {"state": ShardState.LOST, "lease": lease, "worker": None, "machine": None}
        with self._db.transaction("record a reissued shard") as connection:
            runs.update_shard(connection, run_id, shard_id, values)

    def finish_run(
        self,
        run_id: str,
        *,
        verdict: Verdict,
        message: str = "",
        state: RunState = RunState.FINISHED,
        findings: RunFindings | None = None,
    ) -> None:
        """Record the run's verdict, what it found by test, and its end (``state``
        ABANDONED for a run given up on)."""
        values = {
            "state": state,
            "verdict": verdict,
            "message": clip_text(message),
            "finished_at": self._clock(),
            "findings": None if findings is None else findings_json(findings),
        }
        with self._db.transaction("finish a run") as connection:
            runs.update_run(connection, run_id, values)

    def get_run(self, run_id: str) -> RunRecord:
        """The run as it is now. Raises UsageError for an unknown id."""
        with self._db.transaction("read a run") as connection:
            return runs.read_run(connection, run_id)

    def get_shards(self, run_id: str) -> tuple[ShardView, ...]:
        """The run's shards by shard id; empty before the run started."""
        with self._db.transaction("read shards") as connection:
            return runs.read_shards(connection, run_id)

    def has_runs(self, project: str) -> bool:
        """Whether any run of ``project`` was ever recorded."""
        with self._db.transaction("look for runs") as connection:
            return runs.has_runs(connection, project)

    def last_seed(self, project: str) -> int | None:
        """The seed pytest-randomly used in the project's latest run that had it."""
        with self._db.transaction("read the last seed") as connection:
            lookback = defaults.SEED_LOOKBACK_RUNS
            return runs.last_randomly_seed(connection, project, lookback=lookback)

    # -- attempts --------------------------------------------------------------------

    def record_results(self, results: Sequence[TestResult]) -> None:
        """Store attempts, in one transaction; they may belong to several runs."""
        if not results:
            return
        with self._db.transaction(f"record {len(results)} results") as connection:
            runs.insert_attempts(connection, results)

    def final_results(self, run_id: str) -> dict[str, TestResult]:
        """Node id to its final result: the attempt with the highest number (ties:
        the one recorded last). Raises UsageError for an unknown run."""
        with self._db.transaction("read results") as connection:
            return runs.final_results(connection, run_id)

    def all_attempts(self, run_id: str) -> tuple[TestResult, ...]:
        """Every attempt of the run, retries included, by the time it finished, then
        attempt number. Raises UsageError for an unknown run."""
        with self._db.transaction("read attempts") as connection:
            return runs.all_attempts(connection, run_id)

    # -- changes (see farm.store.changes) --------------------------------------------

    def change_runs(self, commit: str, *, repository: str | None = None) -> ChangeRuns | None:
        """The change whose sha starts with ``commit`` (4 hex digits or more) and its
        runs, oldest first; None if none. UsageError if several changes match."""
        with self._db.transaction("read a change") as connection:
            return changes.change_runs(connection, commit, repository=repository)

    def latest_change(self, project: str | None = None) -> ChangeRef | None:
        """The change of the most recently created run that has one (of ``project``)."""
        with self._db.transaction("read the latest change") as connection:
            return changes.latest_change(connection, project)

    def previous_failures(self, project: str, branch: str, *, before_run: str) -> tuple[str, ...]:
        """The tests that failed in the latest finished run of ``project`` on ``branch``
        other than ``before_run``, for running them first."""
        with self._db.transaction("read the previous failures") as connection:
            return changes.previous_failures(connection, project, branch, before_run=before_run)

    # -- resuming a run whose scheduler died (see farm.store.recovery) --------------

    def save_shard_tests(self, run_id: str, shard_tests: Mapping[int, Sequence[str]]) -> None:
        """Keep each dispatched shard's node ids, by shard id, for a resume."""
        if not shard_tests:
            return
        with self._db.transaction(f"save the tests of run {run_id}'s shards") as connection:
            recovery.insert_shard_tests(connection, run_id, shard_tests)

    def load_run_tests(self, run_id: str) -> dict[int, tuple[str, ...]]:
        """Every saved shard's node ids, by shard id."""
        with self._db.transaction(f"read run {run_id}'s shards") as connection:
            return recovery.read_run_tests(connection, run_id)

    def mark_abandoned(self, *, deadline_s: float) -> int:
        """Mark running runs whose scheduler is silent for over ``deadline_s`` (by the
        store's clock) abandoned; returns how many."""
        now = self._clock()
        with self._db.transaction("mark abandoned runs") as connection:
            return recovery.abandon_silent_runs(connection, deadline_s=deadline_s, now=now)

    def reopen_run(self, run_id: str) -> None:
        """Make an abandoned run running again, under a new scheduler alive now."""
        now = self._clock()
        with self._db.transaction(f"reopen run {run_id}") as connection:
            recovery.reopen(connection, run_id, now=now)

    # -- history ---------------------------------------------------------------------

    def update_history(
        self,
        project: str,
        results: Sequence[TestResult],
        *,
        rules: QuarantineRules | None = None,
    ) -> tuple[QuarantineEvent, ...]:
        """Fold a run's attempts (retries included) into the project's history (see
        the history module); with ``rules``, quarantine its tests that became flaky
        and release those clean long enough. Returns the quarantine events recorded."""
        now = self._clock()
        window = defaults.QUARANTINE_WINDOW_RUNS if rules is None else rules.window_runs
        with self._db.transaction("update history") as connection:
            recent = history_queries.update_history(
                connection, project, results, alpha=self._alpha, window_runs=window, now=now
            )
            if rules is None or not recent:
                return ()
            return quarantine_queries.apply_rules(connection, project, recent, rules, now=now)

    def history(self, project: str) -> History:
        """Every estimate the project has, for planning."""
        with self._db.transaction("read history") as connection:
            return history_queries.read_history(connection, project)

    def import_durations(self, project: str, durations: Mapping[str, float]) -> int:
        """Set estimates from a durations file; returns how many were set."""
        now = self._clock()
        with self._db.transaction("import durations") as connection:
            return history_queries.import_durations(connection, project, durations, now=now)

    def export_durations(self, project: str) -> dict[str, float]:
        """Node id to estimated seconds, ready for a pytest-split durations file."""
        with self._db.transaction("export durations") as connection:
            return history_queries.export_durations(connection, project)

    def test_stats(self, project: str, node_ids: Sequence[str]) -> dict[str, TestStats]:
        """What history says of each of ``node_ids``; tests it does not know are left out."""
        now = self._clock()
        with self._db.transaction("read test statistics") as connection:
            return stats.read_stats(connection, project, node_ids, now=now)

    def suspect_machines(
        self, project: str, *, window_runs: int, node_ids: Sequence[str] | None = None
    ) -> tuple[MachineSuspect, ...]:
        """Tests (of ``node_ids`` if given) whose failing attempts in the project's last
        ``window_runs`` runs all came from one machine while they passed on another."""
        with self._db.transaction("look for suspect machines") as connection:
            return stats.suspect_machines(
                connection, project, window_runs=window_runs, node_ids=node_ids
            )


def _check_alpha(ewma_alpha: float) -> None:
    if not 0 < ewma_alpha <= 1:
        raise UsageError(f"EWMA alpha must be in (0, 1], not {ewma_alpha!r}")
