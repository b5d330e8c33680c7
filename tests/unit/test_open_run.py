"""OpenRun, the run under way, on a real SQLite store with recording fakes for the
broker's Redis, the Celery producer and the results stream, and a moved clock."""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from pathlib import Path

import pytest
from test_run_parts import FakeRedis
from test_session import Clock, FakeReader

from farm.core.domain import Collection, History, Outcome, RunState, TestResult, Verdict
from farm.core.errors import CollectionError
from farm.core.messages import Event, ShardEnd, ShardStart
from farm.core.settings import Settings
from farm.core.shard_task import ShardTask
from farm.run.conduct import OpenRun, RunParts
from farm.run.ledger import RunLedger
from farm.run.planner import Planner
from farm.run.records import shard_template
from farm.run.request import RunRequest
from farm.store import ResultStore

COLLECTION = Collection("/suite", "", ("t.py::a", "t.py::b", "u.py::c"))
REQUEST = RunRequest(("tests",), (), Path("/suite"), {})


class RecordingDispatcher:
    def __init__(self) -> None:
        self.sent: list[ShardTask] = []

    def send(self, tasks: Sequence[ShardTask]) -> None:
        self.sent.extend(tasks)

    def close(self) -> None:
        pass


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ResultStore]:
    with ResultStore.open(f"sqlite:///{tmp_path / 'farm.db'}") as opened:
        yield opened


def open_run(
    store: ResultStore, batches: list[list[Event]], clock: Clock
) -> tuple[OpenRun, FakeRedis, RecordingDispatcher]:
    settings = Settings(workers=2)
    client, dispatcher = FakeRedis(), RecordingDispatcher()
    parts = RunParts(
        settings, client, store, dispatcher, None, io.StringIO(), clock,  # type: ignore[arg-type]
        started_at=1.0, events=lambda run_id: FakeReader(batches),
    )  # fmt: skip
    planner = Planner(History({}, {}), workers=2, strategy="lpt", shard_overhead_s=0.3)
    ledger = RunLedger.create(store, project="proj", settings={})
    template = shard_template(settings, ledger.run_id, (), COLLECTION, None)
    first = planner.shards(COLLECTION.node_ids, template)
    ledger.start(first, total_tests=3)
    run = OpenRun(
        parts, request=REQUEST, ledger=ledger, planner=planner, code=None,
        first=first, total_tests=3, settled=True,
    )  # fmt: skip
    return run, client, dispatcher


def results_for(run: OpenRun, outcome: Outcome) -> list[Event]:
    events: list[Event] = []
    for task in run.session.tasks:
        events.append(ShardStart(task.run_id, task.shard_id, 1, "w:1", 100.0, machine="m"))
        events += [
            TestResult(task.run_id, task.shard_id, 1, n, outcome, 0.5) for n in task.node_ids
        ]
        events.append(ShardEnd(task.run_id, task.shard_id, 1, "w:1", 101.0, 0))
    return events


def test_a_run_finishes_with_its_verdict_stored_and_its_history_learned(
    store: ResultStore,
) -> None:
    clock, batches = Clock(), []  # type: ignore[var-annotated]
    run, client, dispatcher = open_run(store, batches, clock)
    batches.append(results_for(run, Outcome.PASSED))
    with run:
        run.start()
        finished = run.finish(COLLECTION)
        assert not client.values  # cancelled only on the way out
    assert sorted(t.shard_id for t in dispatcher.sent) == [t.shard_id for t in run.session.tasks]
    summary = finished.summary
    assert (summary.verdict, summary.collected, len(summary.results)) == (Verdict.PASSED, 3, 3)
    assert summary.started_at == 1.0
    stored = store.get_run(run.ledger.run_id)
    assert (stored.state, stored.verdict) == (RunState.FINISHED, Verdict.PASSED)
    assert set(store.history("proj").test_duration_s) == set(COLLECTION.node_ids)
    assert list(client.values) == [f"farm:run:{run.ledger.run_id}:cancel"]
    assert set(finished.estimates_s) == set(COLLECTION.node_ids)


def test_tests_learned_later_get_new_shards_in_the_ledger_and_the_session(
    store: ResultStore,
) -> None:
    run, _, dispatcher = open_run(store, [], Clock())
    with run:
        run.start()
        first_ids = {t.shard_id for t in run.session.tasks}
        run.dispatch_more(["v.py::d"], COLLECTION)
    added = [t for t in dispatcher.sent if t.shard_id not in first_ids]
    assert [t.node_ids for t in added] == [("v.py::d",)]
    assert added[0].shard_id > max(first_ids)
    assert store.get_run(run.ledger.run_id).total_tests == 4
    assert store.load_run_tests(run.ledger.run_id)[added[0].shard_id] == ("v.py::d",)


def test_a_failed_collection_ends_the_run_with_an_error_and_is_raised(
    store: ResultStore,
) -> None:
    run, _, _ = open_run(store, [], Clock())
    failing: Future[Collection] = Future()
    failing.set_exception(CollectionError("t.py: SyntaxError", "", ()))
    with run, pytest.raises(CollectionError):
        run.collected(failing)
    stored = store.get_run(run.ledger.run_id)
    assert stored.verdict is Verdict.ERROR and "SyntaxError" in stored.message


def test_a_run_whose_workers_are_lost_ends_with_an_error_not_a_pass(store: ResultStore) -> None:
    clock = Clock()
    run, _, _ = open_run(store, [], clock)
    with run:
        run.start()
        finished = run.finish(COLLECTION, failed="no live worker")
    assert finished.summary.verdict is Verdict.ERROR
    assert "no live worker" in finished.summary.message
    assert store.get_run(run.ledger.run_id).verdict is Verdict.ERROR
