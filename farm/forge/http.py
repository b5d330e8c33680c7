"""One JSON request to a forge's API, with a timeout, quick retries and clean errors.

A 5xx answer or a failed connection is tried again (``retries`` times, waiting
``backoff_s``, then twice that, ...): forges have short outages. A 4xx answer is
not: the request itself is wrong, or its credentials. Nor is a redirect followed
(a renamed repository): it could carry the credentials elsewhere; it fails too.
Every failure is one :class:`~farm.core.errors.ForgeError` whose one-line message
names the forge, the method, the path and the forge's own message, with every
secret the caller names blotted out, should a forge echo one back.

Requests that create something (a check run) are retried too: a lost answer may
leave a duplicate, which forges show once (the latest of a name wins).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from farm.core import defaults
from farm.core.errors import ForgeError

USER_AGENT = "farm"
_MESSAGE_LIMIT = 200  # characters of a forge's message kept in an error


@dataclass(frozen=True)
class HttpPolicy:
    """How requests to a forge are made; ``sleep`` is injected so tests need not wait."""

    timeout_s: float = defaults.FORGE_TIMEOUT_S
    retries: int = defaults.FORGE_RETRIES
    backoff_s: float = defaults.FORGE_BACKOFF_S
    sleep: Callable[[float], None] = time.sleep


def send_json(
    forge: str,
    method: str,
    url: str,
    *,
    headers: Mapping[str, str],
    body: Mapping[str, Any] | None,
    policy: HttpPolicy,
    secrets: tuple[str, ...],
) -> Any:
    """Send ``body`` as JSON and return the answer's JSON (None for an empty answer)."""
    import httpx

    path = urlsplit(url).path
    what = f"{forge} {method} {path}"
    all_headers = {"User-Agent": USER_AGENT, **headers}
    content = None
    if body is not None:
        all_headers["Content-Type"] = "application/json"
        # Test output may hold lone surrogates, which UTF-8 cannot carry: "?" instead.
        content = json.dumps(body, ensure_ascii=False).encode("utf-8", "replace")
    delay_s = policy.backoff_s
    for attempt in range(policy.retries + 1):
        last = attempt == policy.retries
        try:
            with httpx.Client(timeout=policy.timeout_s, follow_redirects=False) as client:
                response = client.request(method, url, headers=all_headers, content=content)
        except httpx.HTTPError as e:
            if last:
                reason = _scrub(f"{type(e).__name__}: {e}", secrets)
                raise ForgeError(f"cannot reach {what}: {reason}") from None
        else:
            if response.status_code < 300:
                return _json(response, what)
            if response.status_code < 500 or last:
                message = _scrub(_forge_message(response), secrets)
                raise ForgeError(
                    f"{what} was refused: {response.status_code} {message}".rstrip()
                ) from None
        policy.sleep(delay_s)
        delay_s *= 2
    raise AssertionError("unreachable: the last attempt returns or raises")


def _json(response: Any, what: str) -> Any:
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        raise ForgeError(f"{what} answered {response.status_code} with no JSON") from None


def _forge_message(response: Any) -> str:
    """The forge's reason: GitHub's and GitLab's JSON ``message`` (or ``error``), else text."""
    try:
        data = response.json()
    except ValueError:
        data = None
    text = response.text
    if isinstance(data, dict):
        found = data.get("message", data.get("error"))
        if found is not None:
            text = found if isinstance(found, str) else str(found)
    line = " ".join(text.split())
    return line if len(line) <= _MESSAGE_LIMIT else line[:_MESSAGE_LIMIT] + "…"


def _scrub(text: str, secrets: tuple[str, ...]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


__all__ = ["USER_AGENT", "HttpPolicy", "send_json"]
