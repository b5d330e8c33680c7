"""What the store keeps for --resume, on SQLite and PostgreSQL alike."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from farm.core.domain import RunState, Verdict
from farm.store import ResultStore, ShardRecord
from farm.store.recovery import load_run_tests, mark_abandoned, reopen_run, save_shard_tests


@pytest.fixture
def store(empty_db_url: str) -> Iterator[ResultStore]:
    with ResultStore.open(empty_db_url) as opened:
        yield opened


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
    save_shard_tests(store, run_id, {0: names, 1: ("u.py::c",)})
    assert load_run_tests(store, run_id) == {0: names, 1: ("u.py::c",)}


def test_a_silent_scheduler_makes_its_run_abandoned_and_resume_reopens_it(
    store: ResultStore,
) -> None:
    silent, alive = started_run(store), started_run(store)
    store.heartbeat(silent, at=1000.0)
    store.heartbeat(alive, at=1050.0)
    assert mark_abandoned(store, deadline_s=60, now=1100.0) == 1
    run = store.get_run(silent)
    assert (run.state, run.verdict) == (RunState.ABANDONED, Verdict.ERROR)
    assert "no heartbeat for over 60s" in run.message
    assert store.get_run(alive).state is RunState.RUNNING
    reopen_run(store, silent, now=1200.0)
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
