"""How the results store talks to its database: opening it, one transaction per call,
and failures worded as :class:`farm.core.errors.StoreError` with the password masked.

:class:`StoreConnection` is the part of :class:`farm.store.ResultStore` that knows
nothing of runs beyond their ids; the store's other modules (recovery, the
collection cache) run their statements through :meth:`StoreConnection.transaction`
too, so that every database failure reads the same.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from alembic.util import CommandError
from sqlalchemy import Connection, Engine, select, update
from sqlalchemy.exc import SQLAlchemyError

from farm.core.errors import StoreError, UsageError
from farm.store.rows import RUNS, SHARDS
from farm.store.schema import describe_error, make_engine, upgrade_to_head
from farm.store.urls import database_url, mask_url


def connect(url: str) -> Engine:
    """An engine for ``url`` with its schema at the newest migration; StoreError if not."""
    masked = mask_url(url)
    engine: Engine | None = None
    try:
        engine = make_engine(database_url(url))
        upgrade_to_head(engine)
    except (SQLAlchemyError, CommandError, ImportError, OSError, ValueError) as e:
        if engine is not None:
            engine.dispose()
        cause = describe_error(e)
        password = _password_of(url)
        if password:
            cause = cause.replace(password, "***")
        raise StoreError(f"cannot open results store {masked}: {cause}") from e
    return engine


def _password_of(url: str) -> str | None:
    try:
        return database_url(url).password
    except (SQLAlchemyError, ValueError):
        return None


class StoreConnection:
    """An open database, named in messages by ``display_url`` (password masked)."""

    def __init__(self, engine: Engine, *, display_url: str) -> None:
        self._engine = engine
        self._display_url = display_url

    @property
    def engine(self) -> Engine:
        return self._engine

    @property
    def url(self) -> str:
        """The store's URL with its password masked, for messages."""
        return self._display_url

    def close(self) -> None:
        """Close every pooled connection; the store is not usable afterwards."""
        self._engine.dispose()

    @contextmanager
    def transaction(self, action: str) -> Iterator[Connection]:
        """One transaction; database errors become StoreError naming ``action``."""
        try:
            with self._engine.begin() as connection:
                yield connection
        except SQLAlchemyError as e:
            raise StoreError(
                f"results store {self._display_url}: cannot {action}: {describe_error(e)}"
            ) from e

    def _update_run(
        self, connection: Connection, run_id: str, values: Mapping[str, object]
    ) -> None:
        result = connection.execute(update(RUNS).where(RUNS.c.id == run_id).values(values))
        if result.rowcount == 0:
            raise self._unknown_run(run_id)

    def _update_shard(
        self, connection: Connection, run_id: str, shard_id: int, values: Mapping[str, object]
    ) -> None:
        where = (SHARDS.c.run_id == run_id) & (SHARDS.c.shard_id == shard_id)
        result = connection.execute(update(SHARDS).where(where).values(values))
        if result.rowcount == 0:
            if not self._run_exists(connection, run_id):
                raise self._unknown_run(run_id)
            raise UsageError(f"run {run_id} in {self._display_url} has no shard {shard_id}")

    def _run_exists(self, connection: Connection, run_id: str) -> bool:
        found = connection.execute(select(RUNS.c.id).where(RUNS.c.id == run_id)).first()
        return found is not None

    def _unknown_run(self, run_id: str) -> UsageError:
        return UsageError(f"no run {run_id!r} in results store {self._display_url}")
