"""The results store: runs, changes, shards, test attempts, history and quarantine in SQL.

Open one with :meth:`ResultStore.open` from a SQLite or PostgreSQL URL (and a clock,
for tests that move time); its methods and its parts (``quarantine``, ``order``,
``reruns``, ``collection_cache``) are the store's whole API. The schema is created
and upgraded by the Alembic migrations shipped in ``migrations/``.
"""

from farm.store.collections import request_key
from farm.store.connection import Clock
from farm.store.quarantine import QuarantineBook
from farm.store.records import (
    ChangeRuns,
    QuarantineEntry,
    QuarantineEvent,
    RunRecord,
    ShardRecord,
    ShardState,
    ShardView,
    TestStats,
)
from farm.store.rows import MAX_TEXT_CHARS
from farm.store.store import ResultStore
from farm.store.urls import mask_url

__all__ = [
    "MAX_TEXT_CHARS",
    "ChangeRuns",
    "Clock",
    "QuarantineBook",
    "QuarantineEntry",
    "QuarantineEvent",
    "ResultStore",
    "RunRecord",
    "ShardRecord",
    "ShardState",
    "ShardView",
    "TestStats",
    "mask_url",
    "request_key",
]
