"""What the store keeps so that a run outlives the process supervising it.

Each shard's node ids are saved as it is dispatched (``shard_tests``), and the
scheduler writes a heartbeat into its run. A running run whose heartbeat is older
than a deadline was abandoned: :meth:`farm.store.ResultStore.mark_abandoned` says so
in the store, and ``farm run --resume RUN_ID`` continues it from
:meth:`~farm.store.ResultStore.load_run_tests` (what it owes) and the final results
already stored.

Like the other query modules, every function takes an open connection inside the
caller's transaction and the store clock's ``now`` where it needs the time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sqlalchemy import Connection, Table, and_, insert, or_, select, update

from farm.core.domain import RunState, Verdict
from farm.store.connection import UnknownRun
from farm.store.models import ShardTests
from farm.store.rows import RUNS, pack_node_ids, unpack_node_ids

SHARD_TESTS: Table = ShardTests.__table__  # type: ignore[assignment]


def insert_shard_tests(
    connection: Connection, run_id: str, shard_tests: Mapping[int, Sequence[str]]
) -> None:
    rows = [
        {
            "run_id": run_id,
            "shard_id": shard_id,
            "node_ids": pack_node_ids(node_ids),
        }
        for shard_id, node_ids in shard_tests.items()
    ]
    if rows:
        connection.execute(insert(SHARD_TESTS), rows)


def read_run_tests(connection: Connection, run_id: str) -> dict[int, tuple[str, ...]]:
    """Every shard's node ids, by shard id."""
    query = (
        select(SHARD_TESTS.c.shard_id, SHARD_TESTS.c.node_ids)
        .where(SHARD_TESTS.c.run_id == run_id)
        .order_by(SHARD_TESTS.c.shard_id)
    )
    return {row.shard_id: unpack_node_ids(row.node_ids) for row in connection.execute(query)}


def abandon_silent_runs(connection: Connection, *, deadline_s: float, now: float) -> int:
    """Mark running runs whose scheduler is silent at ``now`` for over ``deadline_s``
    abandoned (one never heard from counts from its creation); returns how many."""
    cutoff = now - deadline_s
    silent = and_(
        RUNS.c.state == RunState.RUNNING,
        or_(
            RUNS.c.heartbeat_at < cutoff,
            and_(RUNS.c.heartbeat_at.is_(None), RUNS.c.created_at < cutoff),
        ),
    )
    message = f"its scheduler stopped: no heartbeat for over {deadline_s:g}s"
    done = connection.execute(
        update(RUNS)
        .where(silent)
        .values(state=RunState.ABANDONED, verdict=Verdict.ERROR, message=message)
    )
    return int(done.rowcount or 0)


def reopen(connection: Connection, run_id: str, *, now: float) -> None:
    """Make the run running again, its heartbeat ``now``, under a new scheduler."""
    values = {
        "state": RunState.RUNNING,
        "verdict": None,
        "message": "",
        "finished_at": None,
        "heartbeat_at": now,
    }
    done = connection.execute(update(RUNS).where(RUNS.c.id == run_id).values(**values))
    if done.rowcount == 0:
        raise UnknownRun(run_id)
