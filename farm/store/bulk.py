"""Statements over many rows at once: reads of the rows among many keys, and upserts.

History and quarantine are written per project for thousands of tests a run: they
read the existing rows for the given ids in chunks, compute in Python and write
back with one batched upsert, so that 10,000 results cost a few statements, not
10,000. Every function takes an open connection inside the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from sqlalchemy import Column, ColumnElement, Connection, Table, any_, bindparam, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import ARRAY

# SQLite's default limit on bound variables was 999 before 3.32; keep IN lists well below.
IN_CHUNK = 500
ANY_CHUNK = 10_000


def chunks(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def among_chunks(
    connection: Connection, key: Column[str], ids: Sequence[str]
) -> Iterator[ColumnElement[bool]]:
    """Conditions "``key`` is one of these ids", one per chunk of ``ids``."""
    postgres = connection.dialect.name == "postgresql"
    for chunk in chunks(ids, ANY_CHUNK if postgres else IN_CHUNK):
        if postgres:
            # One array parameter: psycopg prepares a statement run five times, and
            # PostgreSQL's generic plan for IN ($2, ..., $501) scans the whole table.
            yield key == any_(bindparam("ids", list(chunk), type_=ARRAY(key.type)))
        else:
            yield key.in_(chunk)


def read_keyed(
    connection: Connection,
    key: Column[str],
    columns: Sequence[Column[Any]],
    project: str,
    ids: Sequence[str],
) -> dict[str, tuple[Any, ...]]:
    """Existing rows of ``project`` among ``ids``: key -> values of ``columns``."""
    table = key.table
    found: dict[str, tuple[Any, ...]] = {}
    for among in among_chunks(connection, key, ids):
        for row in connection.execute(
            select(key, *columns).where(table.c.project == project, among)
        ):
            found[row[0]] = tuple(row[1:])
    return found


def upsert(
    connection: Connection,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    update: Sequence[str],
    *,
    extra_set: Mapping[str, Any] | None = None,
) -> None:
    """Insert ``rows``; where the primary key exists, set only the ``update`` columns."""
    if not rows:
        return
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(table)
    set_: dict[str, Any] = {name: statement.excluded[name] for name in update}
    set_.update(extra_set or {})
    statement = statement.on_conflict_do_update(
        index_elements=list(table.primary_key.columns), set_=set_
    )
    connection.execute(statement, list(rows))
