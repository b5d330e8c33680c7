"""Checks of the secrets a request to ``farm serve`` carries, in constant time.

GitHub signs each webhook body: ``X-Hub-Signature-256: sha256=<hex>``, the
HMAC-SHA256 of the raw body keyed with the webhook's secret. GitLab sends the
secret itself (``X-Gitlab-Token``), and the API takes a bearer token
(``Authorization: Bearer <token>``). An empty configured secret accepts nothing:
a repository without one is not open to whoever finds the server.
"""

from __future__ import annotations

import hashlib
import hmac
import re

_GITHUB_PREFIX = "sha256="
_HEX_SHA256 = re.compile(r"[0-9a-fA-F]{64}")


def github_signature_ok(secret: str, body: bytes, header: str | None) -> bool:
    """Whether ``header`` (``X-Hub-Signature-256``) signs ``body`` with ``secret``."""
    if not secret or header is None:
        return False
    given = header.strip()
    if not given.startswith(_GITHUB_PREFIX):
        return False
    digest = given[len(_GITHUB_PREFIX) :]
    if not _HEX_SHA256.fullmatch(digest):
        return False
    expected = hmac.new(_utf8(secret), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, digest.lower())


def token_ok(expected: str, given: str | None) -> bool:
    """Whether ``given`` is the secret ``expected``.

    Both sides are hashed first, so the comparison sees two values of one length:
    the time it takes says nothing of the secret's length either.
    """
    if not expected or given is None:
        return False
    return hmac.compare_digest(
        hashlib.sha256(_utf8(expected)).digest(), hashlib.sha256(_utf8(given)).digest()
    )


def bearer_token(authorization_header: str | None) -> str | None:
    """The token of ``Authorization: Bearer <token>``; None for any other header.

    The scheme is case-insensitive (RFC 9110); the token is one word.
    """
    if authorization_header is None:
        return None
    parts = authorization_header.split()
    if len(parts) != 2 or parts[0].lower() != "bearer":
        return None
    return parts[1]


def _utf8(text: str) -> bytes:
    # Header values may hold anything a client sent; never raise on encoding it.
    return text.encode("utf-8", "surrogatepass")


__all__ = ["bearer_token", "github_signature_ok", "token_ok"]
