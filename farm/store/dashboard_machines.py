"""The dashboard's reads of what the results store says of each machine over a window.

The *window's runs* are the runs running now and those whose last sign of life (end,
else scheduler heartbeat, start or creation) is at ``since`` or later. ``runs`` has
no index on those times, so the database filters the runs table itself (a row per
run); every read of ``shards`` and ``attempts`` then goes through an index led by
the run id (the shards' primary key, ``attempts (run_id, outcome, attempt)``,
``attempts (run_id, node_id)``), never a whole table, and only counts and a few
tests per machine come back to Python. Within those runs, each figure counts only
rows whose own time is at ``since`` or later (the workers' clocks):

- busy: shards running now (in a running run) on the machine, whatever the window;
- shards done: shards it finished, and their seconds from start to end;
- shards lost: leases of a shard it held (named by the attempts it recorded under
  them) that were handed out again under a later lease, because the worker's lease
  lapsed or it handed the shard back. The store clears a shard's machine when it is
  handed out again, so a lease that recorded no attempt names no machine;
- crashed and timed out: its attempts with those outcomes;
- passed elsewhere: its failing attempts whose test passed on a later attempt of the
  same run on another machine (one that is known), with the tests it happened to
  most often, then most recently.

Attempts and shards recorded without a machine ("" or NULL) count for none.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Select, and_, exists, func, or_, select

from farm.core.domain import Outcome, RunState
from farm.store.dashboard_changes import FAILURES, check_limit
from farm.store.dashboard_records import MachineActivity, PassedElsewhere
from farm.store.records import ShardState
from farm.store.rows import ATTEMPTS, RUNS, SHARDS

PASSED_ELSEWHERE_SHOWN = 5  # tests named per machine among those that passed elsewhere


def machine_activity(
    connection: Connection, *, since: float, examples: int = PASSED_ELSEWHERE_SHOWN
) -> tuple[MachineActivity, ...]:
    """Each machine the store saw in the window (or busy now), by name, with what it
    did and what failed on it; ``examples`` (1 or more) tests named of those that
    passed elsewhere."""
    check_limit(examples)
    tally: dict[str, _Tally] = {}

    def of(machine: str) -> _Tally:
        return tally.setdefault(machine, _Tally())

    for machine, busy, started_at in connection.execute(_busy()):
        of(machine).busy_slots = int(busy)
        of(machine).seen(started_at)
    for machine, done, busy_s, last_at in connection.execute(_done(since)):
        machine_tally = of(machine)
        machine_tally.shards_done, machine_tally.busy_s = int(done), float(busy_s or 0.0)
        machine_tally.seen(last_at)
    for machine, lost, last_at in _lost(connection, since):
        of(machine).shards_lost = lost
        of(machine).seen(last_at)
    for machine, outcome, count, last_at in connection.execute(_broken(since)):
        if outcome is Outcome.CRASHED:
            of(machine).crashed = int(count)
        else:
            of(machine).timed_out = int(count)
        of(machine).seen(last_at)
    for row in connection.execute(_passed_elsewhere(since, examples)):
        machine_tally = of(row.machine)
        machine_tally.passed_elsewhere = int(row.total)
        machine_tally.seen(row.machine_last_at)
        test = PassedElsewhere(row.project, row.node_id, int(row.times), float(row.last_at))
        machine_tally.tests.append(test)
    return tuple(tally[name].record(name) for name in sorted(tally))


@dataclass
class _Tally:
    """One machine's figures while the reads come in."""

    busy_slots: int = 0
    shards_done: int = 0
    busy_s: float = 0.0
    shards_lost: int = 0
    crashed: int = 0
    timed_out: int = 0
    passed_elsewhere: int = 0
    tests: list[PassedElsewhere] = field(default_factory=list)
    last_seen_at: float = 0.0

    def seen(self, at: float | None) -> None:
        if at is not None:
            self.last_seen_at = max(self.last_seen_at, float(at))

    def record(self, machine: str) -> MachineActivity:
        tests = sorted(self.tests, key=lambda t: (-t.times, -t.last_failed_at, t.node_id))
        return MachineActivity(
            machine=machine,
            busy_slots=self.busy_slots,
            shards_done=self.shards_done,
            busy_s=self.busy_s,
            shards_lost=self.shards_lost,
            crashed=self.crashed,
            timed_out=self.timed_out,
            passed_elsewhere=self.passed_elsewhere,
            passed_elsewhere_tests=tuple(tests),
            last_seen_at=self.last_seen_at,
        )


def _window_runs(since: float) -> Select[Any]:
    """The ids of the runs running now or alive at ``since`` or later."""
    last_sign = func.coalesce(
        RUNS.c.finished_at, RUNS.c.heartbeat_at, RUNS.c.started_at, RUNS.c.created_at
    )
    return select(RUNS.c.id).where(or_(RUNS.c.state == RunState.RUNNING, last_sign >= since))


def _known(column: Any) -> Any:
    return and_(column.is_not(None), column != "")


def _busy() -> Select[Any]:
    """Machine, shards running now, their latest start (the running runs by
    ``runs (state)``, their shards by the primary key)."""
    running = select(RUNS.c.id).where(RUNS.c.state == RunState.RUNNING)
    return (
        select(SHARDS.c.machine, func.count(), func.max(SHARDS.c.started_at))
        .where(
            SHARDS.c.run_id.in_(running),
            SHARDS.c.state == ShardState.RUNNING,
            _known(SHARDS.c.machine),
        )
        .group_by(SHARDS.c.machine)
    )


def _done(since: float) -> Select[Any]:
    """Machine, shards finished in the window, their busy seconds, the last end."""
    busy_s = func.sum(
        SHARDS.c.finished_at - func.coalesce(SHARDS.c.started_at, SHARDS.c.finished_at)
    )
    return (
        select(SHARDS.c.machine, func.count(), busy_s, func.max(SHARDS.c.finished_at))
        .where(
            SHARDS.c.run_id.in_(_window_runs(since)),
            SHARDS.c.state == ShardState.FINISHED,
            SHARDS.c.finished_at >= since,
            _known(SHARDS.c.machine),
        )
        .group_by(SHARDS.c.machine)
    )


def _lost(connection: Connection, since: float) -> Iterable[tuple[str, int, float]]:
    """Machine, leases it lost in the window, the last attempt it recorded under one.

    The shards handed out again (lease above 1) come first by the primary key; then,
    a run at a time, its attempts recorded under an earlier lease of one of them name
    the machine that held it: one range of ``attempts (run_id, node_id)`` per run with
    such a shard, the shard filtered row by row, not a range per shard.
    """
    reissued = select(SHARDS.c.run_id, SHARDS.c.shard_id, SHARDS.c.lease).where(
        SHARDS.c.run_id.in_(_window_runs(since)), SHARDS.c.lease > 1
    )
    lease_of: dict[str, dict[int, int]] = {}
    for run_id, shard_id, lease in connection.execute(reissued):
        lease_of.setdefault(run_id, {})[int(shard_id)] = int(lease)
    leases: dict[str, int] = {}
    last_at: dict[str, float] = {}
    for run_id, shards in sorted(lease_of.items()):
        held = (
            select(
                ATTEMPTS.c.machine,
                ATTEMPTS.c.shard_id,
                ATTEMPTS.c.lease,
                func.max(ATTEMPTS.c.finished_at),
            )
            .where(
                ATTEMPTS.c.run_id == run_id,
                ATTEMPTS.c.shard_id.in_(sorted(shards)),
                ATTEMPTS.c.lease < max(shards.values()),
                ATTEMPTS.c.finished_at >= since,
                ATTEMPTS.c.machine != "",
            )
            .group_by(ATTEMPTS.c.machine, ATTEMPTS.c.shard_id, ATTEMPTS.c.lease)
        )
        for machine, shard_id, lease, finished_at in connection.execute(held):
            if int(lease) < shards[int(shard_id)]:
                leases[machine] = leases.get(machine, 0) + 1
                last_at[machine] = max(last_at.get(machine, 0.0), float(finished_at))
    return [(machine, leases[machine], last_at[machine]) for machine in leases]


def _broken(since: float) -> Select[Any]:
    """Machine, outcome (crashed or timeout), attempts, the last one's end."""
    return (
        select(
            ATTEMPTS.c.machine,
            ATTEMPTS.c.outcome,
            func.count(),
            func.max(ATTEMPTS.c.finished_at),
        )
        .where(
            ATTEMPTS.c.run_id.in_(_window_runs(since)),
            ATTEMPTS.c.outcome.in_((Outcome.CRASHED, Outcome.TIMEOUT)),
            ATTEMPTS.c.finished_at >= since,
            ATTEMPTS.c.machine != "",
        )
        .group_by(ATTEMPTS.c.machine, ATTEMPTS.c.outcome)
    )


def _passed_elsewhere(since: float, examples: int) -> Select[Any]:
    """Per machine, its ``examples`` tests that most often failed on it and then passed
    on another machine, each row with the machine's totals.

    The failing attempts come from ``attempts (run_id, outcome, attempt)`` (every
    failing outcome named); the later pass is a probe of ``attempts (run_id, node_id)``.
    """
    later = ATTEMPTS.alias("later")
    passed_after = exists().where(
        later.c.run_id == ATTEMPTS.c.run_id,
        later.c.node_id == ATTEMPTS.c.node_id,
        later.c.attempt > ATTEMPTS.c.attempt,
        later.c.outcome == Outcome.PASSED,
        later.c.machine != ATTEMPTS.c.machine,
        later.c.machine != "",
    )
    per_test = (
        select(
            ATTEMPTS.c.machine,
            RUNS.c.project,
            ATTEMPTS.c.node_id,
            func.count().label("times"),
            func.max(ATTEMPTS.c.finished_at).label("last_at"),
        )
        .select_from(ATTEMPTS.join(RUNS, RUNS.c.id == ATTEMPTS.c.run_id))
        .where(
            ATTEMPTS.c.run_id.in_(_window_runs(since)),
            ATTEMPTS.c.outcome.in_(FAILURES),
            ATTEMPTS.c.finished_at >= since,
            ATTEMPTS.c.machine != "",
            passed_after,
        )
        .group_by(ATTEMPTS.c.machine, RUNS.c.project, ATTEMPTS.c.node_id)
        .subquery("per_test")
    )
    machine = per_test.c.machine
    ranked = select(
        per_test,
        func.sum(per_test.c.times).over(partition_by=machine).label("total"),
        func.max(per_test.c.last_at).over(partition_by=machine).label("machine_last_at"),
        func.row_number()
        .over(
            partition_by=machine,
            order_by=(per_test.c.times.desc(), per_test.c.last_at.desc(), per_test.c.node_id),
        )
        .label("rank"),
    ).subquery("ranked")
    return select(ranked).where(ranked.c.rank <= examples)


__all__ = ["PASSED_ELSEWHERE_SHOWN", "machine_activity"]
