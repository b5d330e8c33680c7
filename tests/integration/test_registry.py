"""The worker registry on a real Redis: fresh entries are live, stale and damaged ones are not."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import redis

from farm.core.keys import Keys
from farm.worker.registry import WorkerInfo, WorkerRegistry

pytestmark = pytest.mark.integration


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    connection = redis.Redis.from_url(redis_url.replace("redis+socket://", "unix://"))
    yield connection
    connection.close()


def info(name: str, queue: str = "farm") -> WorkerInfo:
    return WorkerInfo(name, "host-" + name, 100, 4, queue, started_at=1000.0)


def test_fresh_entries_are_live_stale_ones_are_not(client: redis.Redis, key_prefix: str) -> None:
    now = [1000.0]
    registry = WorkerRegistry(client, Keys(key_prefix), stale_after_s=30, clock=lambda: now[0])
    registry.announce(info("a"))
    now[0] = 1020.0
    registry.announce(info("b", queue="other"))
    assert [w.name for w in registry.live()] == ["a", "b"]
    assert [w.name for w in registry.live("other")] == ["b"]
    now[0] = 1040.0  # a was last seen 40 s ago: killed without a word
    assert [w.name for w in registry.live()] == ["b"]
    assert [w.name for w in registry.all()] == ["a", "b"]
    registry.forget("b")
    assert registry.live() == []


def test_a_damaged_entry_is_skipped_not_fatal(client: redis.Redis, key_prefix: str) -> None:
    keys = Keys(key_prefix)
    registry = WorkerRegistry(client, keys)
    registry.announce(info("good"))
    client.hset(keys.workers(), "bad", b"\x80 not json")
    client.hset(keys.workers(), "partial", '{"name": "partial"}')
    assert [w.name for w in registry.all()] == ["good"]


def test_an_entry_of_an_older_worker_names_its_machine_host(
    client: redis.Redis, key_prefix: str
) -> None:
    keys = Keys(key_prefix)
    registry = WorkerRegistry(client, keys, clock=lambda: 1000.0)
    registry.announce(info("new"))
    old = {
        "name": "old", "host": "box", "pid": 7, "capacity": 2, "queue": "farm",
        "started_at": 900.0, "seen_at": 1000.0,
    }  # fmt: skip
    client.hset(keys.workers(), "old", json.dumps(old))
    assert [(w.name, w.machine) for w in registry.live()] == [("new", "host-new"), ("old", "box")]
    raw = client.hget(keys.workers(), "new")
    assert isinstance(raw, bytes) and "machine" in json.loads(raw)
