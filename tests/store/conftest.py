"""Backends for the results-store contract tests: a SQLite file, and PostgreSQL when
``FARM_TEST_DATABASE_URL`` names a server (see ``empty_postgres_url`` in tests/conftest.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine
from store_fakes import FakeClock

from farm.store import ResultStore
from farm.store.urls import database_url

BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@pytest.fixture(params=BACKENDS)
def empty_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty database on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'farm.db'}"
    url: str = request.getfixturevalue("empty_postgres_url")
    return url


@pytest.fixture
def store(empty_db_url: str, clock: FakeClock) -> Iterator[ResultStore]:
    with ResultStore.open(empty_db_url, clock=clock) as opened:
        yield opened


@pytest.fixture
def engine(empty_db_url: str) -> Iterator[Engine]:
    """A plain engine on the store's database, to look under the API."""
    plain = create_engine(database_url(empty_db_url))
    yield plain
    plain.dispose()
