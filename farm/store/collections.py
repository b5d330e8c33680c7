"""The collection cache: what pytest collected last time for the same request.

A request is the working directory, the paths and the pytest options of a run;
its key is their sha256 (:func:`request_key`, a pure function). The cache is a
guess only: a run starts shards from it while pytest collects again, then settles
on the real collection. :class:`CachedCollections` is the part of
:class:`farm.store.ResultStore` held as ``store.collection_cache``; the queries
take an open connection inside the caller's transaction.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from collections.abc import Sequence

from sqlalchemy import Connection, Table, delete, insert, select

from farm.core.domain import Collection, CollectWarning
from farm.core.pytest_options import PytestOptions
from farm.store.connection import Clock, StoreConnection
from farm.store.models import CollectionCache
from farm.store.rows import pack_node_ids, unpack_node_ids

CACHE: Table = CollectionCache.__table__  # type: ignore[assignment]


def request_key(cwd: str, paths: Sequence[str], pytest_args: Sequence[str]) -> str:
    """The cache key of a request: the sha256 of its directory, paths and pytest options."""
    return hashlib.sha256(json.dumps([cwd, list(paths), list(pytest_args)]).encode()).hexdigest()


def read_collection(connection: Connection, key: str) -> Collection | None:
    """The cached collection of ``key``; None if there is none or it is damaged."""
    row = connection.execute(select(CACHE).where(CACHE.c.key == key)).first()
    if row is None:
        return None
    try:
        node_ids = unpack_node_ids(row.node_ids)
        facts = json.loads(row.facts or "{}")
        options = PytestOptions.from_facts(facts.get("options", facts))
        deselected, warnings = int(facts["deselected"]), int(facts["warnings"])
        shown = tuple(
            CollectWarning(str(location), str(message))
            for location, message in facts.get("warnings_shown", [])
        )
        modules = tuple(str(module) for module in facts.get("modules", []))
    except (zlib.error, ValueError, KeyError, TypeError):
        return None  # a damaged guess is no guess: collect as if it were not there
    return Collection(
        row.rootdir, row.inifile, node_ids, modules, deselected, warnings, options, shown
    )


def _facts(collection: Collection) -> str:
    """What a warm run needs of the collection before it has one: its counts that are
    not tests, the pytest options that decide when to stop and what to report, and
    its test files (``--lf`` counts the files it skips)."""
    return json.dumps(
        {
            "deselected": collection.deselected,
            "warnings": collection.warnings,
            "options": collection.options.to_facts(),
            "warnings_shown": [[w.location, w.message] for w in collection.warnings_shown],
            "modules": list(collection.modules),
        }
    )


def write_collection(
    connection: Connection, key: str, collection: Collection, *, now: float
) -> None:
    """Make ``collection`` the cached one of ``key``, updated at ``now``."""
    connection.execute(delete(CACHE).where(CACHE.c.key == key))
    connection.execute(
        insert(CACHE).values(
            key=key,
            rootdir=collection.rootdir,
            inifile=collection.inifile,
            node_ids=pack_node_ids(collection.node_ids),
            updated_at=now,
            facts=_facts(collection),
        )
    )


class CachedCollections:
    """The last collection of each request, by its key (see :func:`request_key`)."""

    def __init__(self, db: StoreConnection, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    def load(self, key: str) -> Collection | None:
        """The collection last saved under ``key``; None if none, or if damaged."""
        with self._db.transaction("read the collection cache") as connection:
            return read_collection(connection, key)

    def save(self, key: str, collection: Collection) -> None:
        """Make ``collection`` the one cached under ``key``."""
        now = self._clock()
        with self._db.transaction("save the collection cache") as connection:
            write_collection(connection, key, collection, now=now)
