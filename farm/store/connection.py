"""How the results store talks to its database: opening it, one transaction per call,
and failures worded as :class:`farm.core.errors.StoreError` with the password masked.

:class:`StoreConnection` is what :class:`farm.store.ResultStore` runs every call
through; it knows nothing of runs. The query modules (runs, recovery, collections,
history) take the open connection of one of its transactions and raise
:class:`UnknownRun` or :class:`UnknownShard` for an id the database does not have,
which the transaction words as :class:`farm.core.errors.UsageError` naming the store.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from alembic.util import CommandError
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from farm.core.errors import StoreError, UsageError
from farm.store.schema import describe_error, make_engine, upgrade_to_head
from farm.store.urls import database_url, mask_url

Clock = Callable[[], float]
"""Unix seconds now; :func:`time.time` unless a test moves time by hand."""


class UnknownRun(LookupError):
    """A query named a run the database does not have."""

    def __init__(self, run_id: str) -> None:
        super().__init__(run_id)
        self.run_id = run_id


class UnknownShard(LookupError):
    """A query named a shard its (known) run does not have."""

    def __init__(self, run_id: str, shard_id: int) -> None:
        super().__init__(run_id, shard_id)
        self.run_id = run_id
        self.shard_id = shard_id


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
        """One transaction; database errors become StoreError naming ``action``, an
        unknown run or shard id a UsageError (either rolls the transaction back)."""
        try:
            with self._engine.begin() as connection:
                yield connection
        except SQLAlchemyError as e:
            raise StoreError(
                f"results store {self._display_url}: cannot {action}: {describe_error(e)}"
            ) from e
        except UnknownShard as e:
            raise UsageError(
                f"run {e.run_id} in {self._display_url} has no shard {e.shard_id}"
            ) from None
        except UnknownRun as e:
            raise UsageError(f"no run {e.run_id!r} in results store {self._display_url}") from None
