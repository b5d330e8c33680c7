"""Query parameters as the OpenAPI document declares them, and bad values answered in
one line like every other bad input of the dashboard.

Each route declares its query parameters with their types and limits, so the
document says what a route accepts and schemathesis generates requests for them.
FastAPI checks a value against its declaration before the route runs; a route made
with :class:`OneLineErrors` answers such a value 400 in one line (plain text for a
page, the JSON answer for the API) instead of FastAPI's list of errors.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, PlainTextResponse, Response
from fastapi.routing import APIRoute
from starlette.requests import Request

from farm.server.answers import answer

# PostgreSQL's text holds no NUL character: a value with one could match nothing and
# would fail in the driver, so it is refused as a bad value.
NO_NUL = r"^[^\x00]*$"
_REASON_CHARS = 300
_VALUE_CHARS = 60


JSON_TYPE = "application/json"


def declared_body(
    media_type: str, schema: dict[str, Any], *, required: bool = True
) -> dict[str, Any]:
    """The OpenAPI declaration (a route's ``openapi_extra``) of a body the route reads
    and checks by hand: the document shows it without FastAPI parsing it."""
    return {"requestBody": {"required": required, "content": {media_type: {"schema": schema}}}}


def blank_is_none(value: object) -> object:
    """A blank field is no value (a GET form sends every field, the empty ones too);
    blanks around a value are not part of it."""
    return value.strip() or None if isinstance(value, str) else value


def validation_reason(error: RequestValidationError) -> str:
    """The first bad value of a request, in one line: its name, what it was, why."""
    first: dict[str, Any] = next(iter(error.errors()), {})
    name = ".".join(str(part) for part in first.get("loc", ())[1:]) or "the request"
    given = first.get("input")
    shown = "" if given is None else f" {str(given)[:_VALUE_CHARS]!r}"
    message = str(first.get("msg", "is not valid"))
    return " ".join(f"{name}{shown}: {message}".split())[:_REASON_CHARS]


class OneLineErrors(APIRoute):
    """A route whose parameters' bad values are answered 400 in one line."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()
        page = _is_page(self.response_class)

        async def handle_in_one_line(request: Request) -> Response:
            try:
                return await handle(request)
            except RequestValidationError as error:
                reason = validation_reason(error)
                if page:
                    return PlainTextResponse(reason + "\n", status_code=400)
                return answer(400, "refused", reason)

        return handle_in_one_line


def _is_page(response_class: Any) -> bool:
    # FastAPI wraps a route's default response class in a placeholder holding it.
    chosen = getattr(response_class, "value", response_class)
    return isinstance(chosen, type) and issubclass(chosen, HTMLResponse)


__all__ = [
    "JSON_TYPE",
    "NO_NUL",
    "OneLineErrors",
    "blank_is_none",
    "declared_body",
    "validation_reason",
]
