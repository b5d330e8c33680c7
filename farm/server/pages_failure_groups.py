"""A run's failure group: ``GET /runs/{id}/group?signature=...``, its JSON twin
``GET /api/runs/{id}/group`` and the fragment the run page loads into an opened
group (``GET /runs/{id}/group/failures``).

A group is named by its signature (see :mod:`farm.core.failure_signature`), the
text its headline shows. Its tests' final failing attempts come a page at a time,
each with its traceback and output one click away, so a group of 10,000 tests
costs what a group of 20 does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse, JSONResponse, Response
from jinja2 import Environment

from farm.core.errors import UsageError
from farm.core.failure_signature import SIGNATURE_MAX_CHARS, group_headline
from farm.server.params import OneLineErrors
from farm.store.dashboard import DashboardQueries

GROUP_FAILURES_PER_PAGE = 20

Signature = Annotated[
    str, Query(min_length=1, max_length=SIGNATURE_MAX_CHARS, description="the group's signature")
]
Cursor = Annotated[str | None, Query(max_length=200, description="the next page's cursor")]


def group_urls(run_id: str, signature: str) -> dict[str, str]:
    """The group's page and the fragment the run page loads when it is opened."""
    query = urlencode({"signature": signature})
    return {
        "url": f"/runs/{run_id}/group?{query}",
        "fragment_url": f"/runs/{run_id}/group/failures?{query}",
    }


def group_routes(
    board: DashboardQueries,
    *,
    environment: Environment,
    failure_dict: Callable[[str, Any], dict[str, Any]],
) -> APIRouter:
    """The group page, its JSON twin and its fragment; ``failure_dict`` shapes one
    failure as the run page does."""
    router = APIRouter(route_class=OneLineErrors)

    def group_view(run_id: str, signature: str, cursor: str | None) -> tuple[int, dict[str, Any]]:
        """(status, view): 404 for an unknown run or a group the run does not have,
        400 for a bad cursor."""
        try:
            tests, page = board.run_group_failures(
                run_id, signature, limit=GROUP_FAILURES_PER_PAGE, cursor=cursor
            )
        except UsageError as error:
            unknown = cursor is None  # without a cursor, only an unknown run fails
            return (
                (404, {"problem": f"there is no run {run_id}"})
                if unknown
                else (400, {"problem": str(error)})
            )
        if tests == 0:
            return 404, {"problem": f"no test of run {run_id} failed with {signature}"}
        return 200, {
            "run_id": run_id,
            "signature": signature,
            "tests": tests,
            "headline": group_headline(tests, signature),
            "failures": [failure_dict(run_id, row) for row in page.items],
            "cursor": cursor,
            "next_cursor": page.next_cursor,
        }

    def render(status: int, view: dict[str, Any], *, fragment: bool) -> HTMLResponse:
        template = "group_fragment.html" if fragment else "group.html"
        html = environment.get_template(template).render(problem=view.get("problem"), view=view)
        return HTMLResponse(html, status_code=status)

    @router.get("/api/runs/{run_id}/group")
    def group_json(run_id: str, signature: Signature, cursor: Cursor = None) -> Response:
        status, view = group_view(run_id, signature, cursor)
        if status != 200:
            return JSONResponse({"status": "refused", "reason": view["problem"]}, status)
        return JSONResponse(view)

    @router.get("/runs/{run_id}/group", response_class=HTMLResponse)
    def group_page(run_id: str, signature: Signature, cursor: Cursor = None) -> HTMLResponse:
        return render(*group_view(run_id, signature, cursor), fragment=False)

    @router.get("/runs/{run_id}/group/failures", response_class=HTMLResponse)
    def group_fragment(run_id: str, signature: Signature, cursor: Cursor = None) -> HTMLResponse:
        return render(*group_view(run_id, signature, cursor), fragment=True)

    return router


__all__ = ["GROUP_FAILURES_PER_PAGE", "group_routes", "group_urls"]
