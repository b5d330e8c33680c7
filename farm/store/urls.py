"""Database and broker URLs: masking secrets for messages, choosing the database driver.

A *masked* URL is one safe to print: its password (the part of the user info after
the first ``:``) and the values of password-like query parameters are replaced by
``***``. Every message that names a URL names it masked.
"""

from __future__ import annotations

import re

from sqlalchemy.engine import URL, make_url

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

# Drivers farm ships with for a URL that names none (SQLAlchemy's default for
# "postgresql" is psycopg2, which farm does not depend on).
_DEFAULT_DRIVERS = {"postgresql": "postgresql+psycopg", "postgres": "postgresql+psycopg"}


def mask_url(url: str) -> str:
    """``url`` with its password and password-like query values replaced by ``***``.

    Works on any ``scheme://user:password@host/...`` URL (PostgreSQL, Redis, AMQP),
    and leaves a URL without a password unchanged.
    """
    match = _USERINFO.match(url)
    if match is not None and match["password"]:
        url = f"{match['head']}:{MASK}@{match['rest']}"
    return _SECRET_PARAM.sub(lambda m: f"{m['key']}{MASK}", url)


def database_url(url: str) -> URL:
    """The SQLAlchemy URL for ``url``, with psycopg 3 chosen for a bare PostgreSQL URL.

    Raises :class:`sqlalchemy.exc.ArgumentError` when ``url`` is not a URL.
    """
    parsed = make_url(url)
    driver = _DEFAULT_DRIVERS.get(parsed.drivername)
    return parsed if driver is None else parsed.set(drivername=driver)
