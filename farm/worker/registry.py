"""Who is on the farm: each ``farm worker`` announces itself in Redis.

A worker writes its :class:`WorkerInfo` into the ``{p}workers`` hash when it
starts and again every ``WORKER_ANNOUNCE_S`` (:mod:`farm.core.defaults`); it
removes it when it stops cleanly. A worker killed outright leaves its entry
behind, so readers count a worker as live only if it was seen within
``stale_after_s``. The scheduler uses the registry to tell a user why nothing
runs, ``farm workers`` to list the farm.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

import redis

from farm.core import defaults
from farm.core.keys import Keys


@dataclass(frozen=True)
class WorkerInfo:
    """One ``farm worker`` process on ``machine``: ``capacity`` shards at once from ``queue``."""

    name: str
    machine: str
    pid: int
    capacity: int
    queue: str
    started_at: float
    seen_at: float = 0.0

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, raw: bytes | str) -> WorkerInfo | None:
        """The entry, or None for one that is not a worker's (a damaged or foreign value).

        Workers before the field was named ``machine`` wrote it as ``host``: their
        entries are read too, so a farm in the middle of an upgrade lists every worker.
        """
        try:
            data: dict[str, Any] = json.loads(raw)
            return cls(
                name=str(data["name"]),
                machine=str(data["machine"] if "machine" in data else data["host"]),
                pid=int(data["pid"]),
                capacity=int(data["capacity"]),
                queue=str(data["queue"]),
                started_at=float(data["started_at"]),
                seen_at=float(data["seen_at"]),
            )
        except (ValueError, KeyError, TypeError):
            return None


class WorkerRegistry:
    """Reads and writes the ``{p}workers`` hash."""

    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        *,
        stale_after_s: float = defaults.WORKER_SEEN_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.keys = keys
        self.stale_after_s = stale_after_s
        self.clock = clock

    def announce(self, info: WorkerInfo) -> None:
        seen = replace(info, seen_at=self.clock())
        self.client.hset(self.keys.workers(), info.name, seen.to_json())

    def forget(self, name: str) -> None:
        self.client.hdel(self.keys.workers(), name)

    def all(self) -> list[WorkerInfo]:
        """Every entry, live or not, by name."""
        raw: dict[bytes, bytes] = self.client.hgetall(self.keys.workers())  # type: ignore[assignment]
        found = (WorkerInfo.from_json(value) for value in raw.values())
        return sorted((w for w in found if w is not None), key=lambda w: w.name)

    def live(self, queue: str | None = None) -> list[WorkerInfo]:
        """Workers seen within ``stale_after_s`` (serving ``queue``, if given)."""
        now = self.clock()
        return [
            w
            for w in self.all()
            if now - w.seen_at <= self.stale_after_s and (queue is None or w.queue == queue)
        ]
