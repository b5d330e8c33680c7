"""Every operation of the server's OpenAPI document, driven by requests schemathesis
generates from it: whatever the input, the answer is never a server error.

The app is the real one: a real store holding a change with a run and failing
attempts (so that generated ids and shas can meet real rows), the conductors' real
queue on Redis, and the Workers page reading a real registry. Every request shows
the API token, so routes that change state are reached too. Generation is
derandomized and bounded, so the file stays a few seconds long and always the same.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import Case
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Err
from schemathesis.generation import GenerationMode

from farm.core.domain import ChangeRef, Outcome, RunFindings, TestResult, Verdict
from farm.core.keys import Keys
from farm.core.server_config import parse_server_config
from farm.core.settings import Settings
from farm.run.conductor import ChangeQueue
from farm.server.app import ServerParts, create_app
from farm.store import ResultStore, ShardRecord
from farm.worker.registry import WorkerInfo, WorkerRegistry

pytestmark = pytest.mark.integration

TOKEN = "api-token-" + "s" * 20
SHA = "5c" * 20
EXAMPLES_PER_OPERATION = 25
AUTHORIZATION = {"Authorization": f"Bearer {TOKEN}"}


def seed(store: ResultStore) -> None:
    """A finished, failed run of a change: one test failing twice, one passing."""
    now = time.time()
    change = ChangeRef("github.com/acme/shop", SHA, "main", author="ann")
    run_id = store.create_run(project="shop", trigger="github", settings={}, change=change)
    store.start_run(run_id, total_tests=2, estimated_makespan_s=4.0,
                    shards=[ShardRecord(0, 3, 4.0)])  # fmt: skip
    store.shard_started(run_id, 0, worker="w1", started_at=now - 5, machine="m1")
    store.record_results([
        _attempt(run_id, "tests/test_cart.py::test_total", Outcome.FAILED, 1, now),
        _attempt(run_id, "tests/test_cart.py::test_total", Outcome.FAILED, 2, now),
        _attempt(run_id, "tests/test_cart.py::test_empty", Outcome.PASSED, 1, now),
    ])  # fmt: skip
    store.shard_finished(run_id, 0, finished_at=now - 1)
    findings = RunFindings(failed=("tests/test_cart.py::test_total",))
    store.finish_run(run_id, verdict=Verdict.FAILED, findings=findings)


def _attempt(run_id: str, node_id: str, outcome: Outcome, attempt: int, now: float) -> TestResult:
    failed = outcome is Outcome.FAILED
    return TestResult(
        run_id=run_id, shard_id=0, lease=1, node_id=node_id, outcome=outcome, duration_s=0.5,
        worker="w1", attempt=attempt, longrepr="assert 3 == 4" if failed else "",
        started_at=now - 4, finished_at=now - 3.5, machine="m1",
    )  # fmt: skip


@pytest.fixture
def app(db_url: str, redis_url: str, key_prefix: str) -> Iterator[FastAPI]:
    env = {"HOOK_SECRET": "hook-secret-" + "h" * 20, "API_TOKEN": TOKEN}
    config = parse_server_config(
        {
            "server": {"api_token_env": "API_TOKEN"},
            "repository": [
                {"url": "https://github.com/acme/shop.git", "webhook_secret_env": "HOOK_SECRET"}
            ],
        },
        env,
    )
    queue = ChangeQueue(Settings(broker_url=redis_url, key_prefix=key_prefix))
    client = redis.Redis.from_url(redis_url)
    registry = WorkerRegistry(client, Keys(key_prefix))
    registry.announce(WorkerInfo("w1", "m1", 100, 2, "farm", started_at=time.time() - 60))
    try:
        with ResultStore.open(db_url) as store:
            seed(store)
            parts = ServerParts(config, store.deliveries, queue.send,
                                live_workers=registry.live, store=store)  # fmt: skip
            yield create_app(parts)
    finally:
        client.close()
        queue.close()


def test_no_generated_request_is_a_server_error(app: FastAPI) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    failures: dict[str, str] = {}
    labels: list[str] = []
    for found in schema.get_all_operations():
        if isinstance(found, Err):
            failures[str(found.err())[:200]] = "the document does not describe it well"
            continue
        operation = found.ok()
        labels.append(operation.label)
        # Both kinds: inputs the document allows, and inputs it forbids (those must be 4xx).
        modes = (GenerationMode("positive"), GenerationMode("negative"))
        strategy = st.one_of(*(operation.as_strategy(mode) for mode in modes))

        @given(case=strategy)
        @settings(max_examples=EXAMPLES_PER_OPERATION, derandomize=True, deadline=None,
                  database=None, suppress_health_check=list(HealthCheck))  # fmt: skip
        def answers_without_a_server_error(case: Case[Any]) -> None:
            case.call_and_validate(headers=AUTHORIZATION, checks=[not_a_server_error])

        try:
            answers_without_a_server_error()
        except Exception as error:  # every operation runs; the failures are listed together
            failures[operation.label] = str(error)[:2000]
    assert "POST /api/changes" in labels and "GET /api/health" in labels
    assert not failures, "\n\n".join(f"{label}:\n{text}" for label, text in failures.items())


def test_an_attempt_id_beyond_64_bits_is_refused_not_a_server_error(app: FastAPI) -> None:
    """Found by generation: the store's integers are 64-bit, so 2**64 used to fail there."""
    with TestClient(app) as client:
        for attempt_id in (2**64, 2**63 + 1, -(2**63) - 1, 0):
            answer = client.get(f"/api/runs/any/failures/{attempt_id}")
            assert answer.status_code == 422, answer.text
        assert client.get("/api/runs/any/failures/1").status_code == 404
