"""The results store: runs, shards, test attempts and duration history in SQL.

Open one with :meth:`ResultStore.open` from a SQLite or PostgreSQL URL; the schema is
created and upgraded by the Alembic migrations shipped in ``migrations/``.
"""

from farm.store.records import ChangeInfo, RunRecord, ShardRecord, ShardState, ShardView
from farm.store.rows import MAX_TEXT_CHARS
from farm.store.store import DEFAULT_EWMA_ALPHA, ResultStore
from farm.store.urls import mask_url

__all__ = [
    "DEFAULT_EWMA_ALPHA",
    "MAX_TEXT_CHARS",
    "ChangeInfo",
    "ResultStore",
    "RunRecord",
    "ShardRecord",
    "ShardState",
    "ShardView",
    "mask_url",
]
