"""Shared fixtures: a real Redis and a real database, isolated on shared servers.

``FARM_TEST_REDIS_URL`` names an external Redis (CI sets it); without it one
embedded redis-server is started for the session. Each test gets its own key
prefix and deletes only the keys under it afterwards: a shared server is never
flushed.

``FARM_TEST_DATABASE_URL`` names a PostgreSQL server. Each test session creates a
database of its own with a random name (through the URL's database, in autocommit)
and drops it at the end; each test then starts from an empty ``public`` schema in
it. Nothing this session did not create is ever dropped. Without the variable,
PostgreSQL tests skip with that reason and the rest use SQLite files.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from helpers import NO_IDLE_PLUGINS, NO_RANDOMLY
from sqlalchemy import create_engine
from store_fakes import FakeClock

from farm.run.embedded import EmbeddedRedis
from farm.store import ResultStore
from farm.store.urls import database_url

POSTGRES_URL_ENV = "FARM_TEST_DATABASE_URL"

# pytest-randomly, a test dependency for the tests of how farm fixes seeds, shuffles
# every pytest session of the environment it is installed in. The suites farm's
# tests run, under farm and under plain pytest alike, keep their written order
# unless a test asks for the plugin (it then removes NO_RANDOMLY from its
# environment; tests import it from helpers, as "conftest" may name another folder's).
# Plugins no suite of theirs uses stay off too (NO_IDLE_PLUGINS).
os.environ["PYTEST_ADDOPTS"] = " ".join(
    filter(None, [os.environ.get("PYTEST_ADDOPTS", ""), NO_RANDOMLY, NO_IDLE_PLUGINS])
)


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


@pytest.fixture(scope="session")
def postgres_session_url() -> Iterator[str]:
    """The URL of a database made for this test session, in the server's URL form."""
    server_url = os.environ.get(POSTGRES_URL_ENV)
    if not server_url:
        pytest.skip(f"{POSTGRES_URL_ENV} is not set: no PostgreSQL server to test against")
    admin = create_engine(database_url(server_url), isolation_level="AUTOCOMMIT")
    name = f"farm_test_{uuid.uuid4().hex[:16]}"
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield database_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        force = " WITH (FORCE)" if (admin.dialect.server_version_info or (0,)) >= (13,) else ""
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}"{force}')
        admin.dispose()


@pytest.fixture
def empty_postgres_url(postgres_session_url: str) -> str:
    """The session's database, emptied: its public schema made anew."""
    engine = create_engine(database_url(postgres_session_url))
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql("DROP SCHEMA public CASCADE")
            connection.exec_driver_sql("CREATE SCHEMA public")
    finally:
        engine.dispose()
    return postgres_session_url


@pytest.fixture
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """PostgreSQL (an emptied database of this session's) when configured, else SQLite."""
    if os.environ.get(POSTGRES_URL_ENV):
        url: str = request.getfixturevalue("empty_postgres_url")
        return url
    return f"sqlite:///{tmp_path / 'farm.db'}"


@pytest.fixture
def clock() -> FakeClock:
    """The store's clock, moved by hand."""
    return FakeClock()


@pytest.fixture
def store(db_url: str, clock: FakeClock) -> Iterator[ResultStore]:
    """A store on ``db_url`` with ``clock`` (tests/store/conftest.py runs its contract
    tests on every backend instead)."""
    with ResultStore.open(db_url, clock=clock) as opened:
        yield opened
