"""Upgrading a database that has rows in it, on every backend: a results store made
by an older farm keeps its runs, attempts and history (from 0004, and from 0005,
whose attempts have no recorded module order)."""

from __future__ import annotations

import dataclasses

import pytest
from alembic import command
from sqlalchemy import Engine
from store_fakes import FakeClock

from farm.core.domain import ChangeRef, Outcome, RunState, Verdict
from farm.store import ResultStore
from farm.store.schema import alembic_config, current_revision

RUN = "a" * 32
HEAD = "0009"  # the newest revision: every upgrade ends there
ROWS_AT_0004 = [
    "INSERT INTO changes (id, repository, commit_sha, branch, pull_request, created_at) "
    "VALUES (1, 'repo', 'abcdef12', 'main', NULL, 5.0)",
    "INSERT INTO runs (id, change_id, project, trigger, settings_json, state, verdict, "
    "message, total_tests, estimated_makespan_s, created_at, finished_at) "
    f"VALUES ('{RUN}', 1, 'p', 'cli', '{{}}', 'finished', 'failed', 'boom', 2, 3.5, 6.0, 9.0)",
    "INSERT INTO attempts (run_id, shard_id, node_id, attempt, lease, outcome, duration_s, "
    "module_setup_s, worker, longrepr, output, started_at, finished_at, tally) VALUES "
    f"('{RUN}', 0, 't.py::a', 1, 1, 'failed', 1.5, 0.0, 'w1', 'tb', '', 7.0, 8.5, NULL), "
    f"('{RUN}', 0, 't.py::a', 2, 1, 'passed', 0.25, 0.0, 'w2', '', '', 8.5, 8.75, NULL)",
    "INSERT INTO test_history (project, node_id, duration_s, last_duration_s, samples, "
    "passes, failures, flaky_count, quarantined, updated_at) VALUES "
    "('p', 't.py::a', 2.0, 0.25, 4, 3, 1, 1, FALSE, 9.0), "
    "('p', 't.py::b', 1e-05, 1e-05, 1, 1, 0, 0, TRUE, 8.0)",
]


@pytest.fixture
def engine_at_0004(engine: Engine) -> Engine:
    """The store's database made by farm's migrations up to 0004, with rows in it."""
    with engine.connect() as connection:
        config = alembic_config()
        config.attributes["connection"] = connection
        command.upgrade(config, "0004")
        for statement in ROWS_AT_0004:
            connection.exec_driver_sql(statement)
        connection.commit()
        assert current_revision(connection) == "0004"
    return engine


class TestMigrationContract:
    def test_upgrading_keeps_runs_attempts_and_history(
        self, engine_at_0004: Engine, empty_db_url: str, clock: FakeClock
    ) -> None:
        with ResultStore.open(empty_db_url, clock=clock) as store:
            run = store.get_run(RUN)
            assert (run.state, run.verdict, run.message) == (
                RunState.FINISHED,
                Verdict.FAILED,
                "boom",
            )
            assert run.change == ChangeRef("repo", "abcdef12", "main")
            assert run.findings is None
            attempts = store.all_attempts(RUN)
            assert [(a.attempt, a.outcome, a.machine) for a in attempts] == [
                (1, Outcome.FAILED, ""),
                (2, Outcome.PASSED, ""),
            ]
            assert store.final_results(RUN)["t.py::a"].attempt == 2
            assert store.history("p").test_duration_s == {"t.py::a": 2.0, "t.py::b": 1e-05}

            stats = store.test_stats("p", ["t.py::a", "t.py::b"])
            a, b = stats["t.py::a"], stats["t.py::b"]
            assert (a.samples, a.passes, a.failures, a.flaky_runs) == (4, 3, 1, 1)
            assert (a.first_seen_at, a.last_seen_at, a.p50_s, a.p90_s) == (9.0, 9.0, 0.25, 0.25)
            assert (a.recent_outcomes, a.last_failure_at, a.quarantine) == ("", None, None)
            assert (b.first_seen_at, b.p50_s) == (8.0, 1e-05)
            # The old flag is gone: nothing ever set it, and an entry needs a reason.
            assert store.quarantine.current("p") == frozenset()

            # The upgraded store goes on as a new one would.
            store.update_history("p", store.all_attempts(RUN))
            again = store.test_stats("p", ["t.py::a"])["t.py::a"]
            assert (again.recent_outcomes, again.first_seen_at, again.samples) == ("k", 9.0, 6)
            assert (again.last_failure_at, again.last_failure_run) == (clock.now, RUN)
        with engine_at_0004.connect() as connection:
            assert current_revision(connection) == HEAD


ROWS_AT_0005 = [
    "INSERT INTO runs (id, change_id, project, trigger, settings_json, state, verdict, "
    "message, total_tests, estimated_makespan_s, created_at, finished_at, findings) "
    f"VALUES ('{RUN}', NULL, 'p', 'cli', '{{}}', 'finished', 'failed', '', 1, 1.0, 6.0, 9.0, "
    '\'{"failed": ["t.py::a"]}\')',
    "INSERT INTO attempts (run_id, shard_id, node_id, attempt, lease, outcome, duration_s, "
    "module_setup_s, worker, longrepr, output, started_at, finished_at, tally, machine) VALUES "
    f"('{RUN}', 0, 't.py::a', 1, 1, 'failed', 1.5, 0.0, 'w1', 'tb', '', 7.0, 8.5, NULL, 'h1')",
]


@pytest.fixture
def engine_at_0005(engine: Engine) -> Engine:
    """The store's database made by farm's migrations up to 0005, with rows in it."""
    with engine.connect() as connection:
        config = alembic_config()
        config.attributes["connection"] = connection
        command.upgrade(config, "0005")
        for statement in ROWS_AT_0005:
            connection.exec_driver_sql(statement)
        connection.commit()
        assert current_revision(connection) == "0005"
    return engine


class TestMigrationFrom0005:
    def test_attempts_keep_their_rows_and_have_no_module_order(
        self, engine_at_0005: Engine, empty_db_url: str, clock: FakeClock
    ) -> None:
        with ResultStore.open(empty_db_url, clock=clock) as store:
            (old,) = store.all_attempts(RUN)
            assert (old.outcome, old.machine, old.longrepr) == (Outcome.FAILED, "h1", "tb")
            assert (old.modules_before, old.modules_after) == (None, ())
            findings = store.get_run(RUN).findings
            assert findings is not None
            assert (findings.failed, findings.order_dependent) == (("t.py::a",), ())
            assert store.order.recent("p", "t.py::a")[0].modules_before is None

            # The upgraded store records the order as a new one would.
            again = dataclasses.replace(
                old, attempt=2, modules_before=("u.py",), modules_after=("v.py",)
            )
            store.record_results([again])
            newest = store.order.recent("p", "t.py::a")[0]
            assert (newest.modules_before, newest.modules_after) == (("u.py",), ("v.py",))
        with engine_at_0005.connect() as connection:
            assert current_revision(connection) == HEAD
