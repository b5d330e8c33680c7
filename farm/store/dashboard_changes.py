"""The dashboard's queries on changes: the list, newest first, and one change.

A change's verdict is :func:`farm.core.change_verdict.change_verdict` over its runs,
as ``farm change`` gives it. What it needs of a run's tests is read narrowly: the
list needs only which of the tests some earlier run named (failed, flaky,
quarantined) a later run ran again, so only those are looked up; the detail reads
every tested node id (one index scan per concluded run). A run recorded without
findings takes its failing final results as its failures, read from its failing
attempts only.

Cursors are opaque strings: URL-safe base64 of a JSON list of the keyset values.
Every function takes an open connection inside the caller's transaction.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Row, Select, and_, func, or_, select

from farm.core.change_verdict import ChangeRun, change_verdict
from farm.core.domain import ChangeRef, Outcome, RunFindings, Verdict
from farm.core.errors import UsageError
from farm.store.bulk import among_chunks
from farm.store.changes import MIN_PREFIX_CHARS
from farm.store.dashboard_records import ChangeDetail, ChangeSummary, Page
from farm.store.rows import (
    ATTEMPTS,
    CHANGE_FIELDS,
    CHANGES,
    RUNS,
    change_ref,
    read_findings,
    run_record,
)
from farm.store.runs import select_runs

MAX_LIMIT = 500  # rows one page may ask for
# Changes one call of the list reads at most while a verdict filter skips others:
# a rare verdict gives a short page (and a cursor) rather than a slow one.
VERDICT_SCAN_CHANGES = 1_000
FAILURES = tuple(outcome for outcome in Outcome if outcome.is_failure)
_CHANGE_COLUMNS = tuple(CHANGES.c[name] for name in CHANGE_FIELDS)


def encode_cursor(values: Sequence[object]) -> str:
    """An opaque cursor holding ``values`` (JSON scalars)."""
    return base64.urlsafe_b64encode(json.dumps(list(values)).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None, types: Sequence[type]) -> list[Any] | None:
    """The values of a cursor made by :func:`encode_cursor`, checked against ``types``
    (``float`` takes ints too); None for None. UsageError for anything else."""
    if cursor is None:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        values = None
    if not isinstance(values, list) or len(values) != len(types):
        raise UsageError(f"{cursor!r} is not a cursor of this list: start from its first page")
    for value, kind in zip(values, types, strict=True):
        ok = isinstance(value, (int, float)) if kind is float else isinstance(value, kind)
        # A database's integers are 64-bit: a larger one would overflow in the driver.
        too_big = isinstance(value, int) and not -(2**63) <= value < 2**63
        if not ok or isinstance(value, bool) or too_big:
            raise UsageError(f"{cursor!r} is not a cursor of this list: start from its first page")
    return values


def check_limit(limit: int) -> None:
    if not 1 <= limit <= MAX_LIMIT:
        raise UsageError(f"a page holds 1 to {MAX_LIMIT} rows, not {limit}")


def list_changes(
    connection: Connection,
    *,
    limit: int,
    cursor: str | None,
    repository: str | None = None,
    branch: str | None = None,
    author: str | None = None,
    verdict: Verdict | None = None,
) -> Page[ChangeSummary]:
    """Changes newest first (by when first seen, then id), filtered; keyset-paginated."""
    check_limit(limit)
    after = decode_cursor(cursor, (float, int))
    query = select(CHANGES.c.id, CHANGES.c.created_at, *_CHANGE_COLUMNS)
    for column, wanted in (("repository", repository), ("branch", branch), ("author", author)):
        if wanted is not None:
            query = query.where(CHANGES.c[column] == wanted)
    query = query.order_by(CHANGES.c.created_at.desc(), CHANGES.c.id.desc())
    batch = limit + 1 if verdict is None else max(limit * 2, 50)
    items: list[ChangeSummary] = []
    scanned = 0
    while True:
        page = query if after is None else query.where(_before(*after))
        rows = connection.execute(page.limit(batch)).all()
        summaries = _summaries(connection, rows)
        for row, summary in zip(rows, summaries, strict=True):
            scanned += 1
            if verdict is None or summary.verdict is verdict:
                if len(items) == limit:
                    return Page(tuple(items), encode_cursor(after or []))
                items.append(summary)
            after = [row.created_at, row.id]
            if verdict is not None and scanned >= VERDICT_SCAN_CHANGES and len(rows) == batch:
                # Read enough for one call: hand back what matched and where to go on.
                return Page(tuple(items), encode_cursor(after))
        if len(rows) < batch:
            return Page(tuple(items), None)


def _before(created_at: float, change_id: int) -> Any:
    return or_(
        CHANGES.c.created_at < created_at,
        and_(CHANGES.c.created_at == created_at, CHANGES.c.id < change_id),
    )


def _summaries(connection: Connection, rows: Sequence[Row[Any]]) -> list[ChangeSummary]:
    by_change = _runs_of(connection, [row.id for row in rows])
    summaries = []
    for row in rows:
        runs = by_change.get(row.id, [])
        change_runs = _change_runs(connection, runs, every_test=False)
        summaries.append(
            ChangeSummary(
                change=change_ref(row[2:]),
                created_at=row.created_at,
                verdict=change_verdict(change_runs).verdict,
                runs=len(runs),
                latest_run_id=runs[-1].id if runs else None,
            )
        )
    return summaries


def _runs_of(connection: Connection, change_ids: Sequence[int]) -> dict[int, list[Row[Any]]]:
    """Each change's runs, oldest first, without their settings."""
    if not change_ids:
        return {}
    columns = (RUNS.c.id, RUNS.c.change_id, RUNS.c.verdict, RUNS.c.message, RUNS.c.findings)
    query: Select[Any] = (
        select(*columns)
        .where(RUNS.c.change_id.in_(change_ids))
        .order_by(RUNS.c.created_at, RUNS.c.id)
    )
    found: defaultdict[int, list[Row[Any]]] = defaultdict(list)
    for run in connection.execute(query):
        found[run.change_id].append(run)
    return found


def change_detail(connection: Connection, repository: str, commit_sha: str) -> ChangeDetail | None:
    """The change of ``repository`` at ``commit_sha`` (exactly), its runs and verdict."""
    where = (CHANGES.c.repository == repository) & (CHANGES.c.commit_sha == commit_sha)
    row = connection.execute(
        select(CHANGES.c.id, CHANGES.c.created_at, *_CHANGE_COLUMNS).where(where)
    ).first()
    if row is None:
        return None
    query = select_runs().where(RUNS.c.change_id == row.id).order_by(RUNS.c.created_at, RUNS.c.id)
    rows = connection.execute(query).all()
    verdict = change_verdict(_change_runs(connection, rows, every_test=True))
    return ChangeDetail(
        change=change_ref(row[2:]),
        created_at=row.created_at,
        runs=tuple(run_record(run) for run in rows),
        verdict=verdict,
    )


def changes_matching(
    connection: Connection, commit: str, *, repository: str | None, limit: int
) -> tuple[ChangeRef, ...]:
    """The changes whose sha starts with ``commit`` (of ``repository`` if given), at
    most ``limit``, by repository and sha. UsageError unless ``commit`` is at least
    :data:`~farm.store.changes.MIN_PREFIX_CHARS` hex digits."""
    check_limit(limit)
    prefix = commit.strip().lower()
    if len(prefix) < MIN_PREFIX_CHARS or not set(prefix) <= set("0123456789abcdef"):
        raise UsageError(
            f"{commit!r} is not a commit: give its sha or its first "
            f"{MIN_PREFIX_CHARS} hex digits or more"
        )
    # Hex digits only, so the prefix holds no LIKE wildcard.
    query = select(*_CHANGE_COLUMNS).where(func.lower(CHANGES.c.commit_sha).like(f"{prefix}%"))
    if repository is not None:
        query = query.where(CHANGES.c.repository == repository)
    ordered = query.order_by(CHANGES.c.repository, CHANGES.c.commit_sha).limit(limit)
    return tuple(change_ref(row) for row in connection.execute(ordered))


def _change_runs(
    connection: Connection, runs: Sequence[Row[Any]], *, every_test: bool
) -> list[ChangeRun]:
    """The runs as the verdict takes them. Without ``every_test``, a run's tested set
    holds only the tests an earlier concluded run named, which is all the verdict
    itself depends on (its reason's count of passed tests is then not meaningful)."""
    plain = [
        ChangeRun(run.id, 0.0, run.verdict, run.message, frozenset(), read_findings(run.findings))
        for run in runs
    ]
    concluded = [run for run in plain if run.concluded]
    filled = {}
    for run in concluded:
        if run.findings is None:
            # As farm change reads it: its failing final results are its failures.
            filled[run.run_id] = RunFindings(failed=_failing_finals(connection, run.run_id))
    named: set[str] = set()
    tested: dict[str, frozenset[str]] = {}
    for run in concluded:
        findings = filled.get(run.run_id, run.findings)
        if every_test:
            tested[run.run_id] = _tested(connection, run.run_id, None)
        elif named:
            tested[run.run_id] = _tested(connection, run.run_id, sorted(named))
        if findings is not None:
            named.update(findings.failed, findings.flaky, findings.new_flaky)
            named.update(findings.quarantined_failures)
    return [
        ChangeRun(
            run.run_id,
            run.created_at,
            run.verdict,
            run.message,
            tested.get(run.run_id, frozenset()),
            filled.get(run.run_id, run.findings),
        )
        for run in plain
    ]


def _tested(connection: Connection, run_id: str, among: Sequence[str] | None) -> frozenset[str]:
    """The run's node ids with an attempt (of ``among`` if given)."""
    query = select(ATTEMPTS.c.node_id).distinct().where(ATTEMPTS.c.run_id == run_id)
    if among is None:
        return frozenset(connection.scalars(query))
    found: set[str] = set()
    for where in among_chunks(connection, ATTEMPTS.c.node_id, among):
        found.update(connection.scalars(query.where(where)))
    return frozenset(found)


def _failing_finals(connection: Connection, run_id: str) -> tuple[str, ...]:
    """The run's tests whose final attempt failed, sorted."""
    failing = (
        select(ATTEMPTS.c.node_id)
        .where(ATTEMPTS.c.run_id == run_id, ATTEMPTS.c.outcome.in_(FAILURES))
        .scalar_subquery()
    )
    query: Select[Any] = (
        select(ATTEMPTS.c.node_id, ATTEMPTS.c.attempt, ATTEMPTS.c.outcome)
        .where(ATTEMPTS.c.run_id == run_id, ATTEMPTS.c.node_id.in_(failing))
        .order_by(ATTEMPTS.c.id)
    )
    finals: dict[str, Row[Any]] = {}
    for row in connection.execute(query):
        kept = finals.get(row.node_id)
        if kept is None or row.attempt >= kept.attempt:
            finals[row.node_id] = row
    return tuple(sorted(node_id for node_id, row in finals.items() if row.outcome.is_failure))
