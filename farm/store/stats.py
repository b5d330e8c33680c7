"""Queries on what history says of tests: their statistics, and machines that look
like the cause of a test's failures.

Percentiles are nearest-rank over a test's recent durations (the p-th percentile
of n sorted values is the value of rank ceil(p/100 * n)). Like the other query
modules, every function takes an open connection inside the caller's transaction.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Row, func, select

from farm.core.domain import MachineSuspect, Outcome
from farm.core.errors import UsageError
from farm.core.quarantine import FLAKY, expired
from farm.store.bulk import among_chunks
from farm.store.history import TEST_HISTORY, recent_durations
from farm.store.quarantine import read_entries
from farm.store.records import QuarantineEntry, TestStats
from farm.store.rows import ATTEMPTS, RUNS


def nearest_rank(values: Sequence[float], percent: float) -> float:
    """The ``percent``-th percentile of ``values`` by nearest rank; ValueError if empty."""
    if not values:
        raise ValueError("no values to take a percentile of")
    ordered = sorted(values)
    rank = max(1, math.ceil(percent / 100 * len(ordered)))
    return ordered[rank - 1]


def read_stats(
    connection: Connection, project: str, node_ids: Sequence[str], *, now: float
) -> dict[str, TestStats]:
    """The statistics of each of ``node_ids`` the history of ``project`` has; a
    quarantine entry whose expiry has come at ``now`` is not shown."""
    ids = list(dict.fromkeys(node_ids))
    entries = read_entries(connection, project) if ids else {}
    found: dict[str, TestStats] = {}
    for among in among_chunks(connection, TEST_HISTORY.c.node_id, ids):
        query = select(TEST_HISTORY).where(TEST_HISTORY.c.project == project, among)
        for row in connection.execute(query):
            entry = entries.get(row.node_id)
            if entry is not None and expired(entry, now):
                entry = None
            found[row.node_id] = _stats(row, entry)
    return {node_id: found[node_id] for node_id in ids if node_id in found}


def _stats(row: Row[Any], entry: QuarantineEntry | None) -> TestStats:
    durations = recent_durations(row.recent_durations) or [row.duration_s]
    outcomes: str = row.recent_outcomes
    return TestStats(
        node_id=row.node_id,
        ewma_s=row.duration_s,
        p50_s=nearest_rank(durations, 50),
        p90_s=nearest_rank(durations, 90),
        samples=row.samples,
        passes=row.passes,
        failures=row.failures,
        flaky_runs=row.flaky_count,
        first_seen_at=row.first_seen_at,
        last_seen_at=row.updated_at,
        last_failure_at=row.last_failure_at,
        last_failure_run=row.last_failure_run,
        recent_outcomes=outcomes,
        flaky_rate=outcomes.count(FLAKY) / len(outcomes) if outcomes else 0.0,
        quarantine=entry,
    )


def suspect_machines(
    connection: Connection,
    project: str,
    *,
    window_runs: int,
    node_ids: Sequence[str] | None = None,
) -> tuple[MachineSuspect, ...]:
    """Tests whose failing attempts in the last ``window_runs`` runs of ``project``
    all came from one known machine, while they passed on another; most failures
    first, then by node id. ``node_ids`` limits the search to those tests.
    """
    if window_runs < 1:
        raise UsageError(
            f"the runs to look for suspect machines in must be at least 1, not {window_runs}"
        )
    recent = (
        select(RUNS.c.id)
        .where(RUNS.c.project == project)
        .order_by(RUNS.c.created_at.desc(), RUNS.c.id.desc())
        .limit(window_runs)
        .subquery()
    )
    query = (
        select(ATTEMPTS.c.node_id, ATTEMPTS.c.machine, ATTEMPTS.c.outcome, func.count())
        .where(ATTEMPTS.c.run_id.in_(select(recent.c.id)))
        .group_by(ATTEMPTS.c.node_id, ATTEMPTS.c.machine, ATTEMPTS.c.outcome)
    )
    wheres = (
        [None]
        if node_ids is None
        else list(among_chunks(connection, ATTEMPTS.c.node_id, list(node_ids)))
    )
    failures: defaultdict[str, defaultdict[str, int]] = defaultdict(lambda: defaultdict(int))
    passes: defaultdict[str, defaultdict[str, int]] = defaultdict(lambda: defaultdict(int))
    for where in wheres:
        chunk = query if where is None else query.where(where)
        for node_id, machine, outcome, count in connection.execute(chunk):
            if outcome.is_failure:
                failures[node_id][machine] += count
            elif outcome is not Outcome.SKIPPED:
                passes[node_id][machine] += count
    suspects = []
    for node_id, by_machine in failures.items():
        if len(by_machine) != 1:
            continue
        ((machine, count),) = by_machine.items()
        elsewhere = sum(n for other, n in passes[node_id].items() if other and other != machine)
        if machine and elsewhere:
            suspects.append(MachineSuspect(node_id, machine, count, elsewhere))
    return tuple(sorted(suspects, key=lambda s: (-s.failures, s.node_id)))
