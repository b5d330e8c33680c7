"""Reads a run's events stream from Redis and trims what has been read."""

from __future__ import annotations

import logging
from typing import Any

import redis

from farm.core.keys import Keys
from farm.core.messages import Event, decode_event
from farm.core.wire_fields import MessageError

log = logging.getLogger(__name__)


class EventReader:
    """Blocking reads of ``{prefix}run:{id}:events`` from a cursor, malformed entries skipped."""

    def __init__(self, client: redis.Redis, keys: Keys, run_id: str, *, ttl_s: int) -> None:
        self.client = client
        self.stream = keys.events(run_id)
        self.cursor = "0-0"
        self.ttl_s = ttl_s

    def read(self, *, block_ms: int, count: int = 5000) -> list[Event]:
        reply: Any = self.client.xread({self.stream: self.cursor}, count=count, block=block_ms)
        # RESP2 answers a list of (stream, entries) pairs, RESP3 a map: accept both.
        streams = reply.items() if isinstance(reply, dict) else (reply or ())
        events: list[Event] = []
        for _stream, entries in streams:
            for entry_id, fields in entries:
                self.cursor = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
                raw = fields.get(b"m", fields.get("m"))
                try:
                    if raw is None:
                        raise MessageError("entry has no field 'm'")
                    events.append(decode_event(raw))
                except MessageError as e:
                    log.warning("skipped malformed event %s: %s", self.cursor, e)
        return events

    def trim(self) -> None:
        """Drop entries already read: the database holds them now."""
        if self.cursor != "0-0":
            pipe = self.client.pipeline(transaction=False)
            pipe.xtrim(self.stream, minid=self.cursor)
            pipe.expire(self.stream, self.ttl_s)
            pipe.execute()
