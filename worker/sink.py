"""Forwards a shard's events to the run's Redis stream, checking for cancellation."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import redis

from farm.keys import Keys

_CANCEL_CHECK_S = 1.0
_EXPIRE_EVERY_S = 10.0  # the TTL is a day: refreshing it per batch is waste


class RedisSink:
    """Appends events to ``{prefix}run:{id}:events``, one pipeline round trip per batch."""

    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        run_id: str,
        *,
        ttl_s: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.stream = keys.events(run_id)
        self.cancel_key = keys.cancel(run_id)
        self.ttl_s = ttl_s
        self.clock = clock
        self._checked_at = float("-inf")
        self._cancelled = False
        self._expired_at = float("-inf")

    def send(self, payloads: Sequence[str | bytes]) -> None:
        """Append encoded events (see :func:`farm.messages.encode_event`)."""
        pipe = self.client.pipeline(transaction=False)
        for payload in payloads:
            pipe.xadd(self.stream, {"m": payload})
        now = self.clock()
        if now - self._expired_at >= _EXPIRE_EVERY_S:
            pipe.expire(self.stream, self.ttl_s)
            self._expired_at = now
        pipe.execute()

    def cancelled(self) -> bool:
        # Polled every half second by the runner; one GET a second is plenty.
        now = self.clock()
        if not self._cancelled and now - self._checked_at >= _CANCEL_CHECK_S:
            self._checked_at = now
            self._cancelled = bool(self.client.exists(self.cancel_key))
        return self._cancelled
