"""Backends for the results-store contract tests: a SQLite file, and PostgreSQL when
``FARM_TEST_DATABASE_URL`` names a server (see ``empty_postgres_url`` in tests/conftest.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest

BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@pytest.fixture(params=BACKENDS)
def empty_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty database on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'farm.db'}"
    url: str = request.getfixturevalue("empty_postgres_url")
    return url
