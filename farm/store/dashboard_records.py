"""What the dashboard's read queries give: frozen dataclasses, one per row or page part.

Every list comes as a :class:`Page`: its items and ``next_cursor``, an opaque
string to pass back for the following page (None on the last page). Timestamps
are float unix seconds, durations seconds, as everywhere in the store.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

from farm.core.change_verdict import ChangeVerdict
from farm.core.domain import ChangeRef, Outcome, Verdict
from farm.core.failure_signature import group_headline
from farm.store.records import QuarantineEntry, QuarantineEvent, RunRecord

T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a list; ``next_cursor`` fetches the next (None: this is the last)."""

    items: tuple[T, ...]
    next_cursor: str | None


@dataclass(frozen=True)
class ChangeSummary:
    """One change in the changes list: its combined verdict over its runs (see
    :mod:`farm.core.change_verdict`), how many runs it has and the latest one."""

    change: ChangeRef
    created_at: float
    verdict: Verdict
    runs: int
    latest_run_id: str | None


@dataclass(frozen=True)
class ChangeDetail:
    """One change, its runs oldest first, and its combined verdict (whose ``failed``,
    ``flaky`` and ``quarantined_failures`` name the tests)."""

    change: ChangeRef
    created_at: float
    runs: tuple[RunRecord, ...]
    verdict: ChangeVerdict


@dataclass(frozen=True)
class RunProgress:
    """How far a run got: attempts by outcome so far (retries included), the tests
    with a result of the ``total_tests`` planned, and its makespan against the plan.

    ``makespan_s`` is from its start to its end, or to the store's clock while it
    runs (None before it started).
    """

    run: RunRecord
    by_outcome: tuple[tuple[Outcome, int], ...]
    tests_reported: int
    retries: int
    makespan_s: float | None

    @property
    def attempts(self) -> int:
        return sum(count for _, count in self.by_outcome)


@dataclass(frozen=True)
class FailureRow:
    """One failing attempt of a run, with its traceback and output."""

    attempt_id: int
    node_id: str
    outcome: Outcome
    attempt: int
    shard_id: int
    worker: str
    machine: str
    duration_s: float
    finished_at: float
    longrepr: str
    output: str


@dataclass(frozen=True)
class SlowAttempt:
    """One of a run's slowest attempts."""

    node_id: str
    duration_s: float
    outcome: Outcome
    attempt: int
    worker: str
    machine: str


@dataclass(frozen=True)
class TestRunPoint:
    """One run of one test: its final attempt's duration and outcome, how many
    attempts it took, the machine of the final one, and the run's branch ("" if none)."""

    __test__ = False  # not a pytest test class

    run_id: str
    created_at: float
    branch: str
    duration_s: float
    outcome: Outcome
    attempts: int
    machine: str


@dataclass(frozen=True)
class TestOverview:
    """What a test page shows besides its runs: failing attempts by machine (most
    first) and by branch, and its quarantine entry and events (newest first)."""

    __test__ = False  # not a pytest test class

    node_id: str
    failures_by_machine: tuple[tuple[str, int], ...]
    outcomes_by_branch: tuple[tuple[str, Outcome, int], ...]
    quarantine: QuarantineEntry | None
    quarantine_events: tuple[QuarantineEvent, ...]


@dataclass(frozen=True)
class FlakyTest:
    """A test of the flaky leaderboard over a window.

    ``retry_cost_s`` is what its flakiness cost: the summed durations of its failing
    attempts that a passing attempt of the same test in the same run followed;
    ``flaky_runs`` the runs in which that happened, ``failed_attempts`` those attempts.
    """

    node_id: str
    retry_cost_s: float
    flaky_runs: int
    failed_attempts: int
    last_seen_at: float
    quarantined: bool


@dataclass(frozen=True)
class TestDuration:
    """A test's mean duration over the sampled runs of a window."""

    node_id: str
    mean_s: float
    max_s: float
    samples: int


@dataclass(frozen=True)
class DurationChange:
    """How a test's mean duration moved between two windows: ``change_s`` is
    after minus before, ``ratio`` after over before (None when before was 0)."""

    node_id: str
    before_s: float
    after_s: float
    change_s: float
    ratio: float | None


@dataclass(frozen=True)
class FailureGroupRow:
    """The tests of a run whose final attempt failed with one signature (see
    :mod:`farm.core.failure_signature`): how many, and the first of them recorded,
    ``example_message`` its message as written."""

    signature: str
    tests: int
    example_node_id: str
    example_attempt_id: int
    example_message: str

    def headline(self) -> str:
        return group_headline(self.tests, self.signature)


@dataclass(frozen=True)
class RetryLink:
    """A shard that ran again tests a failed attempt of which ran in ``first_shard_id``."""

    retry_shard_id: int
    first_shard_id: int


@dataclass(frozen=True)
class PassedElsewhere:
    """A test that failed on a machine and then passed on a later attempt of the same
    run on another machine: ``times`` such failures there, the last at ``last_failed_at``."""

    project: str
    node_id: str
    times: int
    last_failed_at: float


@dataclass(frozen=True)
class MachineActivity:
    """What the results store says of one machine over a window (see
    :mod:`farm.store.dashboard_machines` for each figure).

    ``busy_slots`` counts its shards running now; ``shards_done`` the shards it
    finished in the window and ``busy_s`` their seconds from start to end. What points
    at the machine: ``shards_lost``, leases of shards it held that were handed out
    again; ``crashed`` and ``timed_out``, attempts on it; ``passed_elsewhere``, its
    failing attempts whose test then passed on another machine, the most frequent of
    those tests in ``passed_elsewhere_tests``. ``last_seen_at`` is the latest time the
    store holds of it: a shard's start or end, or one of those attempts' end.
    """

    machine: str
    busy_slots: int
    shards_done: int
    busy_s: float
    shards_lost: int
    crashed: int
    timed_out: int
    passed_elsewhere: int
    passed_elsewhere_tests: tuple[PassedElsewhere, ...]
    last_seen_at: float
