"""What the store says of each machine over a window, on every backend: busy slots,
shards done, and the lost shards, crashes, timeouts and tests that passed elsewhere
that point at a machine."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from sqlalchemy import Engine, event
from store_fakes import FakeClock, result

from farm.core.domain import Outcome, TestResult, Verdict
from farm.core.errors import UsageError
from farm.store import ResultStore, ShardRecord
from farm.store.dashboard_records import MachineActivity, PassedElsewhere

DAY_S = 24 * 3600.0
HOSTILE = "<script>alert('m')</script>"


def on(
    run_id: str,
    node_id: str,
    outcome: Outcome,
    *,
    machine: str,
    at: float,
    shard_id: int = 0,
    lease: int = 1,
    attempt: int = 1,
) -> TestResult:
    """An attempt of ``node_id`` on ``machine``, ended at ``at``."""
    made = result(run_id, node_id, outcome, attempt=attempt, shard_id=shard_id)
    return dataclasses.replace(
        made, machine=machine, lease=lease, started_at=at - 1.0, finished_at=at
    )


def started(store: ResultStore, clock: FakeClock, shards: int, project: str = "proj") -> str:
    run_id = store.create_run(project=project, trigger="ci", settings={})
    plan = [ShardRecord(shard_id, 1, 5.0) for shard_id in range(shards)]
    store.start_run(run_id, total_tests=shards, estimated_makespan_s=5.0, shards=plan)
    return run_id


def by_name(store: ResultStore, since: float, **options: int) -> dict[str, MachineActivity]:
    return {m.machine: m for m in store.dashboard.machines(since=since, **options)}


def test_a_machine_with_a_lost_shard_a_crash_and_a_test_that_passed_elsewhere(
    store: ResultStore, clock: FakeClock
) -> None:
    t0 = clock.now
    run_id = started(store, clock, 4)
    # Shard 0 runs on m-a: a pass, then a crash.
    store.shard_started(run_id, 0, worker="a-1", started_at=t0, machine="m-a")
    store.record_results(
        [
            on(run_id, "t.py::ok", Outcome.PASSED, machine="m-a", at=t0 + 1),
            on(run_id, "t.py::boom", Outcome.CRASHED, machine="m-a", at=t0 + 2),
        ]
    )
    store.shard_finished(run_id, 0, finished_at=t0 + 10)
    # Shard 1 starts on m-b, which records a pass and dies; it ends on m-a.
    store.shard_started(run_id, 1, worker="b-1", started_at=t0, machine="m-b")
    store.record_results(
        [on(run_id, "t.py::one", Outcome.PASSED, machine="m-b", at=t0 + 3, shard_id=1)]
    )
    store.shard_reissued(run_id, 1, lease=2)
    store.shard_started(run_id, 1, worker="a-2", started_at=t0 + 30, machine="m-a")
    two = on(run_id, "t.py::two", Outcome.PASSED, machine="m-a", at=t0 + 31, shard_id=1, lease=2)
    store.record_results([two])
    store.shard_finished(run_id, 1, finished_at=t0 + 35)
    # Shard 2 on m-b: a test fails and times out; shard 3 retries both on m-a and m-b.
    store.shard_started(run_id, 2, worker="b-2", started_at=t0 + 1, machine="m-b")
    store.record_results(
        [
            on(run_id, "t.py::flaky", Outcome.FAILED, machine="m-b", at=t0 + 4, shard_id=2),
            on(run_id, "t.py::slow", Outcome.TIMEOUT, machine="m-b", at=t0 + 5, shard_id=2),
        ]
    )
    store.shard_finished(run_id, 2, finished_at=t0 + 6)
    store.shard_started(run_id, 3, worker="a-1", started_at=t0 + 11, machine="m-a")
    store.record_results(
        [
            on(
                run_id,
                "t.py::flaky",
                Outcome.PASSED,
                machine="m-a",
                at=t0 + 12,
                shard_id=3,
                attempt=2,
            ),
            # Passed on the machine it crashed on: that points at no machine.
            on(
                run_id,
                "t.py::boom",
                Outcome.PASSED,
                machine="m-a",
                at=t0 + 13,
                shard_id=3,
                attempt=2,
            ),
        ]
    )
    store.shard_finished(run_id, 3, finished_at=t0 + 15)
    store.finish_run(run_id, verdict=Verdict.FLAKY)

    machines = by_name(store, since=t0 - DAY_S)
    assert sorted(machines) == ["m-a", "m-b"]
    a, b = machines["m-a"], machines["m-b"]
    assert (a.busy_slots, a.shards_done, a.busy_s) == (0, 3, 10.0 + 5.0 + 4.0)
    assert (a.shards_lost, a.crashed, a.timed_out, a.passed_elsewhere) == (0, 1, 0, 0)
    assert a.passed_elsewhere_tests == () and a.last_seen_at == t0 + 35
    assert (b.shards_done, b.busy_s, b.shards_lost, b.crashed, b.timed_out) == (1, 5.0, 1, 0, 1)
    assert b.passed_elsewhere == 1
    assert b.passed_elsewhere_tests == (PassedElsewhere("proj", "t.py::flaky", 1, t0 + 4),)
    assert b.last_seen_at == t0 + 6


def test_the_window_counts_only_what_happened_in_it(store: ResultStore, clock: FakeClock) -> None:
    old = clock.now
    run_id = started(store, clock, 1)
    store.shard_started(run_id, 0, worker="o-1", started_at=old, machine="m-old")
    store.record_results([on(run_id, "t.py::c", Outcome.CRASHED, machine="m-old", at=old + 1)])
    store.shard_finished(run_id, 0, finished_at=old + 2)
    clock.now += 10
    store.finish_run(run_id, verdict=Verdict.FAILED)
    clock.now += 3 * DAY_S

    assert by_name(store, since=clock.now - DAY_S) == {}
    wide = by_name(store, since=clock.now - 4 * DAY_S)
    assert (wide["m-old"].shards_done, wide["m-old"].crashed) == (1, 1)
    # Within a run alive in the window, rows from before it do not count.
    assert by_name(store, since=old + 1.5)["m-old"].crashed == 0


def test_running_shards_make_their_machine_busy_whatever_the_window(
    store: ResultStore, clock: FakeClock
) -> None:
    t0 = clock.now
    run_id = started(store, clock, 3)
    store.shard_started(run_id, 0, worker="c-1", started_at=clock.now, machine="m-c")
    store.shard_started(run_id, 1, worker="c-2", started_at=clock.now + 1, machine="m-c")
    store.shard_started(run_id, 2, worker=HOSTILE, started_at=clock.now, machine=HOSTILE)
    store.shard_finished(run_id, 2, finished_at=clock.now + 2)
    clock.now += 3 * DAY_S
    machines = by_name(store, since=clock.now - DAY_S)
    assert (machines["m-c"].busy_slots, machines["m-c"].last_seen_at) == (2, t0 + 1)
    # The running run is in the window, but its finished shard ended before it.
    assert HOSTILE not in machines
    assert by_name(store, since=0.0)[HOSTILE].shards_done == 1


def test_tests_that_passed_elsewhere_most_often_first_and_a_few(
    store: ResultStore, clock: FakeClock
) -> None:
    t0 = clock.now
    for project, repeats in (("p1", 2), ("p2", 1)):
        for _ in range(repeats):
            run_id = started(store, clock, 2, project=project)
            store.record_results(
                [
                    on(run_id, "t.py::x", Outcome.FAILED, machine="m-bad", at=t0 + 1),
                    on(run_id, "t.py::y", Outcome.ERROR, machine="m-bad", at=t0 + 2),
                    on(run_id, "t.py::y", Outcome.CRASHED, machine="m-bad", at=t0 + 3, attempt=2),
                    on(run_id, "t.py::y", Outcome.PASSED, machine="m-ok", at=t0 + 4, attempt=3),
                    on(run_id, "t.py::x", Outcome.PASSED, machine="m-ok", at=t0 + 5, attempt=2),
                    # A machine nobody knows is no other machine.
                    on(run_id, "t.py::z", Outcome.FAILED, machine="m-bad", at=t0 + 6),
                    on(run_id, "t.py::z", Outcome.PASSED, machine="", at=t0 + 7, attempt=2),
                ]
            )
            store.finish_run(run_id, verdict=Verdict.FLAKY)
    bad = by_name(store, since=t0 - DAY_S, examples=2)["m-bad"]
    assert bad.passed_elsewhere == 3 * 3 and bad.crashed == 3
    assert bad.passed_elsewhere_tests == (
        PassedElsewhere("p1", "t.py::y", 4, t0 + 3),
        PassedElsewhere("p2", "t.py::y", 2, t0 + 3),  # as often as p1's x, but later
    )
    assert "" not in by_name(store, since=t0 - DAY_S)


def test_examples_must_be_one_or_more(store: ResultStore) -> None:
    with pytest.raises(UsageError):
        store.dashboard.machines(since=0.0, examples=0)


def test_a_lease_that_recorded_nothing_names_no_machine(
    store: ResultStore, clock: FakeClock
) -> None:
    run_id = started(store, clock, 1)
    store.shard_started(run_id, 0, worker="d-1", started_at=clock.now, machine="m-dead")
    store.shard_reissued(run_id, 0, lease=2)
    store.shard_started(run_id, 0, worker="e-1", started_at=clock.now + 5, machine="m-e")
    store.shard_finished(run_id, 0, finished_at=clock.now + 6)
    machines = by_name(store, since=clock.now - DAY_S)
    assert sorted(machines) == ["m-e"] and machines["m-e"].shards_lost == 0


def test_attempts_and_shards_are_read_through_indexes(
    store: ResultStore, clock: FakeClock, engine: Engine
) -> None:
    if engine.dialect.name != "sqlite":
        pytest.skip("the plan is read with SQLite's EXPLAIN QUERY PLAN")
    t0 = clock.now
    run_id = started(store, clock, 2)
    store.shard_started(run_id, 0, worker="a-1", started_at=t0, machine="m-a")
    store.record_results([on(run_id, "t.py::a", Outcome.FAILED, machine="m-a", at=t0 + 1)])
    store.shard_reissued(run_id, 0, lease=2)
    statements: list[tuple[str, Any]] = []

    def seen(conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        statements.append((statement, parameters))

    event.listen(Engine, "before_cursor_execute", seen)
    try:
        store.dashboard.machines(since=t0 - DAY_S)
    finally:
        event.remove(Engine, "before_cursor_execute", seen)
    reads = [(sql, params) for sql, params in statements if sql.lstrip().startswith("SELECT")]
    assert len(reads) >= 5
    with engine.connect() as connection:
        for sql, params in reads:
            plan = connection.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, params).all()
            steps = [str(row[-1]) for row in plan]
            scans = [step for step in steps if step.startswith("SCAN attempts")]
            assert not scans and not any(step.startswith("SCAN shards") for step in steps), steps
