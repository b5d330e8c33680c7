"""Queries on runs, their shards and test attempts.

Every function takes an open connection inside the caller's transaction, and the
time ``now`` where it stamps one: :class:`farm.store.ResultStore` opens the
transactions and reads its clock. A run or shard id the database does not have
raises :class:`farm.store.connection.UnknownRun` or ``UnknownShard``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Row, Select, insert, select, update

from farm.core.domain import ChangeRef, Outcome, RunState, TestResult
from farm.core.pytest_options import PytestOptions
from farm.core.seeds import randomly_seed
from farm.store.connection import UnknownRun, UnknownShard
from farm.store.records import RunRecord, ShardRecord, ShardState, ShardView
from farm.store.rows import (
    ATTEMPTS,
    CHANGE_FIELDS,
    CHANGES,
    RUNS,
    SHARDS,
    attempt_row,
    change_id,
    run_record,
    shard_view,
    test_result,
)


def insert_run(
    connection: Connection,
    run_id: str,
    *,
    project: str,
    trigger: str,
    settings_json: str,
    change: ChangeRef | None,
    snapshot_digest: str | None,
    now: float,
) -> None:
    """A new pending run, created at ``now``, with its change made if new (a change
    without a commit is no change: every run outside git would share it)."""
    known_change = None
    if change is not None and change.commit_sha:
        known_change = change_id(connection, change, now)
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


def update_run(connection: Connection, run_id: str, values: Mapping[str, object]) -> None:
    result = connection.execute(update(RUNS).where(RUNS.c.id == run_id).values(values))
    if result.rowcount == 0:
        raise UnknownRun(run_id)


def insert_shards(connection: Connection, run_id: str, shards: Sequence[ShardRecord]) -> None:
    """The run's new shards, pending under their first lease."""
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


def update_shard(
    connection: Connection, run_id: str, shard_id: int, values: Mapping[str, object]
) -> None:
    where = (SHARDS.c.run_id == run_id) & (SHARDS.c.shard_id == shard_id)
    result = connection.execute(update(SHARDS).where(where).values(values))
    if result.rowcount == 0:
        if not run_exists(connection, run_id):
            raise UnknownRun(run_id)
        raise UnknownShard(run_id, shard_id)


def run_exists(connection: Connection, run_id: str) -> bool:
    found = connection.execute(select(RUNS.c.id).where(RUNS.c.id == run_id)).first()
    return found is not None


def select_runs() -> Select[Any]:
    """Runs with their change's columns (``change_<field>``), as :func:`run_record` reads them."""
    return select(
        RUNS, *(CHANGES.c[name].label(f"change_{name}") for name in CHANGE_FIELDS)
    ).outerjoin(CHANGES, RUNS.c.change_id == CHANGES.c.id)


def read_run(connection: Connection, run_id: str) -> RunRecord:
    row = connection.execute(select_runs().where(RUNS.c.id == run_id)).first()
    if row is None:
        raise UnknownRun(run_id)
    return run_record(row)


def read_shards(connection: Connection, run_id: str) -> tuple[ShardView, ...]:
    query = select(SHARDS).where(SHARDS.c.run_id == run_id).order_by(SHARDS.c.shard_id)
    return tuple(shard_view(row) for row in connection.execute(query))


def has_runs(connection: Connection, project: str) -> bool:
    query = select(RUNS.c.id).where(RUNS.c.project == project).limit(1)
    return connection.execute(query).first() is not None


def last_randomly_seed(connection: Connection, project: str, *, lookback: int) -> int | None:
    """The seed pytest-randomly used in the latest of the project's last ``lookback``
    runs that had it active (what its ``last`` means); None if none did."""
    query = (
        select(RUNS.c.settings_json)
        .where(RUNS.c.project == project)
        .order_by(RUNS.c.created_at.desc())
        .limit(lookback)
    )
    for (settings_json,) in connection.execute(query):
        try:
            facts = json.loads(settings_json or "{}").get("pytest_options")
            seed = randomly_seed(PytestOptions.from_facts(facts or {}))
        except (AttributeError, TypeError, ValueError):
            continue  # settings of another shape: a run from before seeds were kept
        if seed is not None:
            return seed
    return None


def insert_attempts(connection: Connection, results: Sequence[TestResult]) -> None:
    if results:
        connection.execute(insert(ATTEMPTS), [attempt_row(r) for r in results])


def final_results(connection: Connection, run_id: str) -> dict[str, TestResult]:
    """Node id to the attempt with the highest number (ties: the one recorded last)."""
    query = select(ATTEMPTS).where(ATTEMPTS.c.run_id == run_id).order_by(ATTEMPTS.c.id)
    final = {node_id: test_result(row) for node_id, row in _finals(connection, query).items()}
    if not final and not run_exists(connection, run_id):
        raise UnknownRun(run_id)
    return final


def final_outcomes(connection: Connection, run_id: str) -> dict[str, Outcome]:
    """Node id to the outcome of its final attempt, without reading tracebacks and output."""
    columns = (ATTEMPTS.c.node_id, ATTEMPTS.c.attempt, ATTEMPTS.c.outcome)
    query = select(*columns).where(ATTEMPTS.c.run_id == run_id).order_by(ATTEMPTS.c.id)
    return {node_id: row.outcome for node_id, row in _finals(connection, query).items()}


def _finals(connection: Connection, query: Select[Any]) -> dict[str, Row[Any]]:
    """Node id to its row with the highest attempt number; ``query`` orders rows as
    they were recorded, so that of two rows of one number the later is kept."""
    final: dict[str, Row[Any]] = {}
    for row in connection.execute(query):
        kept = final.get(row.node_id)
        if kept is None or row.attempt >= kept.attempt:
            final[row.node_id] = row
    return final


def all_attempts(connection: Connection, run_id: str) -> tuple[TestResult, ...]:
    """Every attempt of the run, by the time it finished, then attempt number."""
    query = (
        select(ATTEMPTS)
        .where(ATTEMPTS.c.run_id == run_id)
        .order_by(ATTEMPTS.c.finished_at, ATTEMPTS.c.attempt, ATTEMPTS.c.id)
    )
    attempts = tuple(test_result(row) for row in connection.execute(query))
    if not attempts and not run_exists(connection, run_id):
        raise UnknownRun(run_id)
    return attempts
