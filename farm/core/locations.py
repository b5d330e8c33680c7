"""Where snapshots are kept, as a setting: the forms an artifacts location takes.

A location is one string that travels in every shard task and lands in the
results store, so it must never carry a secret: credentials come from the
broker's client (``redis``) or boto3's chain (``s3://``), never from the string.
Checking one is cheap (no network, no boto3 import) because every CLI call that
sets ``artifacts`` pays for it; :mod:`farm.artifacts` opens the store it names.
"""

from __future__ import annotations

import importlib.util
import os
import re
from urllib.parse import SplitResult, unquote, urlsplit

from farm.core.errors import SettingsError
from farm.core.urls import mask_url

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
        raise _bad(location, 'S3 needs boto3: pip install "pytest-farm[s3]"')
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
