"""Quarantine in the store: who is in it now, and every entry into or out of it.

The rules deciding when a test enters or leaves on its own are pure
(:mod:`farm.core.quarantine`); :func:`apply_rules` applies them after a run's
history is folded in. People add and remove entries through
:class:`QuarantineBook`, the part of :class:`farm.store.ResultStore` held as
``store.quarantine``. Each change to an entry is recorded as a
:class:`~farm.store.records.QuarantineEvent` in the same transaction, so the
events tell the whole story. The query functions take an open connection inside
the caller's transaction and the store clock's ``now``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, Row, Table, delete, insert, select

from farm.core.errors import UsageError
from farm.core.quarantine import (
    ACTOR,
    EXPIRED,
    QuarantineAction,
    QuarantineDecision,
    QuarantineRules,
    decide,
)
from farm.store.bulk import upsert
from farm.store.connection import Clock, StoreConnection
from farm.store.history import RecentRuns
from farm.store.models import QuarantineEventRow, QuarantineRow
from farm.store.records import QuarantineEntry, QuarantineEvent
from farm.store.rows import clip_text
from farm.store.schema import lock_project

QUARANTINE: Table = QuarantineRow.__table__  # type: ignore[assignment]
EVENTS: Table = QuarantineEventRow.__table__  # type: ignore[assignment]
NAME_CHARS = 255  # an owner's or actor's name, as its column holds it
EVENTS_LIMIT = 200


def read_entries(connection: Connection, project: str) -> dict[str, QuarantineEntry]:
    """Every entry of ``project``, by node id, sorted."""
    query = select(QUARANTINE).where(QUARANTINE.c.project == project)
    entries = (_entry(row) for row in connection.execute(query))
    return {entry.node_id: entry for entry in sorted(entries, key=lambda e: e.node_id)}


def enter(
    connection: Connection,
    project: str,
    node_id: str,
    *,
    reason: str,
    owner: str,
    actor: str,
    until_at: float | None,
    automatic: bool,
    now: float,
) -> tuple[QuarantineEntry, QuarantineEvent]:
    """Quarantine the test, or update its entry (which keeps the time it began)."""
    row = {
        "project": project,
        "node_id": node_id,
        "since_at": now,
        "reason": clip_text(reason),
        "owner": clip_text(owner, NAME_CHARS),
        "actor": clip_text(actor, NAME_CHARS),
        "until_at": until_at,
        "automatic": automatic,
    }
    upsert(connection, QUARANTINE, [row], ("reason", "owner", "actor", "until_at", "automatic"))
    where = (QUARANTINE.c.project == project) & (QUARANTINE.c.node_id == node_id)
    entry = _entry(connection.execute(select(QUARANTINE).where(where)).one())
    return entry, _record(
        connection, project, node_id, QuarantineAction.ENTERED, actor, reason, now
    )


def leave(
    connection: Connection, project: str, node_id: str, *, reason: str, actor: str, now: float
) -> QuarantineEvent | None:
    """Take the test out of quarantine; None if it was not in."""
    where = (QUARANTINE.c.project == project) & (QUARANTINE.c.node_id == node_id)
    if connection.execute(delete(QUARANTINE).where(where)).rowcount == 0:
        return None
    return _record(connection, project, node_id, QuarantineAction.LEFT, actor, reason, now)


def lift_expired(
    connection: Connection, project: str, *, now: float
) -> tuple[QuarantineEvent, ...]:
    """End every entry of ``project`` whose expiry has come at ``now``."""
    expired = (
        (QUARANTINE.c.project == project)
        & QUARANTINE.c.until_at.is_not(None)
        & (QUARANTINE.c.until_at <= now)
    )
    if connection.execute(select(QUARANTINE.c.node_id).where(expired).limit(1)).first() is None:
        return ()  # the common case, without taking the project's lock
    lock_project(connection, project)
    node_ids = sorted(connection.scalars(select(QUARANTINE.c.node_id).where(expired)))
    events = (
        leave(connection, project, node_id, reason=EXPIRED, actor=ACTOR, now=now)
        for node_id in node_ids
    )
    return tuple(event for event in events if event is not None)


def apply_rules(
    connection: Connection,
    project: str,
    recent: Mapping[str, RecentRuns],
    rules: QuarantineRules,
    *,
    now: float,
) -> tuple[QuarantineEvent, ...]:
    """Let the rules put the tests of a run in quarantine or take them out (the
    caller holds the project's lock); returns the events recorded, by node id."""
    entries = read_entries(connection, project)
    events: list[QuarantineEvent] = []
    for node_id in sorted(recent):
        runs = recent[node_id]
        entry = entries.get(node_id)
        decision = decide(
            rules,
            recent_outcomes=runs.recent_outcomes,
            clean_streak=runs.clean_streak,
            entry=entry,
            now=now,
        )
        if decision is not None:
            events.append(_apply(connection, project, node_id, decision, now))
    return tuple(events)


def _apply(
    connection: Connection, project: str, node_id: str, decision: QuarantineDecision, now: float
) -> QuarantineEvent:
    if decision.action is QuarantineAction.ENTERED:
        _, event = enter(
            connection,
            project,
            node_id,
            reason=decision.reason,
            owner="",
            actor=decision.actor,
            until_at=None,
            automatic=True,
            now=now,
        )
        return event
    left = leave(
        connection, project, node_id, reason=decision.reason, actor=decision.actor, now=now
    )
    assert left is not None  # the rules end only an entry the caller read under the lock
    return left


def read_events(
    connection: Connection, project: str, node_id: str | None, limit: int
) -> tuple[QuarantineEvent, ...]:
    """The newest ``limit`` events of ``project`` (of one test, if named), newest first."""
    query = select(EVENTS).where(EVENTS.c.project == project)
    if node_id is not None:
        query = query.where(EVENTS.c.node_id == node_id)
    query = query.order_by(EVENTS.c.at.desc(), EVENTS.c.id.desc()).limit(limit)
    return tuple(
        QuarantineEvent(row.project, row.node_id, row.at, row.action, row.actor, row.reason)
        for row in connection.execute(query)
    )


def _record(
    connection: Connection,
    project: str,
    node_id: str,
    action: QuarantineAction,
    actor: str,
    reason: str,
    now: float,
) -> QuarantineEvent:
    event = QuarantineEvent(
        project, node_id, now, action, clip_text(actor, NAME_CHARS), clip_text(reason)
    )
    connection.execute(
        insert(EVENTS).values(
            project=project,
            node_id=node_id,
            at=now,
            action=action,
            actor=event.actor,
            reason=event.reason,
        )
    )
    return event


def _entry(row: Row[Any]) -> QuarantineEntry:
    return QuarantineEntry(
        project=row.project,
        node_id=row.node_id,
        since_at=row.since_at,
        reason=row.reason,
        owner=row.owner,
        actor=row.actor,
        until_at=row.until_at,
        automatic=bool(row.automatic),
    )


def _check_reason(reason: str) -> None:
    if not reason.strip():
        raise UsageError("a quarantine change needs a reason")


class QuarantineBook:
    """Quarantine by hand, and who is in quarantine now, for each project.

    It shares the store's connection and clock; each method is one transaction.
    Entries whose expiry has come are ended (and the events recorded) whenever the
    book is read.
    """

    def __init__(self, db: StoreConnection, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    def current(self, project: str) -> frozenset[str]:
        """The node ids in quarantine now."""
        now = self._clock()
        with self._db.transaction("read the quarantine") as connection:
            lift_expired(connection, project, now=now)
            return frozenset(read_entries(connection, project))

    def entries(self, project: str) -> tuple[QuarantineEntry, ...]:
        """Every entry in quarantine now, by node id."""
        now = self._clock()
        with self._db.transaction("read the quarantine") as connection:
            lift_expired(connection, project, now=now)
            return tuple(read_entries(connection, project).values())

    def add(
        self,
        project: str,
        node_id: str,
        *,
        reason: str,
        owner: str,
        actor: str,
        until_at: float | None = None,
    ) -> QuarantineEntry:
        """Quarantine ``node_id`` by hand (or update its entry, which then ends only by
        hand or at ``until_at``, never by clean runs); records the event."""
        _check_reason(reason)
        if not node_id:
            raise UsageError("a quarantine needs a test's node id")
        now = self._clock()
        if until_at is not None and until_at <= now:
            raise UsageError("a quarantine's expiry must be in the future")
        with self._db.transaction("quarantine a test") as connection:
            lock_project(connection, project)
            entry, _ = enter(
                connection,
                project,
                node_id,
                reason=reason,
                owner=owner,
                actor=actor,
                until_at=until_at,
                automatic=False,
                now=now,
            )
            return entry

    def remove(self, project: str, node_id: str, *, reason: str, actor: str) -> bool:
        """Take ``node_id`` out of quarantine; False if it was not in (nothing recorded)."""
        _check_reason(reason)
        now = self._clock()
        with self._db.transaction("take a test out of quarantine") as connection:
            lock_project(connection, project)
            return (
                leave(connection, project, node_id, reason=reason, actor=actor, now=now) is not None
            )

    def events(
        self, project: str, node_id: str | None = None, limit: int = EVENTS_LIMIT
    ) -> tuple[QuarantineEvent, ...]:
        """The newest ``limit`` quarantine events of ``project`` (of one test if
        ``node_id`` is given), newest first."""
        if limit < 1:
            raise UsageError(
                f"the number of quarantine events to show must be at least 1, not {limit}"
            )
        with self._db.transaction("read quarantine events") as connection:
            return read_events(connection, project, node_id, limit)
