"""Opening the artifact store a location names (see :mod:`farm.core.locations` for
the forms a location takes, checked where settings are read)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from farm.artifacts.base import ArtifactError, ArtifactStore
from farm.core import defaults
from farm.core.errors import SettingsError
from farm.core.locations import check_location

if TYPE_CHECKING:
    import redis


def open_artifacts(
    location: str,
    *,
    redis_client: redis.Redis | None = None,
    key_prefix: str = defaults.KEY_PREFIX,
    ttl_s: int = defaults.RUN_TTL_S,
) -> ArtifactStore:
    """The store at ``location``; ArtifactError if it cannot be opened.

    A bad location is an ArtifactError here, not a SettingsError: on a worker it
    comes from a task, and the task's shard fails rather than the worker.
    """
    try:
        normal = check_location(location)
    except SettingsError as e:
        raise ArtifactError(e.message) from e
    if normal == "redis":
        if redis_client is None:
            raise ArtifactError("artifact store redis needs a Redis client and none was given")
        from farm.artifacts.redis_store import RedisArtifacts  # redis-py only when used

        return RedisArtifacts(redis_client, key_prefix, ttl_s)
    if normal.startswith("s3://"):
        from farm.artifacts.s3_store import S3Artifacts

        bucket, _, prefix = normal[len("s3://") :].partition("/")
        return S3Artifacts(bucket, prefix)
    from farm.artifacts.dir_store import DirArtifacts

    return DirArtifacts(Path(normal))
