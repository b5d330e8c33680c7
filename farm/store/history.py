"""Queries on test and module history: folding a run's results in, reading estimates back.

An *estimate* is an exponentially weighted moving average (EWMA): each new sample
``x`` moves it to ``alpha * x + (1 - alpha) * estimate``; the first sample is the
estimate. A larger ``alpha`` forgets the past faster. Beside it a test keeps its
last :data:`~farm.core.defaults.DURATION_WINDOW` durations (for percentiles), one
letter per recent run (see :func:`farm.core.quarantine.run_letter`) and its clean
runs in a row, which the quarantine rules read.

Every function takes an open connection inside the caller's transaction. Writes read
the existing rows for the given ids in chunks, compute in Python and write back with
one batched upsert (see :mod:`farm.store.bulk`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from sqlalchemy import Connection, Table, case, select

from farm.core import defaults
from farm.core.domain import History, Outcome, TestResult, module_of
from farm.core.errors import UsageError
from farm.core.quarantine import CLEAN, FLAKY, run_letter
from farm.store.bulk import read_keyed, upsert
from farm.store.models import ModuleHistory, TestHistory
from farm.store.schema import lock_project

TEST_HISTORY: Table = TestHistory.__table__  # type: ignore[assignment]
MODULE_HISTORY: Table = ModuleHistory.__table__  # type: ignore[assignment]


@dataclass
class _Fold:
    """What one run's attempts of one test add to its history."""

    durations_s: list[float] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)
    passes: int = 0
    failures: int = 0
    failed_in: str | None = None  # the run of its last failing attempt


@dataclass(frozen=True)
class RecentRuns:
    """A test's recent runs after a fold: their letters, newest last, and how many
    clean runs in a row it has had."""

    recent_outcomes: str
    clean_streak: int


def ewma(estimate_s: float | None, samples_s: Sequence[float], alpha: float) -> float | None:
    """``estimate_s`` moved by each of ``samples_s`` in turn; None if both are empty."""
    for sample_s in samples_s:
        estimate_s = sample_s if estimate_s is None else alpha * sample_s + (1 - alpha) * estimate_s
    return estimate_s


def recent_durations(text: str) -> list[float]:
    """The durations of a ``recent_durations`` value, oldest first ([] if damaged)."""
    try:
        values = json.loads(text)
        return [float(value) for value in values]
    except (ValueError, TypeError):
        return []


def update_history(
    connection: Connection,
    project: str,
    results: Sequence[TestResult],
    *,
    alpha: float,
    window_runs: int,
    now: float,
) -> dict[str, RecentRuns]:
    """Fold a run's attempts into ``project``'s test and module history; returns the
    recent runs of every test it folded.

    ``results`` are attempts in the order they happened, retries included. A skipped
    attempt counts nowhere (its duration says nothing of the test's cost, and a
    skip says nothing of flakiness); a failing one (failed, error, timeout, crashed)
    counts a failure; any other a pass. Each test that ran adds one letter to its
    recent outcomes, of which the last ``window_runs`` are kept. Module setup is
    learned from every attempt with ``module_setup_s > 0``.
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
        fold.outcomes.append(result.outcome)
        if result.outcome.is_failure:
            fold.failures += 1
            fold.failed_in = result.run_id
        else:
            fold.passes += 1
    if not folds and not module_samples:
        return {}
    lock_project(connection, project)
    recent = _write_tests(connection, project, folds, alpha=alpha, window_runs=window_runs, now=now)
    _write_modules(connection, project, module_samples, alpha=alpha, now=now)
    return recent


_TEST_COLUMNS = (
    "duration_s",
    "samples",
    "passes",
    "failures",
    "flaky_count",
    "recent_outcomes",
    "clean_streak",
    "recent_durations",
    "last_failure_at",
    "last_failure_run",
)
_NEW_TEST = (None, 0, 0, 0, 0, "", 0, "[]", None, None)


def _write_tests(
    connection: Connection,
    project: str,
    folds: Mapping[str, _Fold],
    *,
    alpha: float,
    window_runs: int,
    now: float,
) -> dict[str, RecentRuns]:
    columns = [TEST_HISTORY.c[name] for name in _TEST_COLUMNS]
    existing = read_keyed(connection, TEST_HISTORY.c.node_id, columns, project, list(folds))
    rows = []
    recent: dict[str, RecentRuns] = {}
    for node_id, fold in folds.items():
        old = dict(zip(_TEST_COLUMNS, existing.get(node_id, _NEW_TEST), strict=True))
        duration_s = ewma(old["duration_s"], fold.durations_s, alpha)
        letter = run_letter(fold.outcomes)
        assert duration_s is not None and letter is not None  # a fold holds an attempt
        durations = recent_durations(old["recent_durations"]) + fold.durations_s
        runs = RecentRuns(
            recent_outcomes=(old["recent_outcomes"] + letter)[-window_runs:],
            clean_streak=old["clean_streak"] + 1 if letter == CLEAN else 0,
        )
        recent[node_id] = runs
        failed = fold.failed_in is not None
        rows.append(
            {
                "project": project,
                "node_id": node_id,
                "duration_s": duration_s,
                "last_duration_s": fold.durations_s[-1],
                "samples": old["samples"] + len(fold.durations_s),
                "passes": old["passes"] + fold.passes,
                "failures": old["failures"] + fold.failures,
                "flaky_count": old["flaky_count"] + int(letter == FLAKY),
                "updated_at": now,
                "first_seen_at": now,  # for new rows only: never overwritten below
                "last_failure_at": now if failed else old["last_failure_at"],
                "last_failure_run": fold.failed_in if failed else old["last_failure_run"],
                "recent_outcomes": runs.recent_outcomes,
                "clean_streak": runs.clean_streak,
                "recent_durations": json.dumps(durations[-defaults.DURATION_WINDOW :]),
            }
        )
    kept = {"project", "node_id", "first_seen_at"}
    upsert(connection, TEST_HISTORY, rows, [name for name in rows[0] if name not in kept])
    return recent


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
    existing = read_keyed(
        connection, MODULE_HISTORY.c.module, columns, project, list(module_samples)
    )
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
    upsert(connection, MODULE_HISTORY, rows, ("setup_s", "samples", "updated_at"))


def import_durations(
    connection: Connection, project: str, durations: Mapping[str, float], *, now: float
) -> int:
    """Set the estimate of each node id in ``durations``; returns how many were set.

    A test new to the history starts with that one sample; a known test keeps its
    counts and recent durations.
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
            "updated_at": now,
            "first_seen_at": now,
            "recent_durations": json.dumps([float(duration_s)]),
        }
        for node_id, duration_s in durations.items()
    ]
    if not rows:
        return 0
    lock_project(connection, project)
    samples = TEST_HISTORY.c.samples
    upsert(
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
