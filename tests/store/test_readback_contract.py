"""The store's contract for what warm and resumed runs read back, on every backend:
the collection cache, each shard's tests, abandoned and reopened runs, and the
store's one clock behind every timestamp it writes."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine
from store_fakes import FakeClock, new_run, result

from farm.core.domain import ChangeRef, Collection, Outcome, RunState, Verdict
from farm.core.errors import UsageError
from farm.core.pytest_options import PytestOptions
from farm.store import ResultStore, request_key


class TestReadBackContract:
    # -- the collection cache ----------------------------------------------------------

    def test_collection_cache_round_trip(
        self, store: ResultStore, engine: Engine, clock: FakeClock
    ) -> None:
        key = request_key("/src", ["tests"], ["-x"])
        assert store.collection_cache.load(key) is None
        collection = Collection(
            "/src", "pytest.ini", ("t.py::a[\x00é]", "t.py::b"), ("t.py",), 2, 1,
            PytestOptions(1, "fEs"),
        )  # fmt: skip
        store.collection_cache.save(key, collection)
        assert store.collection_cache.load(key) == collection  # modules too: --lf counts files
        clock.now += 5
        again = Collection("/src", "", ("t.py::c",))
        store.collection_cache.save(key, again)
        assert store.collection_cache.load(key) == again
        with engine.connect() as connection:
            stamps = connection.exec_driver_sql("SELECT updated_at FROM collection_cache").all()
        assert stamps == [(clock.now,)]

    def test_a_damaged_cached_collection_is_no_collection(
        self, store: ResultStore, engine: Engine
    ) -> None:
        store.collection_cache.save("k", Collection("/src", "", ("t.py::a",)))
        with engine.begin() as connection:
            connection.exec_driver_sql("UPDATE collection_cache SET facts = '{}'")
        assert store.collection_cache.load("k") is None

    # -- resuming a run ------------------------------------------------------------------

    def test_shard_tests_round_trip(self, store: ResultStore) -> None:
        run_id = new_run(store)
        assert store.load_run_tests(run_id) == {}
        store.save_shard_tests(run_id, {})
        store.save_shard_tests(run_id, {2: ["b.py::t"], 0: ("a.py::t1", "a.py::t2")})
        store.save_shard_tests(run_id, {1: []})
        assert store.load_run_tests(run_id) == {
            0: ("a.py::t1", "a.py::t2"),
            1: (),
            2: ("b.py::t",),
        }
        assert store.load_run_tests(new_run(store)) == {}

    def test_mark_abandoned_decides_by_the_store_clock(
        self, store: ResultStore, engine: Engine, clock: FakeClock
    ) -> None:
        started = new_run(store)
        store.start_run(started, total_tests=1, estimated_makespan_s=1.0, shards=[])
        pending, finished, silent_from_birth = new_run(store), new_run(store), new_run(store)
        store.start_run(finished, total_tests=1, estimated_makespan_s=1.0, shards=[])
        store.finish_run(finished, verdict=Verdict.PASSED)
        store.start_run(silent_from_birth, total_tests=1, estimated_makespan_s=1.0, shards=[])
        with engine.begin() as connection:
            connection.exec_driver_sql(
                f"UPDATE runs SET heartbeat_at = NULL WHERE id = '{silent_from_birth}'"
            )

        clock.now += 30
        assert store.mark_abandoned(deadline_s=30) == 0  # silent for exactly the deadline
        store.heartbeat(started)
        clock.now += 0.5
        assert store.mark_abandoned(deadline_s=30) == 1  # never heard from: counts from birth
        assert store.get_run(silent_from_birth).state is RunState.ABANDONED
        clock.now += 29.5
        assert store.mark_abandoned(deadline_s=30) == 0
        assert store.get_run(started).state is RunState.RUNNING
        clock.now += 1
        assert store.mark_abandoned(deadline_s=30) == 1
        run = store.get_run(started)
        assert (run.state, run.verdict) == (RunState.ABANDONED, Verdict.ERROR)
        assert run.message == "its scheduler stopped: no heartbeat for over 30s"
        assert store.get_run(pending).state is RunState.PENDING
        assert store.get_run(finished).state is RunState.FINISHED
        assert store.mark_abandoned(deadline_s=30) == 0

    def test_reopen_run_makes_an_abandoned_run_alive_now(
        self, store: ResultStore, clock: FakeClock
    ) -> None:
        run_id = new_run(store)
        store.start_run(run_id, total_tests=1, estimated_makespan_s=1.0, shards=[])
        clock.now += 100
        assert store.mark_abandoned(deadline_s=10) == 1
        clock.now += 100
        store.reopen_run(run_id)
        run = store.get_run(run_id)
        assert (run.state, run.verdict, run.message) == (RunState.RUNNING, None, "")
        assert (run.heartbeat_at, run.finished_at) == (clock.now, None)
        assert store.mark_abandoned(deadline_s=10) == 0
        with pytest.raises(UsageError, match="no run 'nope'"):
            store.reopen_run("nope")

    # -- the clock ------------------------------------------------------------------------

    def test_every_timestamp_the_store_writes_is_its_clocks(
        self, empty_db_url: str, engine: Engine
    ) -> None:
        at = 1_234_567.5
        with ResultStore.open(empty_db_url, clock=lambda: at) as store:
            run_id = store.create_run(
                project="p", trigger="ci", settings={}, change=ChangeRef("repo", "abc")
            )
            store.start_run(run_id, total_tests=1, estimated_makespan_s=1.0, shards=[])
            store.heartbeat(run_id)
            store.finish_run(run_id, verdict=Verdict.PASSED)
            store.update_history("p", [result(run_id, "t.py::a", module_setup_s=1.0)])
            store.update_history("p", [result(run_id, "t.py::c", Outcome.FAILED)])
            store.import_durations("p", {"t.py::b": 2.0})
            store.quarantine.add("p", "t.py::a", reason="x", owner="", actor="bo")
            store.collection_cache.save("k", Collection("/src", "", ("t.py::a",)))
            run = store.get_run(run_id)
        assert (run.created_at, run.started_at, run.heartbeat_at, run.finished_at) == (at,) * 4
        stamps = [
            ("created_at", "changes"),
            ("updated_at", "test_history"),
            ("first_seen_at", "test_history"),
            ("last_failure_at", "test_history WHERE last_failure_at IS NOT NULL"),
            ("updated_at", "module_history"),
            ("since_at", "quarantine"),
            ("at", "quarantine_events"),
            ("updated_at", "collection_cache"),
        ]
        with engine.connect() as connection:
            for column, table in stamps:
                found = connection.exec_driver_sql(f"SELECT DISTINCT {column} FROM {table}").all()
                assert found == [(at,)], table


def test_request_key_is_a_pure_function_of_the_request() -> None:
    key = request_key("/src", ["tests"], ["-x"])
    assert len(key) == 64 and key == request_key("/src", ("tests",), ("-x",))
    others = {
        request_key("/other", ["tests"], ["-x"]),
        request_key("/src", ["tests", "more"], ["-x"]),
        request_key("/src", ["tests"], []),
        request_key("/src", [], ["tests", "-x"]),
    }
    assert key not in others and len(others) == 4
