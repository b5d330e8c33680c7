"""What the store keeps so that a run outlives the process supervising it.

Each shard's node ids are saved as it is dispatched (``shard_tests``), and the
scheduler writes a heartbeat into its run. A running run whose heartbeat is older
than a deadline was abandoned: :func:`mark_abandoned` says so in the store, and
``farm run --resume RUN_ID`` continues it from :func:`load_run_tests` (what it
owes) and the final results already stored.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

from sqlalchemy import Table, and_, insert, or_, select, update

from farm.core.domain import RunState, Verdict
from farm.store.models import ShardTests
from farm.store.rows import RUNS, pack_node_ids, unpack_node_ids
from farm.store.store import ResultStore

SHARD_TESTS: Table = ShardTests.__table__  # type: ignore[assignment]


def save_shard_tests(store: ResultStore, run_id: str, shards: Mapping[int, Sequence[str]]) -> None:
    rows = [
        {
            "run_id": run_id,
            "shard_id": shard_id,
            "node_ids": pack_node_ids(node_ids),
        }
        for shard_id, node_ids in shards.items()
    ]
    if not rows:
        return
    with store.transaction(f"save the tests of run {run_id}'s shards") as connection:
        connection.execute(insert(SHARD_TESTS), rows)


def load_run_tests(store: ResultStore, run_id: str) -> dict[int, tuple[str, ...]]:
    """Every shard's node ids, by shard id."""
    query = (
        select(SHARD_TESTS.c.shard_id, SHARD_TESTS.c.node_ids)
        .where(SHARD_TESTS.c.run_id == run_id)
        .order_by(SHARD_TESTS.c.shard_id)
    )
    with store.transaction(f"read run {run_id}'s shards") as connection:
        rows = connection.execute(query).all()
    return {row.shard_id: unpack_node_ids(row.node_ids) for row in rows}


def mark_abandoned(store: ResultStore, *, deadline_s: float, now: float | None = None) -> int:
    """Mark running runs whose scheduler is silent for over ``deadline_s`` abandoned."""
    cutoff = (time.time() if now is None else now) - deadline_s
    silent = and_(
        RUNS.c.state == RunState.RUNNING,
        or_(
            RUNS.c.heartbeat_at < cutoff,
            and_(RUNS.c.heartbeat_at.is_(None), RUNS.c.created_at < cutoff),
        ),
    )
    message = f"its scheduler stopped: no heartbeat for over {deadline_s:g}s"
    with store.transaction("mark abandoned runs") as connection:
        done = connection.execute(
            update(RUNS)
            .where(silent)
            .values(state=RunState.ABANDONED, verdict=Verdict.ERROR, message=message)
        )
    return int(done.rowcount or 0)


def reopen_run(store: ResultStore, run_id: str, *, now: float | None = None) -> None:
    """Make an abandoned run running again, under a new scheduler."""
    values = {
        "state": RunState.RUNNING,
        "verdict": None,
        "message": "",
        "finished_at": None,
        "heartbeat_at": time.time() if now is None else now,
    }
    with store.transaction(f"reopen run {run_id}") as connection:
        connection.execute(update(RUNS).where(RUNS.c.id == run_id).values(**values))
