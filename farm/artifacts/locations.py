"""Artifact locations: checked where settings are read, opened where snapshots move.

A location is one string that travels in every shard task and lands in the
results store, so it must never carry a secret: credentials come from the
broker's client (``redis``) or boto3's chain (``s3://``), never from the string.
:func:`check_location` is cheap (no network, no boto3 import) because every CLI
call that sets ``artifacts`` pays for it.
"""

from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import SplitResult, unquote, urlsplit

from farm.artifacts.base import ArtifactError, ArtifactStore
from farm.core import defaults
from farm.core.errors import SettingsError
from farm.core.urls import mask_url

if TYPE_CHECKING:
    import redis

# S3's rules for new buckets: 3 to 63 lowercase letters, digits, dots and hyphens.
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]")
_FORMS = "use redis, an absolute folder, file:///folder or s3://bucket/prefix"


def check_location(location: str) -> str:
    """``location`` in its normal form, or SettingsError naming it (password masked).

    ``redis``; an absolute folder (``/srv/artifacts``, also as ``file:///srv/artifacts``,
    normalised to the plain path); ``s3://bucket`` or ``s3://bucket/prefix``.
    """
    text = location.strip()
    if text.lower() == "redis":
        return "redis"
    if "\0" in text:
        raise _bad(location, "it holds a NUL character")
    if text.startswith("/"):
        return os.path.normpath(text)
    if "://" not in text:
        reason = "it is empty" if not text else "a folder must be an absolute path"
        raise _bad(location, reason)
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if "@" in parts.netloc:
        raise _bad(location, "it holds credentials; they come from the environment")
    if parts.query or parts.fragment:
        raise _bad(location, "it has a query or fragment")
    if scheme == "file":
        return _file_path(location, parts)
    if scheme == "s3":
        return _s3_location(location, parts)
    raise _bad(location, f"unknown scheme {parts.scheme!r}")


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


def _file_path(location: str, parts: SplitResult) -> str:
    if parts.netloc not in ("", "localhost"):
        raise _bad(location, "a file URL must name a folder on this machine (file:///folder)")
    path = unquote(parts.path)
    if not path.startswith("/") or "\0" in path:
        raise _bad(location, "a file URL must name an absolute folder (file:///folder)")
    return os.path.normpath(path)


def _s3_location(location: str, parts: SplitResult) -> str:
    bucket = parts.netloc
    if not bucket:
        raise _bad(location, "it names no bucket (s3://bucket/prefix)")
    if not _BUCKET.fullmatch(bucket) or ".." in bucket:
        raise _bad(location, f"{bucket!r} is not a valid bucket name")
    if importlib.util.find_spec("boto3") is None:
        raise _bad(location, 'S3 needs boto3: pip install "farm[s3]"')
    prefix = "/".join(p for p in parts.path.split("/") if p)
    return f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"


def _bad(location: str, reason: str) -> SettingsError:
    return SettingsError(f"bad artifacts location {_shown(location)!r}: {reason}; {_FORMS}")


def _shown(location: str) -> str:
    """``location`` safe to print: any user info (a key, a token) masked whole."""
    head, sep, rest = location.partition("://")
    if sep:
        authority, slash, path = rest.partition("/")
        if "@" in authority:
            authority = "***@" + authority.rsplit("@", 1)[1]
        location = f"{head}{sep}{authority}{slash}{path}"
    return mask_url(location)
