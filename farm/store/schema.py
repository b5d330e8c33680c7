"""Connecting to the results database and bringing its schema to the newest revision.

Only SQLite (a file, or ``:memory:`` for tests) and PostgreSQL through psycopg 3 are
supported. The schema is made and upgraded only by the Alembic migrations shipped in
``farm/store/migrations``; no ``alembic.ini`` is needed at run time.
"""

from __future__ import annotations

import hashlib
import sqlite3
import time
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event, func, select
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import StaticPool

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
SUPPORTED_BACKENDS = ("sqlite", "postgresql")
SQLITE_BUSY_TIMEOUT_S = 30.0
POSTGRES_CONNECT_TIMEOUT_S = 10


def advisory_lock_key(name: str) -> int:
    """A stable signed 64-bit key for a PostgreSQL advisory lock named ``name``."""
    digest = hashlib.sha256(f"farm:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def make_engine(url: URL) -> Engine:
    """An engine for ``url``, tuned for the backend. Raises ValueError if unsupported."""
    backend = url.get_backend_name()
    if backend == "sqlite":
        return _sqlite_engine(url)
    if backend == "postgresql":
        connect_args: dict[str, Any] = {}
        if "connect_timeout" not in url.query:
            # Without it an unreachable host makes `farm run` hang for minutes.
            connect_args["connect_timeout"] = POSTGRES_CONNECT_TIMEOUT_S
        return create_engine(url, pool_pre_ping=True, connect_args=connect_args)
    raise ValueError(f"unsupported database {backend!r}: farm supports sqlite and postgresql")


def _sqlite_engine(url: URL) -> Engine:
    in_memory = url.database in (None, "", ":memory:")
    connect_args: dict[str, Any] = {"timeout": SQLITE_BUSY_TIMEOUT_S}
    if in_memory:
        # One shared connection, or every checkout would see a new empty database.
        connect_args["check_same_thread"] = False
        engine = create_engine(url, connect_args=connect_args, poolclass=StaticPool)
    else:
        engine = create_engine(url, connect_args=connect_args)

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            # SQLite ignores foreign keys unless asked, per connection.
            cursor.execute("PRAGMA foreign_keys=ON")
            if not in_memory:
                # WAL lets the dashboard read while the scheduler writes results.
                _use_wal(cursor)
                cursor.execute("PRAGMA synchronous=NORMAL")
        finally:
            cursor.close()

    return engine


def _use_wal(cursor: Any) -> None:
    """Switch a new database to WAL, waiting while another connection does the same.

    The switch needs the database to itself, and SQLite answers "database is locked"
    at once rather than waiting out the busy timeout, so connections opening a new
    database together retry until the timeout instead of failing.
    """
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_S
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def alembic_config() -> Config:
    """An Alembic configuration pointing at farm's packaged migrations."""
    config = Config()
    # Config values go through configparser interpolation: a "%" in a path must be doubled.
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    return config


def head_revision() -> str | None:
    """The newest revision among farm's migrations."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(connection: Connection) -> str | None:
    """The revision the database is at, or None for a database farm never touched."""
    return MigrationContext.configure(connection).get_current_revision()


def upgrade_to_head(engine: Engine) -> None:
    """Bring the database's schema to the newest revision; do nothing if it is there.

    The upgrade runs in one transaction holding a lock, so that two processes
    opening a new database at once (a run and the dashboard) do not both create it.
    Raises Alembic's or SQLAlchemy's errors; the caller words them.
    """
    head = head_revision()
    with engine.connect() as connection:
        if current_revision(connection) == head:
            return
        connection.rollback()
        _lock_for_upgrade(connection)
        config = alembic_config()
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
        connection.commit()


def _lock_for_upgrade(connection: Connection) -> None:
    lock(connection, "schema-upgrade")


def lock(connection: Connection, name: str) -> None:
    """Hold the lock ``name`` until the transaction ends: a PostgreSQL advisory lock,
    or SQLite's one write lock (which serialises every writer, whatever the name)."""
    if connection.dialect.name == "postgresql":
        connection.execute(select(func.pg_advisory_xact_lock(advisory_lock_key(name))))
    elif connection.dialect.name == "sqlite":
        begin_immediate(connection)


def lock_project(connection: Connection, project: str) -> None:
    """Serialise writers of ``project``'s history and quarantine until the transaction
    ends: each reads rows and writes new ones, and two at once would lose updates."""
    lock(connection, f"history:{project}")


def begin_immediate(connection: Connection) -> None:
    """Take SQLite's write lock now, for a transaction that reads and then writes.

    Python's sqlite3 driver begins a transaction only at the first write, so reads
    before it see a state another process may change before the write lands; a
    second process now waits (up to the busy timeout) instead.
    """
    raw = connection.connection.dbapi_connection
    if raw is not None and not raw.in_transaction:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def describe_error(error: BaseException) -> str:
    """The cause of ``error`` in one line, without SQLAlchemy's SQL echo and links."""
    inner: BaseException = error
    if isinstance(error, DBAPIError) and isinstance(error.orig, BaseException):
        inner = error.orig
    text = " ".join(str(inner).split())
    return text or type(inner).__name__
