"""What the store keeps for --resume, on SQLite and PostgreSQL alike."""

from __future__ import annotations

from store_fakes import FakeClock

from farm.core.domain import RunState, Verdict
from farm.store import ResultStore, ShardRecord


def started_run(store: ResultStore) -> str:
    run_id = store.create_run(project="p", trigger="cli", settings={})
    store.start_run(
        run_id, total_tests=3, estimated_makespan_s=1.0,
        shards=[ShardRecord(0, 2, 0.5), ShardRecord(1, 1, 0.5)],
    )  # fmt: skip
    return run_id


def test_shard_tests_round_trip_with_hostile_names(store: ResultStore) -> None:
    run_id = started_run(store)
    names = ("t.py::a[\x00<b>é]", "t.py::b[\ufffd\ue000]")
    store.save_shard_tests(run_id, {0: names, 1: ("u.py::c",)})
    assert store.load_run_tests(run_id) == {0: names, 1: ("u.py::c",)}


def test_a_silent_scheduler_makes_its_run_abandoned_and_resume_reopens_it(
    store: ResultStore, clock: FakeClock
) -> None:
    silent, alive = started_run(store), started_run(store)
    clock.now = 1000.0
    store.heartbeat(silent)
    clock.now = 1050.0
    store.heartbeat(alive)
    clock.now = 1100.0
    assert store.mark_abandoned(deadline_s=60) == 1
    run = store.get_run(silent)
    assert (run.state, run.verdict) == (RunState.ABANDONED, Verdict.ERROR)
    assert "no heartbeat for over 60s" in run.message
    assert store.get_run(alive).state is RunState.RUNNING
    clock.now = 1200.0
    store.reopen_run(silent)
    again = store.get_run(silent)
    assert (again.state, again.verdict, again.heartbeat_at) == (RunState.RUNNING, None, 1200.0)


def test_node_ids_with_nul_come_back_exactly(store: ResultStore) -> None:
    from farm.core.domain import Outcome, TestResult

    run_id = started_run(store)
    ids = ["a[\x00]", "b[\ue000\x00]", "c[\ue000\ue002]", "d[\ue000\ue001]"]
    store.record_results(
        [TestResult(run_id, 0, 1, node_id, Outcome.PASSED, 0.1) for node_id in ids]
    )
    assert sorted(store.final_results(run_id)) == sorted(ids)
    store.update_history("p", list(store.final_results(run_id).values()))
    assert sorted(store.history("p").test_duration_s) == sorted(ids)
