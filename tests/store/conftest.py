"""Backends for the results-store contract tests: a SQLite file, and PostgreSQL when
``FARM_TEST_DATABASE_URL`` names a server.

On PostgreSQL each test session creates a database of its own with a random name
(through the URL's database, in autocommit) and drops it at the end; each test then
starts from an empty ``public`` schema in it. Nothing this session did not create is
ever dropped.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine

from farm.store.urls import database_url

POSTGRES_URL_ENV = "FARM_TEST_DATABASE_URL"
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


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


@pytest.fixture(params=BACKENDS)
def empty_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty database on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'farm.db'}"
    url: str = request.getfixturevalue("empty_postgres_url")
    return url
