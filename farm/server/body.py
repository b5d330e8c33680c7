"""Reading a request's body within a size limit, before anything else looks at it.

A webhook's signature covers its raw bytes, so the body is read whole (never parsed
and re-serialised), but never past ``limit_bytes``: a declared length over the limit
is refused before reading, and a body that streams past it is cut off there.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request

from farm.server.answers import Refused


async def read_body(request: Request, limit_bytes: int) -> bytes:
    """The raw body, or :class:`Refused` (413) past ``limit_bytes``."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise Refused(400, "Content-Length is not a number")
        if int(declared) > limit_bytes:
            raise Refused(413, f"body over the limit of {limit_bytes} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit_bytes:
            raise Refused(413, f"body over the limit of {limit_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def json_object(body: bytes) -> dict[str, Any]:
    """The body as a JSON object, or :class:`Refused` (400)."""
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        raise Refused(400, "the body is not JSON") from None
    if not isinstance(payload, dict):
        raise Refused(400, "the body is not a JSON object")
    return payload


__all__ = ["json_object", "read_body"]
