"""The results store's contract, run against every backend (SQLite, PostgreSQL)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect, select
from store_fakes import FakeClock, new_run, result

from farm.core.domain import ChangeRef, Outcome, RunState, Verdict
from farm.core.errors import StoreError, UsageError
from farm.store import (
    MAX_TEXT_CHARS,
    ResultStore,
    ShardRecord,
    ShardState,
)
from farm.store.models import Base, TestHistory
from farm.store.schema import current_revision, head_revision

TABLES = {
    "changes",
    "runs",
    "shards",
    "attempts",
    "test_history",
    "module_history",
    "collection_cache",
    "shard_tests",
    "quarantine",
    "quarantine_events",
}


class TestResultStoreContract:
    def test_open_migrates_an_empty_database_to_head(
        self, store: ResultStore, engine: Engine
    ) -> None:
        with engine.connect() as connection:
            assert current_revision(connection) == head_revision() == "0009"
            assert set(inspect(connection).get_table_names()) >= TABLES

    def test_migrations_create_what_the_models_describe(
        self, store: ResultStore, engine: Engine
    ) -> None:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []

    def test_reopen_is_idempotent_and_keeps_data(self, empty_db_url: str) -> None:
        with ResultStore.open(empty_db_url) as first:
            run_id = new_run(first)
        with ResultStore.open(empty_db_url) as second, ResultStore.open(empty_db_url) as third:
            assert second.get_run(run_id).project == "proj"
            assert third.get_run(run_id).state is RunState.PENDING

    def test_concurrent_opens_of_an_empty_database_all_succeed(self, empty_db_url: str) -> None:
        # A run and the dashboard may open a new database at the same moment.
        barrier = threading.Barrier(4)

        def open_and_close(_: int) -> str | None:
            barrier.wait()
            with ResultStore.open(empty_db_url) as opened:
                return opened.url

        with ThreadPoolExecutor(4) as pool:
            assert len(set(pool.map(open_and_close, range(4)))) == 1

    def test_run_lifecycle(self, store: ResultStore, clock: FakeClock) -> None:
        change = ChangeRef("github.com/o/r", "abc123", "main", "42", "ana")
        run_id = store.create_run(
            project="proj",
            trigger="ci",
            settings={"workers": 4, "paths": ["tests"]},
            change=change,
            snapshot_digest="sha256:ff",
        )
        assert len(run_id) == 32
        run = store.get_run(run_id)
        assert (run.state, run.verdict, run.trigger) == (RunState.PENDING, None, "ci")
        assert dict(run.settings) == {"workers": 4, "paths": ["tests"]}
        assert run.change == change
        assert run.snapshot_digest == "sha256:ff"
        assert (run.created_at, run.started_at, run.finished_at) == (clock.now, None, None)

        clock.now += 1
        shards = [ShardRecord(0, 3, 5.0), ShardRecord(1, 2, 4.5)]
        store.start_run(run_id, total_tests=5, estimated_makespan_s=5.0, shards=shards)
        run = store.get_run(run_id)
        assert run.state is RunState.RUNNING
        assert (run.total_tests, run.estimated_makespan_s) == (5, 5.0)
        assert run.started_at == run.heartbeat_at == clock.now
        views = store.get_shards(run_id)
        assert [(v.shard_id, v.test_count, v.estimate_s) for v in views] == [
            (0, 3, 5.0),
            (1, 2, 4.5),
        ]
        assert all(v.state is ShardState.PENDING and v.lease == 1 for v in views)

        store.shard_started(run_id, 1, worker="w1", started_at=12.0, machine="host-a")
        store.shard_finished(run_id, 1, finished_at=15.0)
        store.shard_started(run_id, 0, worker="w2", started_at=12.5)
        first, second = store.get_shards(run_id)
        assert (first.state, first.worker, first.machine) == (ShardState.RUNNING, "w2", None)
        assert (second.state, second.worker, second.machine) == (
            ShardState.FINISHED,
            "w1",
            "host-a",
        )
        assert (second.started_at, second.finished_at) == (12.0, 15.0)

        clock.now = 1_000_005.0
        store.heartbeat(run_id)
        assert store.get_run(run_id).heartbeat_at == 1_000_005.0

        clock.now += 10
        store.finish_run(run_id, verdict=Verdict.FAILED, message="2 tests failed")
        run = store.get_run(run_id)
        assert (run.state, run.verdict, run.message) == (
            RunState.FINISHED,
            Verdict.FAILED,
            "2 tests failed",
        )
        assert run.finished_at == clock.now

    def test_abandoned_run(self, store: ResultStore) -> None:
        run_id = new_run(store)
        store.finish_run(run_id, verdict=Verdict.ERROR, message="lost", state=RunState.ABANDONED)
        run = store.get_run(run_id)
        assert (run.state, run.verdict) == (RunState.ABANDONED, Verdict.ERROR)

    def test_runs_of_one_commit_share_a_change(self, store: ResultStore, engine: Engine) -> None:
        def run_of(change: ChangeRef | None) -> str:
            return store.create_run(project="p", trigger="ci", settings={}, change=change)

        first = run_of(ChangeRef("repo", "abc"))
        second = run_of(ChangeRef("repo", "abc", "main", "7"))
        other = run_of(ChangeRef("repo", "def"))
        assert store.get_run(first).change == ChangeRef("repo", "abc", "main", "7")
        assert store.get_run(second).change == store.get_run(first).change
        assert store.get_run(other).change == ChangeRef("repo", "def")
        # Later runs update what they name, and leave what they do not as it was.
        run_of(ChangeRef("repo", "abc", "topic", "", "bo"))
        assert store.get_run(first).change == ChangeRef("repo", "abc", "topic", "7", "bo")
        with engine.connect() as connection:
            assert connection.exec_driver_sql("SELECT count(*) FROM changes").scalar() == 2
            unknown = "SELECT author FROM changes WHERE commit_sha = 'def'"
            assert connection.exec_driver_sql(unknown).scalar() is None  # "" is stored as NULL

    def test_a_change_without_a_commit_is_no_change(self, store: ResultStore) -> None:
        run_id = store.create_run(project="p", trigger="ci", settings={}, change=ChangeRef("r", ""))
        assert store.get_run(run_id).change is None

    def test_final_results_keep_the_last_attempt(self, store: ResultStore) -> None:
        run_id = new_run(store)
        store.record_results(
            [
                result(run_id, "a.py::t1", Outcome.FAILED, longrepr="boom"),
                result(run_id, "a.py::t2", Outcome.PASSED, 0.5),
                result(run_id, "b.py::t3", Outcome.SKIPPED, 0.0, longrepr="no db"),
            ]
        )
        store.record_results([result(run_id, "a.py::t1", Outcome.PASSED, 2.0, attempt=2)])
        final = store.final_results(run_id)
        assert list(final) == ["a.py::t1", "a.py::t2", "b.py::t3"]
        assert (final["a.py::t1"].outcome, final["a.py::t1"].attempt) == (Outcome.PASSED, 2)
        assert final["a.py::t1"].duration_s == 2.0
        assert final["b.py::t3"] == result(
            run_id, "b.py::t3", Outcome.SKIPPED, 0.0, longrepr="no db"
        )

    def test_results_text_is_made_storable(self, store: ResultStore) -> None:
        run_id = new_run(store)
        huge = "x" * (MAX_TEXT_CHARS * 2)
        store.record_results([result(run_id, "a.py::t", output=huge, longrepr="nul\x00byte")])
        stored = store.final_results(run_id)["a.py::t"]
        assert stored.longrepr == "nul\\x00byte"
        assert len(stored.output) == MAX_TEXT_CHARS
        assert stored.output.endswith("clipped by farm ...]")

    def test_record_nothing_is_a_no_op(self, store: ResultStore) -> None:
        run_id = new_run(store)
        store.record_results([])
        assert store.final_results(run_id) == {}

    def test_unknown_run(self, store: ResultStore) -> None:
        calls: list[Callable[[], object]] = [
            lambda: store.get_run("nope"),
            lambda: store.final_results("nope"),
            lambda: store.start_run("nope", total_tests=0, estimated_makespan_s=0, shards=[]),
            lambda: store.finish_run("nope", verdict=Verdict.PASSED),
            lambda: store.shard_started("nope", 0, worker="w", started_at=0.0),
            lambda: store.heartbeat("nope"),
            lambda: store.reopen_run("nope"),
        ]
        for call in calls:
            with pytest.raises(UsageError, match="no run 'nope'"):
                call()

    def test_unknown_shard(self, store: ResultStore) -> None:
        run_id = new_run(store)
        with pytest.raises(UsageError, match="has no shard 3"):
            store.shard_finished(run_id, 3, finished_at=1.0)

    def test_results_of_an_unknown_run_are_refused(self, store: ResultStore) -> None:
        with pytest.raises(StoreError, match="cannot record 1 results") as raised:
            store.record_results([result("f" * 32, "a.py::t")])
        assert "\n" not in str(raised.value)

    def test_history_is_an_ewma_of_durations(
        self, store: ResultStore, engine: Engine, clock: FakeClock
    ) -> None:
        store.update_history(
            "proj",
            [
                result("r1", "a.py::t1", duration_s=10.0),
                result("r1", "a.py::t2", Outcome.FAILED, 4.0),
                result("r1", "a.py::t3", Outcome.SKIPPED, 0.0),
            ],
        )
        assert store.history("proj").test_duration_s == {"a.py::t1": 10.0, "a.py::t2": 4.0}
        clock.now += 60
        store.update_history(
            "proj",
            [
                result("r2", "a.py::t1", duration_s=20.0),
                result("r2", "a.py::t2", Outcome.FAILED, 2.0),
                result("r2", "a.py::t2", Outcome.PASSED, 6.0, attempt=2),
                result("r2", "a.py::t1", Outcome.SKIPPED, 0.0, attempt=2),
            ],
        )
        durations = store.history("proj").test_duration_s
        assert durations["a.py::t1"] == pytest.approx(0.3 * 20 + 0.7 * 10)
        after_retry = 0.3 * 2 + 0.7 * 4
        assert durations["a.py::t2"] == pytest.approx(0.3 * 6 + 0.7 * after_retry)
        assert store.history("other").test_duration_s == {}

        columns = TestHistory.__table__.c
        query = select(
            columns.node_id,
            columns.last_duration_s,
            columns.samples,
            columns.passes,
            columns.failures,
            columns.flaky_count,
            columns.updated_at,
        ).order_by(columns.node_id)
        with engine.connect() as connection:
            rows = [tuple(row) for row in connection.execute(query)]
        assert rows == [
            ("a.py::t1", 20.0, 2, 2, 0, 0, clock.now),
            ("a.py::t2", 6.0, 3, 1, 2, 1, clock.now),
        ]

    def test_history_learns_module_setup(self, store: ResultStore) -> None:
        store.update_history(
            "proj",
            [
                result("r1", "pkg/test_db.py::TestA::t1", module_setup_s=3.0),
                result("r1", "pkg/test_db.py::TestA::t2"),
                result("r1", "pkg/test_web.py::t1", Outcome.SKIPPED, module_setup_s=1.0),
            ],
        )
        store.update_history("proj", [result("r2", "pkg/test_db.py::t9", module_setup_s=5.0)])
        modules = store.history("proj").module_setup_s
        assert modules == {
            "pkg/test_db.py": pytest.approx(0.3 * 5 + 0.7 * 3),
            "pkg/test_web.py": 1.0,
        }

    def test_ewma_alpha_is_configurable(self, empty_db_url: str) -> None:
        with ResultStore.open(empty_db_url, ewma_alpha=0.5) as store:
            store.update_history("p", [result("r", "t.py::a", duration_s=2.0)])
            store.update_history("p", [result("r", "t.py::a", duration_s=4.0)])
            assert store.history("p").test_duration_s == {"t.py::a": 3.0}
        with pytest.raises(UsageError, match="alpha"):
            ResultStore.open(empty_db_url, ewma_alpha=0.0)

    def test_import_and_export_durations(self, store: ResultStore) -> None:
        store.update_history("proj", [result("r", "a.py::t1", duration_s=9.0)] * 3)
        count = store.import_durations("proj", {"a.py::t1": 1.5, "b.py::t2": 0.25})
        assert count == 2
        assert store.export_durations("proj") == {"a.py::t1": 1.5, "b.py::t2": 0.25}
        store.update_history("proj", [result("r", "b.py::t2", duration_s=1.25)])
        assert store.export_durations("proj")["b.py::t2"] == pytest.approx(0.3 * 1.25 + 0.7 * 0.25)
        assert store.import_durations("proj", {}) == 0
        with pytest.raises(UsageError, match="negative"):
            store.import_durations("proj", {"c.py::t": -1.0})
        assert store.export_durations("empty") == {}

    def test_has_runs_is_per_project(self, store: ResultStore) -> None:
        assert not store.has_runs("proj")
        new_run(store, project="proj")
        assert store.has_runs("proj") and not store.has_runs("other")

    def test_ten_thousand_results_round_trip(self, store: ResultStore) -> None:
        run_id = new_run(store)
        results = [
            result(
                run_id,
                f"tests/test_m{i % 250}.py::test_{i}",
                Outcome.FAILED if i % 97 == 0 else Outcome.PASSED,
                duration_s=i / 1000,
                shard_id=i % 16,
                module_setup_s=0.5 if i < 250 else 0.0,
            )
            for i in range(10_000)
        ]
        store.record_results(results)
        store.update_history("proj", results)
        store.update_history("proj", results)
        final = store.final_results(run_id)
        assert len(final) == 10_000
        assert final["tests/test_m3.py::test_9003"] == results[9003]
        history = store.history("proj")
        assert len(history.test_duration_s) == 10_000
        assert history.test_duration_s["tests/test_m7.py::test_4007"] == pytest.approx(4.007)
        assert len(history.module_setup_s) == 250


def test_sqlite_in_a_missing_directory_is_a_store_error(tmp_path: object) -> None:
    url = f"sqlite:///{tmp_path}/no/such/dir/farm.db"
    with pytest.raises(StoreError) as raised:
        ResultStore.open(url)
    message = str(raised.value)
    assert message.startswith(f"cannot open results store {url}: ")
    assert "unable to open database file" in message
    assert "\n" not in message
    assert raised.value.__cause__ is not None


def test_closed_postgres_port_is_a_store_error_with_the_password_masked() -> None:
    url = "postgresql://farm:s3cret-pw@127.0.0.1:1/farm"
    with pytest.raises(StoreError) as raised:
        ResultStore.open(url)
    message = str(raised.value)
    assert message.startswith("cannot open results store postgresql://farm:***@127.0.0.1:1/farm: ")
    assert "s3cret-pw" not in message
    assert "\n" not in message
    assert raised.value.__cause__ is not None


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("mysql://u:pw@h/db", "unsupported database 'mysql'"),
        ("not a url", "Could not parse"),
    ],
)
def test_unsupported_or_malformed_url_is_a_store_error(url: str, expected: str) -> None:
    with pytest.raises(StoreError, match=expected) as raised:
        ResultStore.open(url)
    assert "pw" not in str(raised.value)
