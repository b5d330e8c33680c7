"""Queries on test and module history: folding a run's results in, reading estimates back.

An *estimate* is an exponentially weighted moving average (EWMA): each new sample
``x`` moves it to ``alpha * x + (1 - alpha) * estimate``; the first sample is the
estimate. A larger ``alpha`` forgets the past faster.

Every function takes an open connection inside the caller's transaction. Writes read
the existing rows for the given ids in chunks, compute in Python and write back with
one batched upsert, so that 10,000 results cost a few statements, not 10,000.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Column, Connection, Table, any_, bindparam, case, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import ARRAY

from farm.core.domain import History, Outcome, TestResult, module_of
from farm.core.errors import UsageError
from farm.store.models import ModuleHistory, TestHistory
from farm.store.schema import advisory_lock_key, begin_immediate

# SQLite's default limit on bound variables was 999 before 3.32; keep IN lists well below.
IN_CHUNK = 500
ANY_CHUNK = 10_000

TEST_HISTORY: Table = TestHistory.__table__  # type: ignore[assignment]
MODULE_HISTORY: Table = ModuleHistory.__table__  # type: ignore[assignment]


@dataclass
class _Fold:
    """What one run's attempts of one test add to its history."""

    durations_s: list[float] = field(default_factory=list)
    passes: int = 0
    failures: int = 0
    failed: bool = False
    flaky: bool = False


def ewma(estimate_s: float | None, samples_s: Sequence[float], alpha: float) -> float | None:
    """``estimate_s`` moved by each of ``samples_s`` in turn; None if both are empty."""
    for sample_s in samples_s:
        estimate_s = sample_s if estimate_s is None else alpha * sample_s + (1 - alpha) * estimate_s
    return estimate_s


def update_history(
    connection: Connection,
    project: str,
    results: Sequence[TestResult],
    *,
    alpha: float,
    now: float,
) -> None:
    """Fold a run's attempts into ``project``'s test and module history.

    ``results`` are attempts in the order they happened, retries included. A skipped
    attempt counts nowhere (its duration says nothing of the test's cost); a failing
    one (failed, error, timeout, crashed) counts a failure; any other a pass. A test
    that failed and then passed within ``results`` counts once as flaky. Module setup
    is learned from every attempt with ``module_setup_s > 0``.
    """
    folds: dict[str, _Fold] = {}
    module_samples: dict[str, list[float]] = {}
    for result in results:
        if result.module_setup_s > 0:
            module_samples.setdefault(module_of(result.node_id), []).append(result.module_setup_s)
        if result.outcome is Outcome.SKIPPED:
            continue
        fold = folds.setdefault(result.node_id, _Fold())
        fold.durations_s.append(result.duration_s)
        if result.outcome.is_failure:
            fold.failures += 1
            fold.failed = True
        else:
            fold.passes += 1
            fold.flaky = fold.flaky or fold.failed
    if not folds and not module_samples:
        return
    _lock_project(connection, project)
    _write_tests(connection, project, folds, alpha=alpha, now=now)
    _write_modules(connection, project, module_samples, alpha=alpha, now=now)


def _write_tests(
    connection: Connection, project: str, folds: Mapping[str, _Fold], *, alpha: float, now: float
) -> None:
    names = ("duration_s", "samples", "passes", "failures", "flaky_count")
    columns = [TEST_HISTORY.c[name] for name in names]
    existing = _read(connection, TEST_HISTORY.c.node_id, columns, project, list(folds))
    rows = []
    for node_id, fold in folds.items():
        old_duration_s, samples, passes, failures, flaky_count = existing.get(
            node_id, (None, 0, 0, 0, 0)
        )
        duration_s = ewma(old_duration_s, fold.durations_s, alpha)
        assert duration_s is not None  # a fold holds at least one duration
        rows.append(
            {
                "project": project,
                "node_id": node_id,
                "duration_s": duration_s,
                "last_duration_s": fold.durations_s[-1],
                "samples": samples + len(fold.durations_s),
                "passes": passes + fold.passes,
                "failures": failures + fold.failures,
                "flaky_count": flaky_count + int(fold.flaky),
                "quarantined": False,  # for new rows only: never overwritten below
                "updated_at": now,
            }
        )
    update = ("duration_s", "last_duration_s", "samples", "passes", "failures", "flaky_count")
    _upsert(connection, TEST_HISTORY, rows, (*update, "updated_at"))


def _write_modules(
    connection: Connection,
    project: str,
    module_samples: Mapping[str, Sequence[float]],
    *,
    alpha: float,
    now: float,
) -> None:
    if not module_samples:
        return
    columns = (MODULE_HISTORY.c.setup_s, MODULE_HISTORY.c.samples)
    existing = _read(connection, MODULE_HISTORY.c.module, columns, project, list(module_samples))
    rows = []
    for module, samples_s in module_samples.items():
        old_setup_s, samples = existing.get(module, (None, 0))
        rows.append(
            {
                "project": project,
                "module": module,
                "setup_s": ewma(old_setup_s, samples_s, alpha),
                "samples": samples + len(samples_s),
                "updated_at": now,
            }
        )
    _upsert(connection, MODULE_HISTORY, rows, ("setup_s", "samples", "updated_at"))


def import_durations(
    connection: Connection, project: str, durations: Mapping[str, float], *, now: float
) -> int:
    """Set the estimate of each node id in ``durations``; returns how many were set.

    A test new to the history starts with one sample; a known test keeps its counts.
    """
    for node_id, duration_s in durations.items():
        if not isinstance(duration_s, (int, float)) or not math.isfinite(duration_s):
            raise UsageError(f"duration of {node_id!r} is not a finite number ({duration_s!r})")
        if duration_s < 0:
            raise UsageError(f"duration of {node_id!r} is negative ({duration_s!r})")
    rows = [
        {
            "project": project,
            "node_id": node_id,
            "duration_s": float(duration_s),
            "last_duration_s": float(duration_s),
            "samples": 1,
            "passes": 0,
            "failures": 0,
            "flaky_count": 0,
            "quarantined": False,
            "updated_at": now,
        }
        for node_id, duration_s in durations.items()
    ]
    if not rows:
        return 0
    _lock_project(connection, project)
    samples = TEST_HISTORY.c.samples
    _upsert(
        connection,
        TEST_HISTORY,
        rows,
        ("duration_s", "updated_at"),
        extra_set={"samples": case((samples < 1, 1), else_=samples)},
    )
    return len(rows)


def read_history(connection: Connection, project: str) -> History:
    """Every estimate ``project`` has: per test duration and per module setup."""
    return History(
        test_duration_s=export_durations(connection, project),
        module_setup_s={
            module: setup_s
            for module, setup_s in connection.execute(
                select(MODULE_HISTORY.c.module, MODULE_HISTORY.c.setup_s).where(
                    MODULE_HISTORY.c.project == project
                )
            )
        },
    )


def export_durations(connection: Connection, project: str) -> dict[str, float]:
    """Node id to estimated seconds, for every test ``project`` has history of."""
    query = select(TEST_HISTORY.c.node_id, TEST_HISTORY.c.duration_s).where(
        TEST_HISTORY.c.project == project
    )
    return {node_id: duration_s for node_id, duration_s in connection.execute(query)}


def _chunks(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _read(
    connection: Connection,
    key: Column[str],
    columns: Sequence[Column[Any]],
    project: str,
    ids: Sequence[str],
) -> dict[str, tuple[Any, ...]]:
    """Existing rows of ``project`` among ``ids``: key -> values of ``columns``."""
    table = key.table
    found: dict[str, tuple[Any, ...]] = {}
    postgres = connection.dialect.name == "postgresql"
    for chunk in _chunks(ids, ANY_CHUNK if postgres else IN_CHUNK):
        if postgres:
            # One array parameter: psycopg prepares a statement run five times, and
            # PostgreSQL's generic plan for IN ($2, ..., $501) scans the whole table.
            among = key == any_(bindparam("ids", list(chunk), type_=ARRAY(key.type)))
        else:
            among = key.in_(chunk)
        for row in connection.execute(
            select(key, *columns).where(table.c.project == project, among)
        ):
            found[row[0]] = tuple(row[1:])
    return found


def _upsert(
    connection: Connection,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    update: Sequence[str],
    *,
    extra_set: Mapping[str, Any] | None = None,
) -> None:
    """Insert ``rows``; where the primary key exists, set only the ``update`` columns."""
    if not rows:
        return
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(table)
    set_: dict[str, Any] = {name: statement.excluded[name] for name in update}
    set_.update(extra_set or {})
    statement = statement.on_conflict_do_update(
        index_elements=list(table.primary_key.columns), set_=set_
    )
    connection.execute(statement, list(rows))


def _lock_project(connection: Connection, project: str) -> None:
    """Serialise history writers of one project until the transaction ends.

    Each writer reads estimates and writes new ones; two at once would lose samples.
    """
    if connection.dialect.name == "postgresql":
        key = advisory_lock_key(f"history:{project}")
        connection.execute(select(func.pg_advisory_xact_lock(key)))
    elif connection.dialect.name == "sqlite":
        begin_immediate(connection)
