"""Masking secrets in URLs for messages, with no heavy imports.

A *masked* URL is one safe to print: its password (the part of the user info after
the first ``:``) and the values of password-like query parameters are replaced by
``***``. Every message that names a URL names it masked.
"""

from __future__ import annotations

import re

MASK = "***"

# scheme://user:password@rest, where the password runs to the last "@" before a host
# part that holds none: passwords with unescaped "@" or "/" are masked whole too.
_USERINFO = re.compile(
    r"^(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^:/@]*):(?P<password>.*)@(?P<rest>[^@]*)$"
)
_SECRET_PARAM = re.compile(
    r"(?P<key>[?&](?:password|passwd|pwd|secret|token|sslpassword)=)(?P<value>[^&#]*)",
    re.IGNORECASE,
)


def mask_url(url: str) -> str:
    """``url`` with its password and password-like query values replaced by ``***``.

    Works on any ``scheme://user:password@host/...`` URL (PostgreSQL, Redis, AMQP),
    and leaves a URL without a password unchanged.
    """
    match = _USERINFO.match(url)
    if match is not None and match["password"]:
        url = f"{match['head']}:{MASK}@{match['rest']}"
    return _SECRET_PARAM.sub(lambda m: f"{m['key']}{MASK}", url)
