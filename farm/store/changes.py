"""Queries on changes: one change and its runs, the latest change, and what failed
the last time a branch was run.

A change is one commit of one repository (:class:`farm.core.domain.ChangeRef`);
every run of it points at its one row. Like the other query modules, every
function takes an open connection inside the caller's transaction.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, Connection, func, select

from farm.core.domain import ChangeRef, RunState
from farm.core.errors import UsageError
from farm.store.records import ChangeRuns
from farm.store.rows import CHANGE_FIELDS, CHANGES, RUNS, change_ref, run_record
from farm.store.runs import final_outcomes, select_runs

MIN_PREFIX_CHARS = 4  # of a commit sha, to name a change by
CANDIDATES_SHOWN = 10  # changes named when a prefix matches several
_HEX = frozenset("0123456789abcdef")
_CHANGE_COLUMNS = tuple(CHANGES.c[name] for name in CHANGE_FIELDS)


def change_runs(
    connection: Connection, commit: str, *, repository: str | None = None
) -> ChangeRuns | None:
    """The change whose sha starts with ``commit`` (of ``repository`` if given) and
    its runs, oldest first; None if no change matches.

    Raises UsageError if ``commit`` is not at least :data:`MIN_PREFIX_CHARS` hex
    digits, or if it matches several changes (naming them).
    """
    prefix = commit.strip().lower()
    if len(prefix) < MIN_PREFIX_CHARS or not set(prefix) <= _HEX:
        raise UsageError(
            f"{commit!r} is not a commit: give its sha or its first "
            f"{MIN_PREFIX_CHARS} hex digits or more"
        )
    # The prefix is hex digits only, so it holds no LIKE wildcard.
    query = select(CHANGES.c.id, *_CHANGE_COLUMNS).where(
        func.lower(CHANGES.c.commit_sha).like(f"{prefix}%")
    )
    if repository is not None:
        query = query.where(CHANGES.c.repository == repository)
    rows = connection.execute(query.order_by(CHANGES.c.repository, CHANGES.c.commit_sha)).all()
    if not rows:
        return None
    if len(rows) > 1:
        names = [f"{row.repository}@{row.commit_sha}" for row in rows[:CANDIDATES_SHOWN]]
        more = ", ..." if len(rows) > CANDIDATES_SHOWN else ""
        hint = "more of its sha" if repository is not None else "more of its sha or its repository"
        raise UsageError(
            f"commit {commit!r} matches {len(rows)} changes: {', '.join(names)}{more}; give {hint}"
        )
    row = rows[0]
    runs = select_runs().where(RUNS.c.change_id == row.id)
    ordered = runs.order_by(RUNS.c.created_at, RUNS.c.id)
    return ChangeRuns(
        change=change_ref(row[1:]),
        runs=tuple(run_record(run) for run in connection.execute(ordered)),
    )


def latest_change(connection: Connection, project: str | None = None) -> ChangeRef | None:
    """The change of the most recently created run that has one (of ``project`` if given)."""
    query = select(*_CHANGE_COLUMNS).join(RUNS, RUNS.c.change_id == CHANGES.c.id)
    if project is not None:
        query = query.where(RUNS.c.project == project)
    row = connection.execute(
        query.order_by(RUNS.c.created_at.desc(), RUNS.c.id.desc()).limit(1)
    ).first()
    return None if row is None else change_ref(row)


def previous_failures(
    connection: Connection, project: str, branch: str, *, before_run: str
) -> tuple[str, ...]:
    """The node ids (sorted) whose final result failed in the most recently created
    finished run of ``project`` on ``branch``, ``before_run`` aside; () if there is
    no such run or ``branch`` is unknown ("")."""
    if not branch:
        return ()
    run_id = latest_finished_run(connection, project, CHANGES.c.branch == branch, before_run)
    if run_id is None:
        return ()
    outcomes = final_outcomes(connection, run_id)
    return tuple(sorted(node_id for node_id, outcome in outcomes.items() if outcome.is_failure))


def latest_finished_run(
    connection: Connection, project: str, of_change: ColumnElement[bool], before_run: str
) -> str | None:
    """The most recently created finished run of ``project`` whose change matches
    ``of_change`` (a condition on the changes table), ``before_run`` aside."""
    query = (
        select(RUNS.c.id)
        .join(CHANGES, RUNS.c.change_id == CHANGES.c.id)
        .where(
            RUNS.c.project == project,
            RUNS.c.state == RunState.FINISHED,
            RUNS.c.id != before_run,
            of_change,
        )
        .order_by(RUNS.c.created_at.desc(), RUNS.c.id.desc())
        .limit(1)
    )
    run_id = connection.scalar(query)
    return None if run_id is None else str(run_id)
