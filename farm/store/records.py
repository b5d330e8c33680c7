"""The values the results store takes and gives: plain frozen dataclasses, no ORM objects.

Every timestamp is a float of unix seconds (as in :class:`farm.core.domain.TestResult`);
``None`` means "not yet". A run's change is a :class:`farm.core.domain.ChangeRef`,
whose unknown parts are "" (stored as NULL).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

from farm.core.domain import ChangeRef, RunFindings, RunState, Verdict
from farm.core.quarantine import QuarantineAction


class ShardState(str, enum.Enum):
    """Where a shard is in its life.

    ``LOST`` is a shard whose lease expired: the tests it still owed went back to
    the queue under a new lease.
    """

    PENDING = "pending"
    RUNNING = "running"
    FINISHED = "finished"
    LOST = "lost"


@dataclass(frozen=True)
class ShardRecord:
    """One shard of a plan, as the scheduler made it: its id, size and estimated seconds."""

    shard_id: int
    test_count: int
    estimate_s: float


@dataclass(frozen=True)
class ShardView:
    """One shard of a run as the store knows it now.

    ``lease`` is the shard's fencing token: it grows by one each time the shard is
    handed out again, and a result carrying an older lease is stale.
    """

    shard_id: int
    test_count: int
    estimate_s: float
    state: ShardState
    lease: int
    worker: str | None
    machine: str | None
    started_at: float | None
    finished_at: float | None


@dataclass(frozen=True)
class RunRecord:
    """One run as the store knows it now.

    ``settings`` is the run's effective settings as given to ``create_run`` (after a
    JSON round trip, so paths and other non-JSON values come back as strings).
    ``heartbeat_at`` is the last time the run's scheduler said it was alive; a
    running run whose heartbeat is old was abandoned. ``findings`` is what the run
    found by test, as given to ``finish_run`` (None before, or if it gave none).
    """

    run_id: str
    project: str
    trigger: str
    settings: Mapping[str, object]
    change: ChangeRef | None
    snapshot_digest: str | None
    state: RunState
    verdict: Verdict | None
    message: str
    total_tests: int
    estimated_makespan_s: float
    created_at: float
    started_at: float | None
    finished_at: float | None
    heartbeat_at: float | None
    findings: RunFindings | None = None


@dataclass(frozen=True)
class ChangeRuns:
    """One change and every run of it, oldest first."""

    change: ChangeRef
    runs: tuple[RunRecord, ...]


@dataclass(frozen=True)
class QuarantineEntry:
    """One quarantined test of a project: since when, why, whose it is to fix.

    ``actor`` made the entry (a person, or ``"farm"`` for an automatic one);
    ``owner`` is who should fix the test ("" when nobody was named); ``until_at``
    is when the entry ends by itself (None: never). ``automatic`` entries were made
    by the quarantine rules and end after enough clean runs in a row.
    """

    project: str
    node_id: str
    since_at: float
    reason: str
    owner: str
    actor: str
    until_at: float | None
    automatic: bool


@dataclass(frozen=True)
class QuarantineEvent:
    """A test entering or leaving quarantine: when, by whom, and why."""

    project: str
    node_id: str
    at: float
    action: QuarantineAction
    actor: str
    reason: str


@dataclass(frozen=True)
class TestStats:
    """What a project's history says of one test.

    ``ewma_s`` is the duration estimate; ``p50_s`` and ``p90_s`` the nearest-rank
    percentiles of its last few durations (the estimate when none are kept).
    ``samples``, ``passes`` and ``failures`` count attempts, ``flaky_runs`` runs in
    which its attempts disagreed. ``recent_outcomes`` holds one letter per recent
    run, newest last (see :mod:`farm.core.quarantine`), and ``flaky_rate`` the share
    of flaky runs among them (0 when there are none). ``last_seen_at`` is when a run
    last reported it; ``quarantine`` its quarantine entry, if any.
    """

    __test__ = False  # not a pytest test class

    node_id: str
    ewma_s: float
    p50_s: float
    p90_s: float
    samples: int
    passes: int
    failures: int
    flaky_runs: int
    first_seen_at: float
    last_seen_at: float
    last_failure_at: float | None
    last_failure_run: str | None
    recent_outcomes: str
    flaky_rate: float
    quarantine: QuarantineEntry | None
