"""What the store says of a project's earlier runs for ``--lf``, ``--ff`` and ``--sw``.

pytest's cache keeps ``lastfailed``: each test whose latest report failed, kept
until it passes or skips, whatever runs came between. The store answers the same
question from results: a test is a *known failure* when its final result in the
latest run that ran it failed (failed, error, timeout, crashed). Only tests whose
history's latest run had a failing attempt can be one, so those are the only
tests whose attempts are read: the later runs that ran them again (skips, which
history does not fold in, and runs whose history was never folded) decide.
Running runs are left out: their results are not final.

A ``--sw`` run keeps its mark in its findings (:class:`farm.core.domain.StepwiseMark`);
the latest run that has one gives it.

:class:`RerunRecords` is the part of :class:`farm.store.ResultStore` held as
``store.reruns``; the queries take an open connection inside the caller's
transaction.
"""

from __future__ import annotations

from collections.abc import Container, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Table, func, or_, select

from farm.core.domain import RunState, StepwiseMark
from farm.core.quarantine import FAILED, FLAKY
from farm.store.bulk import among_chunks
from farm.store.connection import StoreConnection
from farm.store.models import TestHistory
from farm.store.rows import ATTEMPTS, RUNS, read_findings

TEST_HISTORY: Table = TestHistory.__table__  # type: ignore[assignment]
_OVER = (RunState.FINISHED, RunState.ABANDONED)  # runs whose results are final
_STEPWISE_RUNS = 20  # runs with a mark read at most (a damaged one is passed over)


@dataclass(frozen=True)
class KnownFailures:
    """Each known failure with the run of its latest, failing, result; ``latest_run``
    is the newest of those runs ("" when there is none)."""

    tests: dict[str, str]
    latest_run: str = ""


@dataclass(frozen=True)
class StepwiseRecord:
    """The mark of the project's latest ``--sw`` run, that run, and when it finished."""

    mark: StepwiseMark
    run_id: str
    finished_at: float


class RerunRecords:
    """Known failures and the last ``--sw`` mark of each project."""

    def __init__(self, db: StoreConnection) -> None:
        self._db = db

    def failures(self, project: str, *, besides: Container[str] = frozenset()) -> KnownFailures:
        """The project's known failures (see the module's docstring), ``besides`` aside."""
        with self._db.transaction("read the known failures") as connection:
            return known_failures(connection, project, besides=besides)

    def stepwise(self, project: str) -> StepwiseRecord | None:
        """The mark the project's latest ``--sw`` run left; None if there is none."""
        with self._db.transaction("read the last stepwise mark") as connection:
            return latest_stepwise(connection, project)


def known_failures(
    connection: Connection, project: str, *, besides: Container[str] = frozenset()
) -> KnownFailures:
    """The tests of ``project`` (``besides`` aside) whose final result in the latest
    run that ran them failed."""
    outcomes = TEST_HISTORY.c.recent_outcomes
    failed_last = or_(*(outcomes.like(f"%{letter}") for letter in (FAILED, FLAKY)))
    query = select(TEST_HISTORY.c.node_id, TEST_HISTORY.c.last_failure_run).where(
        TEST_HISTORY.c.project == project,
        TEST_HISTORY.c.last_failure_run.is_not(None),
        failed_last,
    )
    candidates = {
        node_id: run_id for node_id, run_id in connection.execute(query) if node_id not in besides
    }
    if not candidates:
        return KnownFailures({})
    firsts = [
        connection.scalar(select(func.min(RUNS.c.created_at)).where(among))
        for among in among_chunks(connection, RUNS.c.id, sorted(set(candidates.values())))
    ]
    since = min((first for first in firsts if first is not None), default=None)
    if since is None:
        return KnownFailures({})
    latest: dict[str, tuple[tuple[Any, ...], bool]] = {}
    for row in _attempts_since(connection, project, since, list(candidates)):
        order = (row.created_at, row.run_id, row.attempt, row.id)
        kept = latest.get(row.node_id)
        if kept is None or order > kept[0]:
            latest[row.node_id] = (order, row.outcome.is_failure)
    tests = {node_id: order[1] for node_id, (order, failed) in latest.items() if failed}
    newest = max((latest[n][0] for n in tests), default=None)
    return KnownFailures(tests, newest[1] if newest is not None else "")


def _attempts_since(
    connection: Connection, project: str, since: float, node_ids: Sequence[str]
) -> list[Any]:
    """Every attempt of ``node_ids`` in the project's runs created since ``since`` that
    are over, with its run's creation time."""
    columns = (
        ATTEMPTS.c.id,
        ATTEMPTS.c.node_id,
        ATTEMPTS.c.attempt,
        ATTEMPTS.c.outcome,
        ATTEMPTS.c.run_id,
        RUNS.c.created_at,
    )
    rows: list[Any] = []
    for among in among_chunks(connection, ATTEMPTS.c.node_id, node_ids):
        query = (
            select(*columns)
            .join(RUNS, RUNS.c.id == ATTEMPTS.c.run_id)
            .where(
                RUNS.c.project == project,
                RUNS.c.created_at >= since,
                RUNS.c.state.in_(_OVER),
                among,
            )
        )
        rows.extend(connection.execute(query))
    return rows


def latest_stepwise(connection: Connection, project: str) -> StepwiseRecord | None:
    """The mark of the newest run of ``project`` whose findings hold one."""
    query = (
        select(RUNS.c.id, RUNS.c.findings, RUNS.c.finished_at, RUNS.c.created_at)
        .where(RUNS.c.project == project, RUNS.c.findings.like('%"stepwise": {%'))
        .order_by(RUNS.c.created_at.desc(), RUNS.c.id.desc())
        .limit(_STEPWISE_RUNS)
    )
    for row in connection.execute(query):
        findings = read_findings(row.findings)
        if findings is not None and findings.stepwise is not None:
            at = row.finished_at if row.finished_at is not None else row.created_at
            return StepwiseRecord(findings.stepwise, row.id, at)
    return None
