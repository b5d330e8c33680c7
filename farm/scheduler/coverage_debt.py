"""Which shards still owe a run their coverage data, and what of it was lost.

Pure bookkeeping for :class:`farm.scheduler.tracker.RunTracker`, which fences the
events first: a shard's ``coverage`` event counts only under the shard's current
lease, like its results. The shard's worker sends it once, after every result of
the lease and before its ``shard_end``.

A lease *owes* coverage once a result of its worker was accepted: the tests behind
that result ran in a process whose data only that event brings. The debt is paid
by the event (which may itself say that a process's data is missing: a crash, a
test stopped at its time limit) or lost: the lease is superseded (its worker was
lost, or handed the shard back), the shard ends without it, the run stops at its
failure limit first, or the run gives up waiting. A lost debt makes the run's
coverage incomplete; nothing is ever guessed in its place.
"""

from __future__ import annotations

from farm.core.messages import ShardCoverage

_REASONS_SHOWN = 3


class CoverageDebt:
    """The shards whose current lease owes its coverage data, and the reasons any
    data is missing. With ``wanted`` off (a run without coverage) nothing is owed."""

    def __init__(self, *, wanted: bool) -> None:
        self.wanted = wanted
        self._owed: set[int] = set()
        self._lost: list[str] = []

    @property
    def pending(self) -> bool:
        """Whether some shard's data may still arrive."""
        return bool(self._owed)

    @property
    def lost(self) -> str:
        """Why the run's coverage is incomplete, in one line; "" when it is not."""
        if not self._lost:
            return ""
        shown = "; ".join(self._lost[:_REASONS_SHOWN])
        more = len(self._lost) - _REASONS_SHOWN
        return f"{shown}; and {more} more" if more > 0 else shown

    def ran(self, shard_id: int) -> None:
        """A result of the shard's current lease was accepted."""
        if self.wanted:
            self._owed.add(shard_id)

    def arrived(self, event: ShardCoverage) -> None:
        """The shard's current lease sent its coverage."""
        self._owed.discard(event.shard_id)
        if event.missing:
            self._lost.append(f"shard {event.shard_id}: {event.missing}")

    def superseded(self, shard_id: int) -> None:
        """The shard's lease was replaced: data it still owed will not count."""
        self._lose(shard_id, "its worker was lost before it sent its coverage data")

    def ended(self, shard_id: int) -> None:
        """The shard ended (its worker said so, or the run gave up on it)."""
        self._lose(shard_id, "it ended without its coverage data")

    def forget(self, shard_id: int) -> None:
        """The shard is no longer the run's (planned on a wrong guess): its tests run
        elsewhere, and their coverage comes from there."""
        self._owed.discard(shard_id)

    def note(self, reason: str) -> None:
        """Some data is missing for ``reason`` (a resumed run's earlier shards)."""
        if self.wanted:
            self._lost.append(reason)

    def give_up(self, why: str) -> None:
        """Stop waiting: whatever is still owed is lost, for ``why``."""
        if self._owed:
            shards = ", ".join(str(s) for s in sorted(self._owed))
            self._lost.append(f"no coverage data from shard(s) {shards}: {why}")
            self._owed.clear()

    def _lose(self, shard_id: int, why: str) -> None:
        if shard_id in self._owed:
            self._owed.discard(shard_id)
            self._lost.append(f"shard {shard_id}: {why}")
