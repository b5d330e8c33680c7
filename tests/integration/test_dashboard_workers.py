"""The Workers page and its JSON twin, read from a real registry in Redis and a real
results store; what a worker or a test calls itself is shown as text, never as markup."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest
import redis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from markupsafe import escape
from store_fakes import FakeClock, result

from farm.core.domain import Outcome, TestResult, Verdict
from farm.core.keys import Keys
from farm.server.pages import page_environment, worker_routes
from farm.store import ResultStore, ShardRecord
from farm.worker.registry import WorkerInfo, WorkerRegistry

pytestmark = pytest.mark.integration

HOSTILE = "<script>alert('farm')</script>"
NOW = 1_000_000.0


@pytest.fixture
def registry(redis_url: str, key_prefix: str) -> Iterator[WorkerRegistry]:
    client = redis.Redis.from_url(redis_url)
    try:
        yield WorkerRegistry(client, Keys(key_prefix), clock=lambda: NOW)
    finally:
        client.close()


@pytest.fixture
def client(registry: WorkerRegistry) -> Iterator[TestClient]:
    app = FastAPI()
    app.include_router(
        worker_routes(registry.live, environment=page_environment(), clock=lambda: NOW)
    )
    with TestClient(app) as test_client:
        yield test_client


def announce(registry: WorkerRegistry, name: str, machine: str, capacity: int) -> None:
    registry.announce(WorkerInfo(name, machine, 100, capacity, "farm", started_at=NOW - 60))


def test_live_workers_are_grouped_by_machine(registry: WorkerRegistry, client: TestClient) -> None:
    announce(registry, "b-2", "build-b", 4)
    announce(registry, "a-1", "build-a", 2)
    announce(registry, "a-2", "build-a", 2)
    stale = WorkerInfo("gone", "build-c", 1, 8, "farm", started_at=NOW - 600)
    registry.client.hset(registry.keys.workers(), "gone", stale.to_json())  # seen_at 0
    data = client.get("/api/workers").json()
    assert [(m["name"], m["slots"]) for m in data["machines"]] == [("build-a", 4), ("build-b", 4)]
    assert [w["name"] for w in data["machines"][0]["workers"]] == ["a-1", "a-2"]
    assert (data["total_workers"], data["total_slots"]) == (3, 8)
    page = client.get("/workers")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.text.count('class="machine"') == 2 and page.text.count('class="worker"') == 3
    assert "gone" not in page.text


def test_a_hostile_worker_name_is_text(registry: WorkerRegistry, client: TestClient) -> None:
    announce(registry, HOSTILE, HOSTILE, 1)
    page = client.get("/workers").text
    assert HOSTILE not in page
    assert str(escape(HOSTILE)) in page and "&lt;script&gt;" in page
    assert client.get("/api/workers").json()["machines"][0]["name"] == HOSTILE


def test_no_worker_says_so(client: TestClient) -> None:
    assert "No worker has been seen" in client.get("/workers").text


@pytest.fixture
def store_client(registry: WorkerRegistry, store: ResultStore) -> Iterator[TestClient]:
    """The Workers page on the registry and the results store's reads."""
    app = FastAPI()
    routes = worker_routes(
        registry.live, environment=page_environment(), clock=lambda: NOW, dashboard=store.dashboard
    )
    app.include_router(routes)
    with TestClient(app) as test_client:
        yield test_client


def attempt(
    run_id: str, node_id: str, outcome: Outcome, machine: str, at: float, *, shard_id: int = 0
) -> TestResult:
    made = result(run_id, node_id, outcome, shard_id=shard_id)
    return dataclasses.replace(made, machine=machine, started_at=at - 1, finished_at=at)


def broken_build_b(store: ResultStore, clock: FakeClock, machine: str = "build-b") -> str:
    """A finished run in which ``machine`` lost a shard, crashed a test and failed one
    that then passed on build-a; the clock is 10 minutes before NOW."""
    clock.now = t0 = NOW - 600
    run_id = store.create_run(project="proj", trigger="ci", settings={})
    shards = [ShardRecord(0, 2, 5.0), ShardRecord(1, 2, 5.0), ShardRecord(2, 1, 5.0)]
    store.start_run(run_id, total_tests=5, estimated_makespan_s=5.0, shards=shards)
    store.shard_started(run_id, 0, worker="b-1", started_at=t0, machine=machine)
    store.record_results([attempt(run_id, "t.py::one", Outcome.PASSED, machine, t0 + 1)])
    store.shard_reissued(run_id, 0, lease=2)
    store.shard_started(run_id, 0, worker="a-1", started_at=t0 + 60, machine="build-a")
    two = attempt(run_id, "t.py::two", Outcome.PASSED, "build-a", t0 + 61)
    store.record_results([dataclasses.replace(two, lease=2)])
    store.shard_finished(run_id, 0, finished_at=t0 + 62)
    store.shard_started(run_id, 1, worker="b-2", started_at=t0, machine=machine)
    store.record_results(
        [
            attempt(run_id, "t.py::boom", Outcome.CRASHED, machine, t0 + 2, shard_id=1),
            attempt(run_id, "t.py::flaky", Outcome.FAILED, machine, t0 + 3, shard_id=1),
        ]
    )
    store.shard_finished(run_id, 1, finished_at=t0 + 4)
    store.shard_started(run_id, 2, worker="a-1", started_at=t0 + 70, machine="build-a")
    retry = attempt(run_id, "t.py::flaky", Outcome.PASSED, "build-a", t0 + 71, shard_id=2)
    store.record_results([dataclasses.replace(retry, attempt=2)])
    store.shard_finished(run_id, 2, finished_at=t0 + 72)
    store.finish_run(run_id, verdict=Verdict.FLAKY)
    return run_id


def test_a_machine_no_worker_is_alive_on_shows_what_failed_on_it(
    registry: WorkerRegistry, store: ResultStore, clock: FakeClock, store_client: TestClient
) -> None:
    announce(registry, "a-1", "build-a", 2)
    broken_build_b(store, clock)
    running = store.create_run(project="proj", trigger="ci", settings={})
    store.start_run(
        running, total_tests=1, estimated_makespan_s=5.0, shards=[ShardRecord(0, 1, 5.0)]
    )
    store.shard_started(running, 0, worker="a-1", started_at=NOW - 5, machine="build-a")

    data = store_client.get("/api/workers").json()
    assert data["window_hours"] == 24
    assert [(m["name"], m["alive"]) for m in data["machines"]] == [
        ("build-a", True),
        ("build-b", False),
    ]
    a, b = (m["activity"] for m in data["machines"])
    assert (a["busy_slots"], a["shards_done"], a["crashed"], a["shards_lost"]) == (1, 2, 0, 0)
    assert (b["shards_lost"], b["crashed"], b["timed_out"], b["passed_elsewhere"]) == (1, 1, 0, 1)
    assert b["last_seen_at"] == NOW - 600 + 4 and b["last_seen_ago_s"] == 596
    [test] = b["passed_elsewhere_tests"]
    assert (test["project"], test["node_id"], test["times"]) == ("proj", "t.py::flaky", 1)
    assert test["url"] == "/tests?node_id=t.py%3A%3Aflaky&project=proj"

    page = store_client.get("/workers").text
    assert page.count('class="machine"') == 1 and page.count('class="machine not-alive"') == 1
    dead = page[page.index('data-machine="build-b"') :]
    assert 'data-alive="no"' in dead[:40] and "not alive" in dead
    assert "1 shard lease(s) lost" in dead and "1 attempt(s) crashed" in dead
    assert '<a href="/tests?node_id=t.py%3A%3Aflaky&amp;project=proj">' in dead
    # An hour back, the run ten minutes ago still shows; a machine busy now always does.
    assert [m["name"] for m in store_client.get("/api/workers?hours=1").json()["machines"]] == [
        "build-a",
        "build-b",
    ]


def test_the_window_leaves_older_failures_out(
    registry: WorkerRegistry, store: ResultStore, clock: FakeClock
) -> None:
    broken_build_b(store, clock)
    late = worker_routes(
        registry.live,
        environment=page_environment(),
        clock=lambda: NOW + 2 * 3600,
        dashboard=store.dashboard,
    )
    app = FastAPI()
    app.include_router(late)
    with TestClient(app) as later:
        assert later.get("/api/workers?hours=1").json()["machines"] == []
        names = [m["name"] for m in later.get("/api/workers?hours=3").json()["machines"]]
        assert names == ["build-a", "build-b"]
        assert "No worker has been seen" in later.get("/workers?hours=1").text


def test_a_hostile_machine_in_the_store_is_text(
    store: ResultStore, clock: FakeClock, store_client: TestClient
) -> None:
    broken_build_b(store, clock, machine=HOSTILE)
    page = store_client.get("/workers").text
    assert HOSTILE not in page and str(escape(HOSTILE)) in page
    names = [m["name"] for m in store_client.get("/api/workers").json()["machines"]]
    assert HOSTILE in names


@pytest.mark.parametrize("hours", ["0", "721", "-3", "abc", "1.5", ""])
def test_a_bad_window_is_refused_in_one_line(store_client: TestClient, hours: str) -> None:
    answer = store_client.get(f"/api/workers?hours={hours}")
    assert answer.status_code == 400
    body = answer.json()
    assert body["status"] == "refused" and body["reason"].startswith("hours")
    assert "\n" not in body["reason"]
    page = store_client.get(f"/workers?hours={hours}")
    assert page.status_code == 400 and page.text.startswith("hours")
    assert page.text.count("\n") == 1


def test_the_window_is_a_documented_query_parameter(store_client: TestClient) -> None:
    document = store_client.get("/openapi.json").json()
    for path in ("/api/workers", "/workers"):
        [hours] = document["paths"][path]["get"]["parameters"]
        assert (hours["name"], hours["in"]) == ("hours", "query")
        assert hours["schema"]["minimum"] == 1 and hours["schema"]["maximum"] == 720
        assert hours["schema"]["default"] == 24
