"""The dashboard's queries on one run: progress, failures a page at a time, slowest.

Each reads through an index led by the run id (``attempts (run_id, outcome,
attempt)``, ``attempts (run_id, duration_s)``, ``attempts (run_id, node_id)``), so
a run of 100,000 tests costs an index range scan, never a table scan, and only the
failures of the page asked for bring their traceback and output (a page of failures
reads the ids of the run's failing attempts, then the page's rows). Every function
takes an open connection inside the caller's transaction.
"""

from __future__ import annotations

import heapq
from typing import Any

from sqlalchemy import Connection, and_, case, distinct, func, or_, select

from farm.store.connection import UnknownRun
from farm.store.dashboard_changes import FAILURES, check_limit, decode_cursor, encode_cursor
from farm.store.dashboard_records import FailureRow, Page, RunProgress, SlowAttempt
from farm.store.rows import ATTEMPTS, RUNS
from farm.store.runs import read_run


def progress(connection: Connection, run_id: str, *, now: float) -> RunProgress:
    """Attempts by outcome so far, the tests with a result and the makespan."""
    run = read_run(connection, run_id)
    retried = func.sum(case((ATTEMPTS.c.attempt > 1, 1), else_=0))
    query = (
        select(ATTEMPTS.c.outcome, func.count(), retried)
        .where(ATTEMPTS.c.run_id == run_id)
        .group_by(ATTEMPTS.c.outcome)
    )
    rows = connection.execute(query).all()
    by_outcome = tuple(sorted(((row[0], int(row[1])) for row in rows), key=lambda p: p[0].value))
    reported = connection.scalar(
        select(func.count(distinct(ATTEMPTS.c.node_id))).where(ATTEMPTS.c.run_id == run_id)
    )
    makespan = None
    if run.started_at is not None:
        makespan = (run.finished_at if run.finished_at is not None else now) - run.started_at
    return RunProgress(
        run=run,
        by_outcome=by_outcome,
        tests_reported=int(reported or 0),
        retries=sum(int(row[2] or 0) for row in rows),
        makespan_s=makespan,
    )


def failures(
    connection: Connection, run_id: str, *, limit: int, cursor: str | None
) -> Page[FailureRow]:
    """The run's failing attempts (retries' failures included) in the order they
    were recorded, with traceback and output."""
    check_limit(limit)
    after = decode_cursor(cursor, (int,))
    failing = (ATTEMPTS.c.run_id == run_id) & ATTEMPTS.c.outcome.in_(FAILURES)
    if after is not None:
        failing = failing & (ATTEMPTS.c.id > after[0])
    # The page's ids first, without ORDER BY ... LIMIT: given those, PostgreSQL walks
    # the primary key in order and filters every attempt recorded before the run's.
    ids = heapq.nsmallest(limit + 1, connection.scalars(select(ATTEMPTS.c.id).where(failing)))
    query = select(
        ATTEMPTS.c.id,
        ATTEMPTS.c.node_id,
        ATTEMPTS.c.outcome,
        ATTEMPTS.c.attempt,
        ATTEMPTS.c.shard_id,
        ATTEMPTS.c.worker,
        ATTEMPTS.c.machine,
        ATTEMPTS.c.duration_s,
        ATTEMPTS.c.finished_at,
        ATTEMPTS.c.longrepr,
        ATTEMPTS.c.output,
    ).where(ATTEMPTS.c.id.in_(ids[:limit]))
    rows = connection.execute(query.order_by(ATTEMPTS.c.id)).all() if ids else []
    if not rows and after is None:
        _check_run(connection, run_id)
    items = tuple(FailureRow(*row) for row in rows[:limit])
    more = len(ids) > limit
    return Page(items, encode_cursor([items[-1].attempt_id]) if more else None)


def slowest(
    connection: Connection, run_id: str, *, limit: int, cursor: str | None
) -> Page[SlowAttempt]:
    """The run's attempts, slowest first (ties: latest recorded first)."""
    check_limit(limit)
    after = decode_cursor(cursor, (float, int))
    query = select(
        ATTEMPTS.c.id,
        ATTEMPTS.c.node_id,
        ATTEMPTS.c.duration_s,
        ATTEMPTS.c.outcome,
        ATTEMPTS.c.attempt,
        ATTEMPTS.c.worker,
        ATTEMPTS.c.machine,
    ).where(ATTEMPTS.c.run_id == run_id)
    if after is not None:
        duration, attempt_id = after
        query = query.where(
            or_(
                ATTEMPTS.c.duration_s < duration,
                and_(ATTEMPTS.c.duration_s == duration, ATTEMPTS.c.id < attempt_id),
            )
        )
    ordered = query.order_by(ATTEMPTS.c.duration_s.desc(), ATTEMPTS.c.id.desc())
    rows = connection.execute(ordered.limit(limit + 1)).all()
    if not rows and after is None:
        _check_run(connection, run_id)
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor([rows[-1].duration_s, rows[-1].id]) if more else None
    return Page(tuple(SlowAttempt(*row[1:]) for row in rows), next_cursor)


def _check_run(connection: Connection, run_id: str) -> Any:
    if connection.scalar(select(RUNS.c.id).where(RUNS.c.id == run_id)) is None:
        raise UnknownRun(run_id)
