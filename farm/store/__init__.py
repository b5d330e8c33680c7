"""The results store: runs, shards, test attempts and duration history in SQL.

Open one with :meth:`ResultStore.open` from a SQLite or PostgreSQL URL (and a clock,
for tests that move time); its methods are the store's whole API. The schema is
created and upgraded by the Alembic migrations shipped in ``migrations/``.
"""

from farm.store.collections import request_key
from farm.store.records import ChangeInfo, RunRecord, ShardRecord, ShardState, ShardView
from farm.store.rows import MAX_TEXT_CHARS
from farm.store.store import Clock, ResultStore
from farm.store.urls import mask_url

__all__ = [
    "MAX_TEXT_CHARS",
    "ChangeInfo",
    "Clock",
    "ResultStore",
    "RunRecord",
    "ShardRecord",
    "ShardState",
    "ShardView",
    "mask_url",
    "request_key",
]
