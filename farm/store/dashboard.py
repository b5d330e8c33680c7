"""The dashboard's reads of the results store: what each page of ``farm serve`` shows.

:class:`DashboardQueries` is the part of :class:`farm.store.ResultStore` held as
``store.dashboard``; each call is one transaction. Every list takes a ``limit``
and a ``cursor`` and gives a :class:`~farm.store.dashboard_records.Page`: keyset
pagination, so the thousandth page costs what the first does. Windows ("the last
7 days") are measured back from the store's clock. The statements live in
:mod:`~farm.store.dashboard_changes`, :mod:`~farm.store.dashboard_runs` and
:mod:`~farm.store.dashboard_tests`, which say what each figure means; every one
reads through an index (migration 0008), never a whole table.
"""

from __future__ import annotations

from farm.core.domain import ChangeRef, Verdict
from farm.store import dashboard_changes, dashboard_machines, dashboard_runs, dashboard_tests
from farm.store.connection import Clock, StoreConnection, UnknownRun
from farm.store.dashboard_records import (
    ChangeDetail,
    ChangeSummary,
    DurationChange,
    FailureGroupRow,
    FailureRow,
    FlakyTest,
    MachineActivity,
    Page,
    RetryLink,
    RunProgress,
    SlowAttempt,
    TestDuration,
    TestOverview,
    TestRunPoint,
)
from farm.store.records import ShardView
from farm.store.runs import read_shards, run_exists

PAGE_ROWS = 50  # a page's rows unless a caller asks for another number
FAILURE_GROUPS = 20  # groups a run page heads its failures with
WEEK_S = 7 * 24 * 3600.0


class DashboardQueries:
    """Paginated, indexed reads for the dashboard's pages."""

    def __init__(self, db: StoreConnection, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    # -- changes ----------------------------------------------------------------------

    def changes(
        self,
        *,
        limit: int = PAGE_ROWS,
        cursor: str | None = None,
        repository: str | None = None,
        branch: str | None = None,
        author: str | None = None,
        verdict: Verdict | None = None,
    ) -> Page[ChangeSummary]:
        """Changes newest first with their combined verdict, filtered. With ``verdict``
        a call reads a bounded number of changes, so a page may come back short with
        a cursor: follow it for more."""
        with self._db.transaction("list changes") as connection:
            return dashboard_changes.list_changes(
                connection,
                limit=limit,
                cursor=cursor,
                repository=repository,
                branch=branch,
                author=author,
                verdict=verdict,
            )

    def change(self, repository: str, commit_sha: str) -> ChangeDetail | None:
        """One change (exact repository and sha), its runs and verdict; None if unknown."""
        with self._db.transaction("read a change") as connection:
            return dashboard_changes.change_detail(connection, repository, commit_sha)

    def changes_matching(
        self, commit: str, *, repository: str | None = None, limit: int = PAGE_ROWS
    ) -> tuple[ChangeRef, ...]:
        """The changes whose sha starts with ``commit`` (4+ hex digits; of ``repository``
        if given), at most ``limit``, by repository and sha. UsageError for a bad prefix."""
        with self._db.transaction("find changes by sha") as connection:
            return dashboard_changes.changes_matching(
                connection, commit, repository=repository, limit=limit
            )

    # -- one run ----------------------------------------------------------------------

    def run_progress(self, run_id: str) -> RunProgress:
        """The run, its attempts by outcome so far and its makespan. UsageError if unknown."""
        now = self._clock()
        with self._db.transaction("read a run's progress") as connection:
            return dashboard_runs.progress(connection, run_id, now=now)

    def run_shards(self, run_id: str) -> tuple[ShardView, ...]:
        """The run's shards for its timeline: worker, machine, start, end, state, lease."""
        with self._db.transaction("read a run's shards") as connection:
            shards = read_shards(connection, run_id)
            if not shards and not run_exists(connection, run_id):
                raise UnknownRun(run_id)
            return shards

    def run_failures(
        self, run_id: str, *, limit: int = PAGE_ROWS, cursor: str | None = None
    ) -> Page[FailureRow]:
        """The run's failing attempts, with traceback and output, as recorded."""
        with self._db.transaction("read a run's failures") as connection:
            return dashboard_runs.failures(connection, run_id, limit=limit, cursor=cursor)

    def run_failure_groups(
        self, run_id: str, *, limit: int = FAILURE_GROUPS
    ) -> tuple[FailureGroupRow, ...]:
        """The tests whose final attempt failed, grouped by signature, largest first:
        exact over the whole run. UsageError if the run is unknown."""
        with self._db.transaction("group a run's failures") as connection:
            return dashboard_runs.failure_groups(connection, run_id, limit=limit)

    def run_group_failures(
        self, run_id: str, signature: str, *, limit: int = PAGE_ROWS, cursor: str | None = None
    ) -> tuple[int, Page[FailureRow]]:
        """One failure group: its tests' count and a page of their final failing
        attempts, as recorded. UsageError if the run is unknown or the cursor bad."""
        with self._db.transaction("read a run's failure group") as connection:
            return dashboard_runs.group_failures(
                connection, run_id, signature, limit=limit, cursor=cursor
            )

    def run_failing_shards(self, run_id: str) -> tuple[int, ...]:
        """The ids of the run's shards with a failing attempt."""
        with self._db.transaction("read a run's failing shards") as connection:
            return dashboard_runs.failing_shards(connection, run_id)

    def run_retry_links(self, run_id: str) -> tuple[RetryLink, ...]:
        """Each retry shard with the shard of its tests' first attempts."""
        with self._db.transaction("read a run's retry links") as connection:
            return dashboard_runs.retry_links(connection, run_id)

    def run_slowest(
        self, run_id: str, *, limit: int = PAGE_ROWS, cursor: str | None = None
    ) -> Page[SlowAttempt]:
        """The run's attempts, slowest first."""
        with self._db.transaction("read a run's slowest tests") as connection:
            return dashboard_runs.slowest(connection, run_id, limit=limit, cursor=cursor)

    # -- one test ---------------------------------------------------------------------

    def test_runs(
        self,
        project: str,
        node_id: str,
        *,
        limit: int = PAGE_ROWS,
        cursor: str | None = None,
        branch: str | None = None,
    ) -> Page[TestRunPoint]:
        """The test's runs newest first: duration, outcome, attempts, machine, branch."""
        with self._db.transaction(f"read the runs of {node_id}") as connection:
            return dashboard_tests.test_runs(
                connection, project, node_id, limit=limit, cursor=cursor, branch=branch
            )

    def projects(self, *, limit: int = PAGE_ROWS) -> tuple[str, ...]:
        """The projects with runs, the most recently run first (a leaderboard's picker)."""
        with self._db.transaction("list projects") as connection:
            return dashboard_tests.recent_projects(connection, limit=limit)

    def test_overview(self, project: str, node_id: str) -> TestOverview:
        """Where the test failed, its outcomes by branch, its quarantine and events."""
        with self._db.transaction(f"read the overview of {node_id}") as connection:
            return dashboard_tests.test_overview(connection, project, node_id)

    # -- leaderboards over a window ending now ----------------------------------------

    def flaky_tests(
        self,
        project: str,
        *,
        window_s: float = WEEK_S,
        limit: int = PAGE_ROWS,
        cursor: str | None = None,
        quarantined: bool | None = None,
    ) -> Page[FlakyTest]:
        """Tests flaky in the window's runs, by what their retries cost."""
        since = self._clock() - window_s
        with self._db.transaction("read the flaky tests") as connection:
            return dashboard_tests.flaky_tests(
                connection,
                project,
                since=since,
                limit=limit,
                cursor=cursor,
                quarantined=quarantined,
            )

    def slowest_tests(
        self,
        project: str,
        *,
        window_s: float = WEEK_S,
        limit: int = PAGE_ROWS,
        cursor: str | None = None,
        sample_runs: int = dashboard_tests.SAMPLE_RUNS,
    ) -> Page[TestDuration]:
        """Tests by mean passing duration over the window's newest ``sample_runs`` runs."""
        now = self._clock()
        with self._db.transaction("read the slowest tests") as connection:
            return dashboard_tests.slowest_tests(
                connection,
                project,
                since=now - window_s,
                now=now,
                limit=limit,
                cursor=cursor,
                sample_runs=sample_runs,
            )

    def duration_changes(
        self,
        project: str,
        *,
        window_s: float = WEEK_S,
        limit: int = PAGE_ROWS,
        cursor: str | None = None,
        relative: bool = False,
        sample_runs: int = dashboard_tests.SAMPLE_RUNS,
    ) -> Page[DurationChange]:
        """Tests whose mean duration moved most from the window before to the last one."""
        now = self._clock()
        with self._db.transaction("read duration changes") as connection:
            return dashboard_tests.duration_changes(
                connection,
                project,
                window_s=window_s,
                now=now,
                limit=limit,
                cursor=cursor,
                relative=relative,
                sample_runs=sample_runs,
            )

    # -- machines over a window ---------------------------------------------------------

    def machines(
        self, *, since: float, examples: int = dashboard_machines.PASSED_ELSEWHERE_SHOWN
    ) -> tuple[MachineActivity, ...]:
        """Each machine the store saw since ``since`` (or busy now), by name: its busy
        slots, shards done, and the shards lost, crashes, timeouts and tests that passed
        elsewhere that point at it (see :mod:`farm.store.dashboard_machines`)."""
        with self._db.transaction("read the machines' activity") as connection:
            return dashboard_machines.machine_activity(connection, since=since, examples=examples)
