"""``GET /metrics`` read from a real store and a real Redis: tasks queued by Celery
under the farm's key prefix, workers in the registry, runs and attempts stored."""

from __future__ import annotations

from pathlib import Path

import redis
from celery import Celery
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from farm.core.broker import celery_config
from farm.core.domain import Outcome, TestResult, Verdict
from farm.core.keys import Keys
from farm.core.server_config import ServerConfig
from farm.server.app import ServerParts, create_app
from farm.server.metrics import farm_readers
from farm.store import ResultStore
from farm.store.connection import StoreConnection
from farm.store.connection import connect as open_engine
from farm.store.records import ShardRecord
from farm.worker.registry import WorkerInfo, WorkerRegistry

READ = "read-token-" + "r" * 20


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def finished_run(store: ResultStore, clock: Clock, verdict: Verdict, duration_s: float) -> None:
    run_id = store.create_run(project="shop", trigger="cli", settings={})
    store.start_run(run_id, total_tests=1, estimated_makespan_s=1.0, shards=[])
    clock.now += duration_s
    store.finish_run(run_id, verdict=verdict)


def test_metrics_read_the_queue_the_registry_and_the_store(
    redis_url: str, key_prefix: str, db_url: str, tmp_path: Path
) -> None:
    queue = key_prefix + "shards"
    sender = Celery("metrics-test")
    sender.conf.update(celery_config(redis_url, key_prefix=key_prefix, queue=queue))
    for n in range(3):
        sender.send_task("farm.nothing", args=[n])  # never taken: no worker serves it
    client = redis.Redis.from_url(redis_url)
    clock = Clock(1_700_000_000.0)
    keys = Keys(key_prefix)
    registry = WorkerRegistry(client, keys, clock=clock)
    registry.announce(WorkerInfo("w1", "m1", 10, 4, queue, clock.now))
    registry.announce(WorkerInfo("w2", "m2", 11, 2, queue, clock.now))

    engine = open_engine(db_url)
    store = ResultStore(engine, display_url="test store", clock=clock)
    try:
        finished_run(store, clock, Verdict.PASSED, 40.0)
        finished_run(store, clock, Verdict.FLAKY, 200.0)
        running = store.create_run(project="shop", trigger="cli", settings={})
        shards = [ShardRecord(0, 1, 1.0), ShardRecord(1, 1, 1.0), ShardRecord(2, 1, 1.0)]
        store.start_run(running, total_tests=3, estimated_makespan_s=1.0, shards=shards)
        store.shard_started(running, 0, worker="w1", started_at=clock.now)
        store.shard_started(running, 1, worker="w2", started_at=clock.now)
        store.record_results(
            [TestResult(running, 0, 1, f"t.py::test_{n}", Outcome.PASSED, 0.1) for n in range(5)]
        )
        clock.now += 100  # w2 has not announced itself since: no longer live
        registry.announce(WorkerInfo("w1", "m1", 10, 4, queue, clock.now))

        readers = farm_readers(
            client, keys, queue, StoreConnection(engine, display_url="test store"), clock=clock
        )
        config = ServerConfig(read_token=READ)
        app = create_app(ServerParts(config, store.deliveries, lambda request: None, readers))
        web = TestClient(app)
        assert web.get("/metrics").status_code == 401  # the read token is set
        answer = web.get("/metrics", headers={"Authorization": f"Bearer {READ}"})
    finally:
        store.close()
        client.close()
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(answer.text)
        for s in family.samples
    }
    assert samples[("farm_queue_depth", (("queue", queue),))] == 3
    assert samples[("farm_workers_alive", ())] == 1
    assert samples[("farm_worker_slots", ())] == 4
    assert samples[("farm_shards_running", ())] == 2
    assert samples[("farm_attempts_stored_total", ())] == 5
    assert samples[("farm_runs_finished", (("verdict", "passed"),))] == 1
    assert samples[("farm_runs_finished", (("verdict", "flaky"),))] == 1
    assert samples[("farm_flaky_run_ratio", ())] == 0.5
    assert samples[("farm_run_duration_seconds_bucket", (("le", "60.0"),))] == 1
    assert samples[("farm_run_duration_seconds_bucket", (("le", "300.0"),))] == 2
    assert samples[("farm_metrics_source_up", (("source", "store"),))] == 1
