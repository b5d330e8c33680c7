"""The dashboard's queries on tests: one test's runs and overview, and the
leaderboards over time windows (flaky, slowest, duration changes).

Definitions (the dashboard's help text says the same):

* A test's *retry cost* in a window is the summed duration of its failing attempts
  that a passing attempt of the same test in the same run followed: the time its
  flakiness cost, retries included. Runs count when created in the window; only
  runs with a passing retry (attempt 2 or later) are read, through the index
  ``attempts (run_id, outcome, attempt)``, so the cost grows with retries, which a
  run's retry budget bounds, not with the tests run.
* *Slowest tests* and *duration changes* take each test's mean duration over its
  passing attempts in a sample of a window's runs: the newest ``sample_runs`` runs
  of the project created in it. A window of a busy project holds millions of
  attempts; its newest runs say what a test costs now and are read in bounded time.
  Duration changes compare the window ending now with the one before it, of equal
  length, over the tests both sampled.

Every function takes an open connection inside the caller's transaction.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    Connection,
    Select,
    and_,
    case,
    exists,
    func,
    literal,
    or_,
    select,
)

from farm.core.domain import Outcome
from farm.core.errors import UsageError
from farm.store.dashboard_changes import FAILURES, check_limit, decode_cursor, encode_cursor
from farm.store.dashboard_records import (
    DurationChange,
    FlakyTest,
    Page,
    TestDuration,
    TestOverview,
    TestRunPoint,
)
from farm.store.quarantine import QUARANTINE, _entry, read_events
from farm.store.rows import ATTEMPTS, CHANGES, RUNS

SAMPLE_RUNS = 5  # newest runs of a window whose durations are read
EVENTS_SHOWN = 50  # quarantine events on a test's page
GROUPING_MEMORY = "64MB"  # PostgreSQL's work_mem while grouping a window's durations


def test_runs(
    connection: Connection,
    project: str,
    node_id: str,
    *,
    limit: int,
    cursor: str | None,
    branch: str | None = None,
) -> Page[TestRunPoint]:
    """The runs of ``project`` that ran ``node_id``, newest first: one point each."""
    check_limit(limit)
    after = decode_cursor(cursor, (float, str))
    query = (
        select(RUNS.c.id, RUNS.c.created_at, CHANGES.c.branch, func.count())
        .select_from(ATTEMPTS.join(RUNS, RUNS.c.id == ATTEMPTS.c.run_id))
        .outerjoin(CHANGES, CHANGES.c.id == RUNS.c.change_id)
        .where(ATTEMPTS.c.node_id == node_id, RUNS.c.project == project)
        .group_by(RUNS.c.id, RUNS.c.created_at, CHANGES.c.branch)
    )
    if branch is not None:
        query = query.where(CHANGES.c.branch == branch)
    if after is not None:
        created_at, run_id = after
        query = query.where(
            or_(
                RUNS.c.created_at < created_at,
                and_(RUNS.c.created_at == created_at, RUNS.c.id < run_id),
            )
        )
    ordered = query.order_by(RUNS.c.created_at.desc(), RUNS.c.id.desc()).limit(limit + 1)
    runs = connection.execute(ordered).all()[: limit + 1]
    more = len(runs) > limit
    runs = runs[:limit]
    finals: dict[str, Any] = {}
    if runs:
        attempts = (
            select(
                ATTEMPTS.c.run_id,
                ATTEMPTS.c.attempt,
                ATTEMPTS.c.outcome,
                ATTEMPTS.c.duration_s,
                ATTEMPTS.c.machine,
            )
            .where(ATTEMPTS.c.node_id == node_id, ATTEMPTS.c.run_id.in_([r.id for r in runs]))
            .order_by(ATTEMPTS.c.id)
        )
        for row in connection.execute(attempts):
            kept = finals.get(row.run_id)
            if kept is None or row.attempt >= kept.attempt:
                finals[row.run_id] = row
    items = tuple(
        TestRunPoint(
            run_id=run.id,
            created_at=run.created_at,
            branch=run.branch or "",
            duration_s=finals[run.id].duration_s,
            outcome=finals[run.id].outcome,
            attempts=int(run[3]),
            machine=finals[run.id].machine,
        )
        for run in runs
    )
    next_cursor = encode_cursor([runs[-1].created_at, runs[-1].id]) if more else None
    return Page(items, next_cursor)


def test_overview(connection: Connection, project: str, node_id: str) -> TestOverview:
    """Where ``node_id`` failed, its attempts' outcomes by branch, and its quarantine."""
    of_test = (
        select()
        .select_from(ATTEMPTS.join(RUNS, RUNS.c.id == ATTEMPTS.c.run_id))
        .where(ATTEMPTS.c.node_id == node_id, RUNS.c.project == project)
    )
    by_machine = (
        of_test.add_columns(ATTEMPTS.c.machine, func.count())
        .where(ATTEMPTS.c.outcome.in_(FAILURES))
        .group_by(ATTEMPTS.c.machine)
    )
    machines = sorted(
        ((str(m), int(n)) for m, n in connection.execute(by_machine)), key=lambda p: (-p[1], p[0])
    )
    by_branch = (
        of_test.outerjoin(CHANGES, CHANGES.c.id == RUNS.c.change_id)
        .add_columns(CHANGES.c.branch, ATTEMPTS.c.outcome, func.count())
        .group_by(CHANGES.c.branch, ATTEMPTS.c.outcome)
    )
    branches = sorted(
        ((b or "", o, int(n)) for b, o, n in connection.execute(by_branch)),
        key=lambda t: (t[0], t[1].value),
    )
    where = (QUARANTINE.c.project == project) & (QUARANTINE.c.node_id == node_id)
    row = connection.execute(select(QUARANTINE).where(where)).first()
    return TestOverview(
        node_id=node_id,
        failures_by_machine=tuple(machines),
        outcomes_by_branch=tuple(branches),
        quarantine=None if row is None else _entry(row),
        quarantine_events=read_events(connection, project, node_id, EVENTS_SHOWN),
    )


def flaky_tests(
    connection: Connection,
    project: str,
    *,
    since: float,
    limit: int,
    cursor: str | None,
    quarantined: bool | None = None,
) -> Page[FlakyTest]:
    """Tests of ``project`` flaky in runs created at ``since`` or later, by retry cost
    (then node id); ``quarantined`` keeps only those in (True) or out of (False)
    quarantine now."""
    check_limit(limit)
    after = decode_cursor(cursor, (float, str))
    window = select(RUNS.c.id).where(RUNS.c.project == project, RUNS.c.created_at >= since)
    passes = (
        select(ATTEMPTS.c.run_id, ATTEMPTS.c.node_id, func.min(ATTEMPTS.c.attempt).label("first"))
        .where(
            ATTEMPTS.c.run_id.in_(window),
            ATTEMPTS.c.outcome == Outcome.PASSED,
            ATTEMPTS.c.attempt > 1,
        )
        .group_by(ATTEMPTS.c.run_id, ATTEMPTS.c.node_id)
        .subquery("passes")
    )
    costs = (
        select(
            ATTEMPTS.c.node_id,
            func.sum(ATTEMPTS.c.duration_s).label("cost"),
            func.count(func.distinct(ATTEMPTS.c.run_id)).label("runs"),
            func.count().label("attempts"),
            func.max(ATTEMPTS.c.finished_at).label("last_at"),
        )
        .select_from(
            ATTEMPTS.join(
                passes,
                and_(
                    ATTEMPTS.c.run_id == passes.c.run_id,
                    ATTEMPTS.c.node_id == passes.c.node_id,
                    ATTEMPTS.c.attempt < passes.c.first,
                ),
            )
        )
        .where(ATTEMPTS.c.outcome.in_(FAILURES))
        .group_by(ATTEMPTS.c.node_id)
        .subquery("costs")
    )
    in_quarantine = exists().where(
        QUARANTINE.c.project == project, QUARANTINE.c.node_id == costs.c.node_id
    )
    query = select(costs, in_quarantine.label("quarantined"))
    if quarantined is not None:
        query = query.where(in_quarantine if quarantined else ~in_quarantine)
    query = _keyset(query, costs.c.cost, costs.c.node_id, after)
    rows = connection.execute(query.limit(limit + 1)).all()
    items = tuple(
        FlakyTest(
            node_id=row.node_id,
            retry_cost_s=float(row.cost),
            flaky_runs=int(row.runs),
            failed_attempts=int(row.attempts),
            last_seen_at=float(row.last_at),
            quarantined=bool(row.quarantined),
        )
        for row in rows[:limit]
    )
    more = len(rows) > limit
    next_cursor = encode_cursor([items[-1].retry_cost_s, items[-1].node_id]) if more else None
    return Page(items, next_cursor)


def _keyset(query: Select[Any], key: Any, node_id: Any, after: list[Any] | None) -> Select[Any]:
    """``query`` by ``key`` descending then node id, after the cursor's row."""
    if after is not None:
        value, last = after
        query = query.where(or_(key < value, and_(key == value, node_id > last)))
    return query.order_by(key.desc(), node_id)


def _sample(
    connection: Connection, project: str, start: float, end: float, sample_runs: int
) -> list[str]:
    """The ids of the newest ``sample_runs`` runs of ``project`` created in [start, end).

    Read first and passed on as values, not a subquery: with a subquery PostgreSQL
    cannot tell how few attempts match and scans the whole table.
    """
    if sample_runs < 1:
        raise UsageError(f"the runs to sample must be at least 1, not {sample_runs}")
    if connection.dialect.name == "postgresql":
        # Grouping 100,000 tests spills to disk under the default 4 MB (this
        # transaction's setting only).
        connection.exec_driver_sql(f"SET LOCAL work_mem = '{GROUPING_MEMORY}'")
    sample = (
        select(RUNS.c.id)
        .where(RUNS.c.project == project, RUNS.c.created_at >= start, RUNS.c.created_at < end)
        .order_by(RUNS.c.created_at.desc(), RUNS.c.id.desc())
        .limit(sample_runs)
    )
    return list(connection.scalars(sample))


def slowest_tests(
    connection: Connection,
    project: str,
    *,
    since: float,
    now: float,
    limit: int,
    cursor: str | None,
    sample_runs: int = SAMPLE_RUNS,
) -> Page[TestDuration]:
    """Tests by their mean passing duration over the window's sampled runs, slowest first."""
    check_limit(limit)
    after = decode_cursor(cursor, (float, str))
    run_ids = _sample(connection, project, since, _just_after(now), sample_runs)
    means = (
        select(
            ATTEMPTS.c.node_id,
            func.avg(ATTEMPTS.c.duration_s).label("mean"),
            func.max(ATTEMPTS.c.duration_s).label("top"),
            func.count().label("samples"),
        )
        .where(ATTEMPTS.c.run_id.in_(run_ids), ATTEMPTS.c.outcome == Outcome.PASSED)
        .group_by(ATTEMPTS.c.node_id)
        .subquery("means")
    )
    query = _keyset(select(means), means.c.mean, means.c.node_id, after)
    rows = connection.execute(query.limit(limit + 1)).all()
    items = tuple(
        TestDuration(row.node_id, float(row.mean), float(row.top), int(row.samples))
        for row in rows[:limit]
    )
    more = len(rows) > limit
    return Page(items, encode_cursor([items[-1].mean_s, items[-1].node_id]) if more else None)


def duration_changes(
    connection: Connection,
    project: str,
    *,
    window_s: float,
    now: float,
    limit: int,
    cursor: str | None,
    relative: bool = False,
    sample_runs: int = SAMPLE_RUNS,
) -> Page[DurationChange]:
    """Tests whose mean passing duration moved most between the window before and
    the window ending now (by seconds, or by ratio with ``relative``)."""
    check_limit(limit)
    if window_s <= 0:
        raise UsageError(f"a window must be longer than 0 seconds, not {window_s}")
    after = decode_cursor(cursor, (float, str))
    start = now - window_s
    earlier = _sample(connection, project, start - window_s, start, sample_runs)
    latest = _sample(connection, project, start, _just_after(now), sample_runs)
    # One pass over both samples' attempts, each test's two means side by side.
    in_earlier = ATTEMPTS.c.run_id.in_(earlier)
    duration = ATTEMPTS.c.duration_s
    means = (
        select(
            ATTEMPTS.c.node_id,
            func.avg(case((in_earlier, duration))).label("before"),
            func.avg(case((~in_earlier, duration))).label("after"),
        )
        .where(ATTEMPTS.c.run_id.in_(earlier + latest), ATTEMPTS.c.outcome == Outcome.PASSED)
        .group_by(ATTEMPTS.c.node_id)
        .subquery("means")
    )
    before, after_s = means.c.before, means.c.after
    if relative:
        ratio = after_s / before
        key: Any = case((ratio >= 1, ratio - 1), else_=literal(1.0) / ratio - 1)
        both = (before > 0) & (after_s > 0)
    else:
        key = case((after_s >= before, after_s - before), else_=before - after_s)
        both = before.is_not(None) & after_s.is_not(None)
    inner = (
        select(means.c.node_id, before.label("before"), after_s.label("after"), key.label("key"))
        .where(both)
        .subquery("moved")
    )
    query = _keyset(select(inner), inner.c.key, inner.c.node_id, after)
    rows = connection.execute(query.limit(limit + 1)).all()
    items = tuple(
        DurationChange(
            node_id=row.node_id,
            before_s=float(row.before),
            after_s=float(row.after),
            change_s=float(row.after) - float(row.before),
            ratio=float(row.after) / float(row.before) if row.before else None,
        )
        for row in rows[:limit]
    )
    keys = [float(row.key) for row in rows[:limit]]
    more = len(rows) > limit
    return Page(items, encode_cursor([keys[-1], items[-1].node_id]) if more else None)


def _just_after(now: float) -> float:
    """An end bound that includes runs created at ``now`` exactly."""
    return now + 1e-6


def recent_projects(connection: Connection, *, limit: int) -> tuple[str, ...]:
    """The projects with runs, the most recently run first."""
    check_limit(limit)
    latest = func.max(RUNS.c.created_at)
    rows = connection.execute(
        select(RUNS.c.project).group_by(RUNS.c.project).order_by(latest.desc()).limit(limit)
    )
    return tuple(str(project) for (project,) in rows)
