"""Artifacts in the broker's Redis, for farms with nothing else shared between machines.

A snapshot is the hash ``{prefix}snapshot:{digest}`` with fields ``"0"``,
``"1"``, ... of 1 MiB each plus ``"size"`` and ``"chunks"``: no single Redis value
is large, and neither side holds more than a few chunks in memory. An upload
writes its chunks under ``{key}:upload:{random}`` (itself expiring, so a killed
uploader leaves nothing for long), then publishes it with RENAMENX in one script,
so readers see a whole snapshot or none and a second uploader of the same digest
simply discards its copy. The snapshot expires ``ttl_s`` after its last upload,
``has`` or fetch: a snapshot a later run reuses must not expire during that run.
Both keys are built by :class:`farm.core.keys.Keys`.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Generator
from pathlib import Path

import redis

from farm.artifacts.base import (
    ArtifactError,
    ArtifactMissing,
    ChunkedStore,
    check_digest,
    one_line,
    read_verified,
)
from farm.core.keys import Keys

# Chunks sent per pipelined round trip: bounds the uploader's memory to about 8 MiB.
_CHUNKS_PER_BATCH = 8
# Each batch pushes the temporary key's expiry this far ahead; a live upload
# sends a batch far more often, and a dead one is gone within this time.
_UPLOAD_TTL_S = 600

# Publishes an upload atomically. A MULTI cannot check that the temporary hash
# still holds every chunk (it may have expired during a stalled upload, and HSET
# would then publish an empty one), so this runs as one script. RENAMENX, not
# RENAME: a reader already streaming the first uploader's copy keeps reading it.
_PUBLISH = """
if redis.call('HLEN', KEYS[1]) ~= tonumber(ARGV[2]) then
    redis.call('DEL', KEYS[1])
    return -1
end
redis.call('HSET', KEYS[1], 'size', ARGV[1], 'chunks', ARGV[2])
if redis.call('RENAMENX', KEYS[1], KEYS[2]) == 0 then
    redis.call('DEL', KEYS[1])
end
redis.call('EXPIRE', KEYS[2], ARGV[3])
return 1
"""


class RedisArtifacts(ChunkedStore):
    """Snapshots chunked in Redis hashes under ``key_prefix``, expiring after ``ttl_s``."""

    location = "redis"

    def __init__(self, client: redis.Redis, key_prefix: str, ttl_s: int) -> None:
        if client.get_connection_kwargs().get("decode_responses"):
            raise ArtifactError(
                "artifact store redis needs a client that returns bytes (decode_responses off)"
            )
        if ttl_s <= 0:
            raise ArtifactError(f"artifact store redis: ttl_s must be positive, got {ttl_s}")
        self.client = client
        self.keys = Keys(key_prefix)
        self.ttl_s = ttl_s
        self._publish = client.register_script(_PUBLISH)

    def key(self, digest: str) -> str:
        return self.keys.snapshot(check_digest(digest, self.location))

    def has(self, digest: str) -> bool:
        key = self.key(digest)
        try:
            # EXPIRE answers whether the key exists and refreshes it in one round trip;
            # the key only ever appears complete.
            return bool(self.client.expire(key, self.ttl_s))
        except redis.RedisError as e:
            raise self._error("cannot look up", digest, e) from e

    def put(self, digest: str, path: Path) -> int:
        key = self.key(digest)
        if self.has(digest):
            return 0
        tmp = self.keys.upload(digest, uuid.uuid4().hex)
        size = 0
        count = 0
        try:
            with self.client.pipeline(transaction=False) as pipe:
                for chunk in read_verified(path, digest, self.location):
                    pipe.hset(tmp, str(count), chunk)
                    size += len(chunk)
                    count += 1
                    if count % _CHUNKS_PER_BATCH == 0:
                        pipe.expire(tmp, _UPLOAD_TTL_S)
                        pipe.execute()
                pipe.expire(tmp, _UPLOAD_TTL_S)
                pipe.execute()
            published = self._publish(keys=[tmp, key], args=[size, count, self.ttl_s])
        except redis.RedisError as e:
            self._discard(tmp)
            raise self._error("cannot upload", digest, e) from e
        except BaseException:
            self._discard(tmp)
            raise
        if published < 0:
            raise ArtifactError(
                f"artifact store redis: the upload of {digest} expired before it completed"
            )
        return size

    def _chunks(self, digest: str, max_bytes: int) -> Generator[bytes, None, None]:
        key = self.key(digest)
        try:
            with self.client.pipeline(transaction=False) as pipe:
                pipe.hmget(key, ["size", "chunks"])
                pipe.expire(key, self.ttl_s)
                (size_raw, count_raw), _ = pipe.execute()
        except redis.RedisError as e:
            raise self._error("cannot fetch", digest, e) from e
        if size_raw is None and count_raw is None:
            raise ArtifactMissing(
                f"artifact store redis has no {digest} (never uploaded, or expired)"
            )
        try:
            size, count = int(size_raw), int(count_raw)
        except (TypeError, ValueError) as e:
            raise ArtifactError(f"artifact store redis: {digest} is damaged (bad header)") from e
        if size > max_bytes:  # refused before a byte is sent
            raise ArtifactError(
                f"artifact store redis: refused {digest}: its {size} bytes are over "
                f"the limit of {max_bytes} bytes"
            )
        for index in range(count):
            try:
                chunk = self.client.hget(key, str(index))
            except redis.RedisError as e:
                raise self._error("cannot fetch", digest, e) from e
            if not isinstance(chunk, bytes):
                raise ArtifactError(
                    f"artifact store redis: {digest} lost chunk {index} of {count} while "
                    "being fetched (expired or damaged)"
                )
            yield chunk

    def _discard(self, tmp: str) -> None:
        """Delete an upload's temporary key; it expires anyway if Redis is unreachable."""
        with contextlib.suppress(redis.RedisError):
            self.client.delete(tmp)

    def _error(self, action: str, digest: str, e: Exception) -> ArtifactError:
        return ArtifactError(f"artifact store redis: {action} {digest}: {one_line(e)}")
