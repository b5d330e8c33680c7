"""What the server answers: one JSON shape for every outcome of a request.

Every answer is ``{"status": ..., "reason": ...}`` (plus what was queued), so a
forge's delivery log shows in one line why a delivery did or did not start a run.
"""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse


class Refused(Exception):
    """Raised when a request is answered with an error status and one-line reason."""

    def __init__(self, status_code: int, reason: str) -> None:
        super().__init__(reason)
        self.status_code = status_code
        self.reason = reason


def answer(status_code: int, status: str, reason: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"status": status, "reason": reason, **extra}, status_code=status_code)


def refusal(error: Refused) -> JSONResponse:
    return answer(error.status_code, "refused", error.reason)


__all__ = ["Refused", "answer", "refusal"]
