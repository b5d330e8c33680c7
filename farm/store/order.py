"""What the store knows of the order tests ran in: the modules before each attempt.

An attempt's modules before and after it (the ``module_order`` column) are
recorded by its test process when they can matter (a failure, a retry: see
:mod:`farm.core.order`). A passing first attempt has none, so where one is asked
for they are read from its shard's planned order (``shard_tests``) and marked
``planned``. :class:`OrderRecords` is the part of
:class:`farm.store.ResultStore` held as ``store.order``; the queries take an open
connection inside the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any

from sqlalchemy import Connection, Row, Select, and_, select

from farm.core.domain import AttemptOrder, ChangeRef
from farm.core.order import planned_order
from farm.store.bulk import among_chunks
from farm.store.changes import latest_finished_run
from farm.store.connection import StoreConnection
from farm.store.recovery import SHARD_TESTS
from farm.store.rows import ATTEMPTS, CHANGES, RUNS, read_module_order, unpack_node_ids

RECENT_RUNS = 50  # runs of a project searched for a test's recent attempts
_COLUMNS = (
    ATTEMPTS.c.run_id,
    ATTEMPTS.c.shard_id,
    ATTEMPTS.c.node_id,
    ATTEMPTS.c.attempt,
    ATTEMPTS.c.outcome,
    ATTEMPTS.c.worker,
    ATTEMPTS.c.machine,
    ATTEMPTS.c.module_order,
)


class OrderRecords:
    """The recorded (or planned) modules before a test's attempts."""

    def __init__(self, db: StoreConnection) -> None:
        self._db = db

    def previous_run(
        self, project: str, change: ChangeRef, *, before_run: str, node_ids: Sequence[str]
    ) -> dict[str, AttemptOrder]:
        """The final attempts of ``node_ids`` in the latest finished run of ``project``
        testing ``change`` (its repository and commit), ``before_run`` aside; {} if none."""
        if not node_ids or not change.commit_sha:
            return {}
        with self._db.transaction("read the change's previous run") as connection:
            run_id = previous_run_id(connection, project, change, before_run=before_run)
            if run_id is None:
                return {}
            rows: list[Row[Any]] = []
            for among in among_chunks(connection, ATTEMPTS.c.node_id, list(node_ids)):
                query = select(*_COLUMNS).where(ATTEMPTS.c.run_id == run_id, among)
                rows.extend(connection.execute(query.order_by(ATTEMPTS.c.id)))
            finals: dict[str, Row[Any]] = {}
            for row in rows:
                kept = finals.get(row.node_id)
                if kept is None or row.attempt >= kept.attempt:
                    finals[row.node_id] = row
            attempts = _with_planned(connection, finals.values())
            return {row.node_id: attempt for row, attempt in attempts}

    def recent(self, project: str, node_id: str) -> tuple[AttemptOrder, ...]:
        """The attempts of ``node_id`` in the project's last :data:`RECENT_RUNS` runs,
        newest first."""
        with self._db.transaction(f"read the recent attempts of {node_id}") as connection:
            runs = (
                select(RUNS.c.id)
                .where(RUNS.c.project == project)
                .order_by(RUNS.c.created_at.desc(), RUNS.c.id.desc())
                .limit(RECENT_RUNS)
            )
            run_ids = list(connection.scalars(runs))
            if not run_ids:
                return ()
            query: Select[Any] = (
                select(*_COLUMNS)
                .where(ATTEMPTS.c.run_id.in_(run_ids), ATTEMPTS.c.node_id == node_id)
                .order_by(ATTEMPTS.c.finished_at.desc(), ATTEMPTS.c.id.desc())
            )
            rows = list(connection.execute(query))
            return tuple(attempt for _, attempt in _with_planned(connection, rows))


def previous_run_id(
    connection: Connection, project: str, change: ChangeRef, *, before_run: str
) -> str | None:
    """The latest finished run of ``project`` testing ``change``, ``before_run`` aside."""
    same_commit = and_(
        CHANGES.c.repository == change.repository, CHANGES.c.commit_sha == change.commit_sha
    )
    return latest_finished_run(connection, project, same_commit, before_run)


def _with_planned(
    connection: Connection, rows: Iterable[Row[Any]]
) -> list[tuple[Row[Any], AttemptOrder]]:
    """Each row with its attempt; one not recorded takes its shard's planned order."""
    pairs = [(row, _attempt(row)) for row in rows]
    wanted = {(row.run_id, row.shard_id) for row, a in pairs if a.modules_before is None}
    shards: dict[tuple[str, int], tuple[str, ...]] = {}
    for run_id in {run_id for run_id, _ in wanted}:
        ids = [shard_id for run, shard_id in wanted if run == run_id]
        query = select(SHARD_TESTS.c.shard_id, SHARD_TESTS.c.node_ids).where(
            SHARD_TESTS.c.run_id == run_id, SHARD_TESTS.c.shard_id.in_(ids)
        )
        for found in connection.execute(query):
            shards[(run_id, found.shard_id)] = unpack_node_ids(found.node_ids)
    filled = []
    for row, attempt in pairs:
        shard = shards.get((row.run_id, row.shard_id))
        if attempt.modules_before is None and shard is not None:
            planned = planned_order(shard, row.node_id)
            if planned is not None:
                before, after = planned
                attempt = replace(attempt, modules_before=before, modules_after=after, planned=True)
        filled.append((row, attempt))
    return filled


def _attempt(row: Row[Any]) -> AttemptOrder:
    before, after = read_module_order(row.module_order)
    return AttemptOrder(
        run_id=row.run_id,
        attempt=row.attempt,
        outcome=row.outcome,
        worker=row.worker,
        machine=row.machine,
        modules_before=before,
        modules_after=after,
    )
