"""The Workers page and its JSON twin, read from a real registry in Redis; what a
worker calls itself is shown as text, never as markup."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from markupsafe import escape

from farm.core.keys import Keys
from farm.server.pages import page_environment, worker_routes
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
