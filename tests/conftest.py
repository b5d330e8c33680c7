"""Shared fixtures: a real Redis for integration tests, isolated by key prefix.

``FARM_TEST_REDIS_URL`` names an external Redis (CI sets it); without it one
embedded redis-server is started for the session. Each test gets its own key
prefix and deletes only the keys under it afterwards: a shared server is never
flushed.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
import redis

from farm.embedded import EmbeddedRedis

@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = os.environ.get("FARM_TEST_REDIS_URL")
    if url:
        yield url
        return
    with EmbeddedRedis(tmp_path_factory.mktemp("redis")) as server:
        yield server.url


@pytest.fixture
def key_prefix(redis_url: str) -> Iterator[str]:
    prefix = f"farmtest-{uuid.uuid4().hex[:10]}:"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()
