"""The dashboard's queries on one run: progress, failures a page at a time, slowest.

Each reads through an index led by the run id (``attempts (run_id, outcome,
attempt)``, ``attempts (run_id, duration_s)``, ``attempts (run_id, node_id)``), so
a run of 100,000 tests costs an index range scan, never a table scan, and only the
failures of the page asked for bring their traceback and output (a page of failures
reads the ids of the run's failing attempts, then the page's rows). Every function
takes an open connection inside the caller's transaction.

A run's failure groups, failing shards and retry links read the same index for the
run's failing attempts (or its retries) and never a traceback, except the groups'
examples and failures stored before migration 0009, whose ``signature`` is NULL.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, case, distinct, exists, func, or_, select

from farm.core.domain import Outcome
from farm.core.failure_signature import failure_signature
from farm.store.connection import UnknownRun
from farm.store.dashboard_changes import FAILURES, check_limit, decode_cursor, encode_cursor
from farm.store.dashboard_records import (
    FailureGroupRow,
    FailureRow,
    Page,
    RetryLink,
    RunProgress,
    SlowAttempt,
)
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
    page = _failure_page(connection, failing, (), limit=limit, after=after)
    if not page.items and after is None:
        _check_run(connection, run_id)
    return page


def group_failures(
    connection: Connection, run_id: str, signature: str, *, limit: int, cursor: str | None
) -> tuple[int, Page[FailureRow]]:
    """One failure group of the run (see :func:`failure_groups`): how many tests it
    has, and a page of their final failing attempts in the order they were recorded.
    (0, an empty page) for a signature no test of the run failed with."""
    check_limit(limit)
    after = decode_cursor(cursor, (int,))
    final = _final_failing(run_id)
    stored = final & (ATTEMPTS.c.signature == signature)
    legacy = _legacy_members(connection, final, signature)
    tests = int(connection.scalar(select(func.count()).where(stored)) or 0) + len(legacy)
    if tests == 0:
        _check_run(connection, run_id)
        return 0, Page((), None)
    return tests, _failure_page(connection, stored, legacy, limit=limit, after=after)


_FAILURE_COLUMNS = (
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
)


def _failure_page(
    connection: Connection,
    where: ColumnElement[bool],
    more_ids: Sequence[int],
    *,
    limit: int,
    after: Sequence[Any] | None,
) -> Page[FailureRow]:
    """The page of ``limit`` attempts after ``after`` (by id) among those ``where``
    selects and ``more_ids``, with traceback and output."""
    if after is not None:
        where = where & (ATTEMPTS.c.id > after[0])
        more_ids = [i for i in more_ids if i > after[0]]
    # The page's ids first, without ORDER BY ... LIMIT: given those, PostgreSQL walks
    # the primary key in order and filters every attempt recorded before the run's.
    candidates = list(connection.scalars(select(ATTEMPTS.c.id).where(where))) + list(more_ids)
    ids = heapq.nsmallest(limit + 1, set(candidates))
    query = select(*_FAILURE_COLUMNS).where(ATTEMPTS.c.id.in_(ids[:limit]))
    rows = connection.execute(query.order_by(ATTEMPTS.c.id)).all() if ids else []
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


# Failures stored before migration 0009 have no signature: up to this many of a run's
# are read and computed from their traceback; beyond, they are grouped by outcome.
LEGACY_SIGNATURES_MAX = 1000


def failure_groups(
    connection: Connection, run_id: str, *, limit: int
) -> tuple[FailureGroupRow, ...]:
    """The run's tests whose final attempt (highest number; ties: the one recorded
    last) failed, grouped by that attempt's signature, the largest group first (ties:
    the group whose first failure was recorded first), at most ``limit`` groups.
    A test that failed and then passed on a retry is in no group: it did not fail."""
    check_limit(limit)
    final = _final_failing(run_id)
    key = ATTEMPTS.c.signature
    counted = (func.count(distinct(ATTEMPTS.c.node_id)), func.min(ATTEMPTS.c.id))
    stored = select(key, *counted).where(final, key.is_not(None)).group_by(key)
    groups: dict[str, tuple[int, int]] = {
        row[0]: (int(row[1]), int(row[2])) for row in connection.execute(stored)
    }
    for signature, (tests, first_id) in _legacy_groups(connection, final).items():
        had = groups.get(signature, (0, first_id))
        groups[signature] = (had[0] + tests, min(had[1], first_id))
    if not groups:
        _check_run(connection, run_id)
        return ()
    chosen = sorted(groups.items(), key=lambda item: (-item[1][0], item[1][1]))[:limit]
    columns = (ATTEMPTS.c.id, ATTEMPTS.c.node_id, ATTEMPTS.c.outcome, ATTEMPTS.c.longrepr)
    ids = [first_id for _, (_, first_id) in chosen]
    examples = {
        row[0]: row for row in connection.execute(select(*columns).where(ATTEMPTS.c.id.in_(ids)))
    }
    made = []
    for signature, (tests, first_id) in chosen:
        _, node_id, outcome, longrepr = examples[first_id]
        message = failure_signature(longrepr, outcome).message
        made.append(FailureGroupRow(signature, tests, node_id, first_id, message))
    return tuple(made)


def failing_shards(connection: Connection, run_id: str) -> tuple[int, ...]:
    """The ids of the run's shards that ran a failing attempt (retries' included)."""
    failing = (ATTEMPTS.c.run_id == run_id) & ATTEMPTS.c.outcome.in_(FAILURES)
    query = select(ATTEMPTS.c.shard_id).where(failing).distinct()
    found = tuple(sorted(connection.scalars(query)))
    if not found:
        _check_run(connection, run_id)
    return found


def retry_links(connection: Connection, run_id: str) -> tuple[RetryLink, ...]:
    """(retry shard, shard of the first attempt) for every retry (attempt 2 or more)
    run in another shard than its test's first attempt, each pair once; as many rows
    as the run has retries at most, which its retry budget bounds."""
    first = ATTEMPTS.alias("first")
    query = (
        select(ATTEMPTS.c.shard_id, first.c.shard_id)
        .where(
            ATTEMPTS.c.run_id == run_id,
            # Every outcome named, so that the retries are a range of each outcome's
            # part of ``attempts (run_id, outcome, attempt)``, not a scan of the run.
            ATTEMPTS.c.outcome.in_(tuple(Outcome)),
            ATTEMPTS.c.attempt > 1,
            first.c.run_id == run_id,
            first.c.node_id == ATTEMPTS.c.node_id,
            first.c.attempt == 1,
            first.c.shard_id != ATTEMPTS.c.shard_id,
        )
        .distinct()
    )
    pairs = sorted((int(row[0]), int(row[1])) for row in connection.execute(query))
    found = tuple(RetryLink(*pair) for pair in pairs)
    if not found:
        _check_run(connection, run_id)
    return found


def _final_failing(run_id: str) -> ColumnElement[bool]:
    """The run's failing attempts that no later attempt of their test followed."""
    later = ATTEMPTS.alias("later")
    superseded = exists().where(
        later.c.run_id == run_id,
        later.c.node_id == ATTEMPTS.c.node_id,
        or_(
            later.c.attempt > ATTEMPTS.c.attempt,
            and_(later.c.attempt == ATTEMPTS.c.attempt, later.c.id > ATTEMPTS.c.id),
        ),
    )
    return and_(ATTEMPTS.c.run_id == run_id, ATTEMPTS.c.outcome.in_(FAILURES), ~superseded)


def _unsigned(
    connection: Connection, final: ColumnElement[bool]
) -> tuple[ColumnElement[bool], list[int]]:
    """The final failures without a stored signature: their condition, and the ids
    of up to LEGACY_SIGNATURES_MAX + 1 of them (more than the maximum: too many to
    read their tracebacks)."""
    unsigned = final & ATTEMPTS.c.signature.is_(None)
    limited = select(ATTEMPTS.c.id).where(unsigned).limit(LEGACY_SIGNATURES_MAX + 1)
    return unsigned, list(connection.scalars(limited))


def _legacy_groups(
    connection: Connection, final: ColumnElement[bool]
) -> dict[str, tuple[int, int]]:
    """Signature -> (tests, first attempt id) of the final failures without a stored
    signature: computed from their tracebacks, or, past LEGACY_SIGNATURES_MAX of
    them, their outcome as the signature (as for a failure without a traceback)."""
    unsigned, ids = _unsigned(connection, final)
    if not ids:
        return {}
    if len(ids) > LEGACY_SIGNATURES_MAX:
        query = (
            select(
                ATTEMPTS.c.outcome,
                func.count(distinct(ATTEMPTS.c.node_id)),
                func.min(ATTEMPTS.c.id),
            )
            .where(unsigned)
            .group_by(ATTEMPTS.c.outcome)
        )
        return {row[0].value: (int(row[1]), int(row[2])) for row in connection.execute(query)}
    columns = (ATTEMPTS.c.id, ATTEMPTS.c.node_id, ATTEMPTS.c.outcome, ATTEMPTS.c.longrepr)
    nodes: dict[str, set[str]] = {}
    firsts: dict[str, int] = {}
    for row in connection.execute(select(*columns).where(ATTEMPTS.c.id.in_(ids))):
        signature = failure_signature(row.longrepr, row.outcome).text
        nodes.setdefault(signature, set()).add(row.node_id)
        firsts[signature] = min(firsts.get(signature, row.id), row.id)
    return {signature: (len(nodes[signature]), firsts[signature]) for signature in nodes}


def _legacy_members(
    connection: Connection, final: ColumnElement[bool], signature: str
) -> list[int]:
    """The ids of the final failures without a stored signature that
    :func:`_legacy_groups` puts in ``signature``'s group."""
    unsigned, ids = _unsigned(connection, final)
    if not ids:
        return []
    if len(ids) > LEGACY_SIGNATURES_MAX:  # grouped by outcome, as _legacy_groups does
        outcome = next((o for o in FAILURES if o.value == signature), None)
        if outcome is None:
            return []
        by_outcome = unsigned & (ATTEMPTS.c.outcome == outcome)
        return list(connection.scalars(select(ATTEMPTS.c.id).where(by_outcome)))
    columns = (ATTEMPTS.c.id, ATTEMPTS.c.outcome, ATTEMPTS.c.longrepr)
    rows = connection.execute(select(*columns).where(ATTEMPTS.c.id.in_(ids)))
    signed = ((row.id, failure_signature(row.longrepr, row.outcome).text) for row in rows)
    return [attempt_id for attempt_id, text in signed if text == signature]


def _check_run(connection: Connection, run_id: str) -> Any:
    if connection.scalar(select(RUNS.c.id).where(RUNS.c.id == run_id)) is None:
        raise UnknownRun(run_id)
