"""The values the results store takes and gives: plain frozen dataclasses, no ORM objects.

Every timestamp is a float of unix seconds (as in :class:`farm.core.domain.TestResult`);
``None`` means "not yet".
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

from farm.core.domain import RunState, Verdict


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
class ChangeInfo:
    """A change under test: one commit of one repository.

    ``repository`` is how the CI names it (``github.com/org/repo`` or a clone URL);
    runs of the same repository and commit share one change, so that a verdict per
    change can be taken over all of them. ``pull_request`` is the forge's id for it
    (``"123"``, ``"!45"``), kept as text.
    """

    repository: str
    commit_sha: str
    branch: str | None = None
    pull_request: str | None = None


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
    running run whose heartbeat is old was abandoned.
    """

    run_id: str
    project: str
    trigger: str
    settings: Mapping[str, object]
    change: ChangeInfo | None
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
