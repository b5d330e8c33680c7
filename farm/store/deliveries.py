"""What the server has already acted on, held as ``store.deliveries``.

GitHub signs no timestamp, so a captured delivery could be sent again at will; its
delivery id (GitLab's idempotency key) is the replay guard. A commit the server has
triggered is remembered the same way, so that polling, and the second event a push
to a pull request's branch sends, do not test it twice.
"""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite

from farm.store.connection import Clock, StoreConnection
from farm.store.models import DeliveryRow

HEAD = "head"  # the source of a triggered commit's key, ``repository@sha``


def head_key(repository: str, commit_sha: str) -> str:
    return f"{repository}@{commit_sha}"


class Deliveries:
    """Keys seen once. Each call is one transaction, with the store's clock."""

    def __init__(self, db: StoreConnection, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    def first_time(self, source: str, key: str) -> bool:
        """Record ``key`` of ``source``; False if it was recorded before (by anyone)."""
        with self._db.transaction("record a delivery") as connection:
            # ON CONFLICT DO NOTHING rather than catching the key's violation, which
            # would abort a PostgreSQL transaction: a racing server loses cleanly.
            dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
            statement = (
                dialect.insert(DeliveryRow)
                .values(source=source, key=key, seen_at=self._clock())
                .on_conflict_do_nothing()
                .returning(DeliveryRow.key)
            )
            return connection.execute(statement).first() is not None

    def seen(self, source: str, key: str) -> bool:
        with self._db.transaction("read the deliveries") as connection:
            row = connection.execute(
                select(DeliveryRow.key).where(DeliveryRow.source == source, DeliveryRow.key == key)
            ).first()
        return row is not None

    def forget(self, source: str, key: str) -> None:
        """Let ``key`` be acted on again (a trigger that could not be queued)."""
        with self._db.transaction("forget a delivery") as connection:
            connection.execute(
                delete(DeliveryRow).where(DeliveryRow.source == source, DeliveryRow.key == key)
            )


__all__ = ["HEAD", "Deliveries", "head_key"]
