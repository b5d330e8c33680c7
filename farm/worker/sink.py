"""Forwards a shard's events to the run's Redis stream, checking for cancellation.

A send that cannot reach Redis is retried with backoff for up to ``outage_s``: a
restart or a short network cut should not throw away the results of a shard
(the scheduler fences whatever it has meanwhile handed out again).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import redis

from farm.core.keys import Keys

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
        outage_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.client = client
        self.stream = keys.events(run_id)
        self.cancel_key = keys.cancel(run_id)
        self.ttl_s = ttl_s
        self.outage_s = outage_s
        self.clock = clock
        self.sleep = sleep
        self._checked_at = float("-inf")
        self._cancelled = False
        self._expired_at = float("-inf")

    def send(self, payloads: Sequence[str | bytes], *, retry: bool = True) -> None:
        """Append encoded events (see :func:`farm.core.messages.encode_event`)."""
        deadline = self.clock() + (self.outage_s if retry else 0.0)
        pause_s = 0.2
        while True:
            try:
                self._send(payloads)
                return
            except (redis.ConnectionError, redis.TimeoutError):
                if self.clock() + pause_s > deadline:
                    raise
                self.sleep(pause_s)
                pause_s = min(pause_s * 2, 5.0)

    def _send(self, payloads: Sequence[str | bytes]) -> None:
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
