"""The dashboard's pages about tests: one test's history, and the flaky, slowest and
duration-change leaderboards of a project, each with its JSON twin under ``/api/``.

A test is named by query parameters (``?project=P&node_id=N``), not by the path:
node ids hold ``/``, ``::`` and ``[...]``. Everything a test supplies (its node id,
parameters, reasons, actors) reaches HTML only through Jinja2's autoescaping; the
one piece of markup built here, the duration plot, is made of numbers and escaped
text. Signed-in writers quarantine a test from its page through
:func:`farm.server.auth.require_writer`, which also checks the form's CSRF token.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from enum import Enum
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query
from fastapi.encoders import jsonable_encoder
from fastapi.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
)
from jinja2 import Environment
from markupsafe import Markup, escape
from pydantic import BeforeValidator, Field
from starlette.requests import Request

from farm.core.errors import UsageError
from farm.server.answers import Refused, refusal
from farm.server.auth import CSRF_FIELD, form_body, form_fields, require_writer, writer_csrf
from farm.server.params import JSON_TYPE, NO_NUL, OneLineErrors, blank_is_none, declared_body
from farm.store import ResultStore
from farm.store.dashboard_records import Page, TestRunPoint
from farm.store.quarantine import NAME_CHARS

PAGE_ROWS = 50  # rows of a table page; the store's cursor fetches the next
PROJECT_CHARS = NAME_CHARS  # the store's project columns are as wide as its name columns
DEFAULT_DAYS = 7
BOARD_TITLES = {"flaky": "Flaky tests", "slowest": "Slowest tests", "durations": "Duration changes"}
MAX_DAYS = 366
DAY_S = 24 * 3600.0
PLOT_WIDTH = 640
PLOT_HEIGHT = 160
_PLOT_PAD = 8


class Shown(str, Enum):
    """Which tests the flaky board lists, by quarantine."""

    ALL = "all"
    ONLY = "only"  # the quarantined ones
    NONE = "none"  # those not in quarantine


_QUARANTINED = {Shown.ALL: None, Shown.ONLY: True, Shown.NONE: False}
_Project = Annotated[str, Query(pattern=NO_NUL, description="the project's name")]
_NeededProject = Annotated[str, Query(min_length=1, pattern=NO_NUL, description="the project")]
_Cursor = Annotated[str, Query(description="the next_cursor of the page before")]
_NodeId = Annotated[str, Query(min_length=1, description="the test's pytest node id")]
_Days = Annotated[
    Annotated[int, Field(ge=1, le=MAX_DAYS)] | None,
    BeforeValidator(blank_is_none),
    Query(description=f"the window, in days back from now (default {DEFAULT_DAYS})"),
]
_ShownParam = Annotated[
    Shown | None, BeforeValidator(blank_is_none), Query(description="by quarantine (default all)")
]


@dataclass(frozen=True)
class BoardQuery:
    """What a leaderboard is asked for."""

    project: str
    days: int
    cursor: str | None
    quarantined: Shown | None = None  # the flaky board's filter; None on the others


class Change(str, Enum):
    """What a quarantine request does to its test."""

    ADD = "add"
    REMOVE = "remove"


# The quarantine bodies, read by hand (after the writer's CSRF check, which may read
# the form first), declared here for the OpenAPI document.
_QUARANTINE_FIELDS: dict[str, Any] = {
    "project": {"type": "string", "minLength": 1, "maxLength": PROJECT_CHARS, "pattern": NO_NUL},
    "node_id": {"type": "string", "minLength": 1, "description": "the test's pytest node id"},
    "action": {"type": "string", "enum": [change.value for change in Change]},
    "reason": {"type": "string", "minLength": 1, "description": "kept in the test's history"},
}
_QUARANTINE_REQUIRED = ["project", "node_id", "action", "reason"]
_QUARANTINE_JSON = declared_body(
    JSON_TYPE,
    {"type": "object", "properties": _QUARANTINE_FIELDS, "required": _QUARANTINE_REQUIRED},
)
_QUARANTINE_FORM = form_body(
    {**_QUARANTINE_FIELDS, CSRF_FIELD: {"type": "string", "description": "a session's CSRF token"}},
    _QUARANTINE_REQUIRED,
)


def board_query(project: _Project = "", days: _Days = None, cursor: _Cursor = "") -> BoardQuery:
    """A board page's query: without a project, the page lists the projects."""
    return BoardQuery(project, DEFAULT_DAYS if days is None else days, cursor or None)


def api_board_query(
    project: _NeededProject, days: _Days = None, cursor: _Cursor = ""
) -> BoardQuery:
    return board_query(project, days, cursor)


def flaky_query(
    query: Annotated[BoardQuery, Depends(board_query)], quarantined: _ShownParam = None
) -> BoardQuery:
    return replace(query, quarantined=quarantined or Shown.ALL)


def api_flaky_query(
    query: Annotated[BoardQuery, Depends(api_board_query)], quarantined: _ShownParam = None
) -> BoardQuery:
    return replace(query, quarantined=quarantined or Shown.ALL)


# Each board's (page, JSON) queries: only the flaky board filters by quarantine.
_QUERIES = {
    "flaky": (Depends(flaky_query), Depends(api_flaky_query)),
    "slowest": (Depends(board_query), Depends(api_board_query)),
    "durations": (Depends(board_query), Depends(api_board_query)),
}


def duration_svg(
    points: Sequence[tuple[float, float, str]],
    *,
    width: int = PLOT_WIDTH,
    height: int = PLOT_HEIGHT,
) -> Markup:
    """An inline SVG of durations over time: ``(created_at, duration_s, label)`` per
    run, in any order; a polyline oldest to newest, a dot per run titled with its
    (escaped) label. Only numbers and escaped text go in, so the result is safe."""
    if not points:
        return Markup("")
    ordered = sorted(points, key=lambda p: p[0])
    first, last = ordered[0][0], ordered[-1][0]
    span_t = last - first or 1.0
    top_s = max(p[1] for p in ordered) or 1.0
    inner_w, inner_h = width - 2 * _PLOT_PAD, height - 2 * _PLOT_PAD

    def xy(at: float, duration_s: float) -> tuple[float, float]:
        x = _PLOT_PAD + (at - first) / span_t * inner_w if len(ordered) > 1 else width / 2
        y = _PLOT_PAD + inner_h - max(0.0, duration_s) / top_s * inner_h
        return round(x, 1), round(y, 1)

    coords = [xy(at, d) for at, d, _ in ordered]
    line = " ".join(f"{x},{y}" for x, y in coords)
    dots = "".join(
        f'<circle cx="{x}" cy="{y}" r="3"><title>{escape(label)}: {_finite(d):.3f}s'
        "</title></circle>"
        for (x, y), (_, d, label) in zip(coords, ordered, strict=True)
    )
    return Markup(
        f'<svg class="duration-plot" xmlns="http://www.w3.org/2000/svg" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="duration over time, up to {_finite(top_s):.3f}s">'
        f'<polyline fill="none" stroke="#3b6fd8" stroke-width="1.5" points="{line}"/>'
        f'<g fill="#1d2330">{dots}</g></svg>'
    )


def _finite(value: float) -> float:
    return value if math.isfinite(value) else 0.0


def _need(name: str, value: str) -> str:
    if not value:
        raise UsageError(f"the {name} query parameter is needed")
    return value


def _page_dict(page: Page[Any]) -> dict[str, Any]:
    return {"items": [asdict(item) for item in page.items], "next_cursor": page.next_cursor}


def test_routes(
    store: ResultStore,
    *,
    environment: Environment,
    clock: Callable[[], float] = time.time,
    page_rows: int = PAGE_ROWS,
) -> APIRouter:
    """The Test page, quarantine from it, and the three leaderboards, with JSON twins;
    tables show ``page_rows`` rows a page."""
    router = APIRouter(route_class=OneLineErrors)
    board = store.dashboard

    def test_view(project: str, node_id: str, cursor: str | None) -> dict[str, Any]:
        _need("project", project)
        _need("node_id", node_id)
        runs: Page[TestRunPoint] = board.test_runs(
            project, node_id, limit=page_rows, cursor=cursor or None
        )
        overview = board.test_overview(project, node_id)
        known = runs.items or cursor or overview.quarantine or overview.quarantine_events
        if not known:
            raise Refused(404, f"no test {node_id[:200]!r} in project {project[:100]!r}")
        return {
            "project": project,
            "node_id": node_id,
            "runs": _page_dict(runs),
            "failures_by_machine": [
                {"machine": m, "failures": n} for m, n in overview.failures_by_machine
            ],
            "outcomes_by_branch": [
                {"branch": b, "outcome": o, "attempts": n}
                for b, o, n in overview.outcomes_by_branch
            ],
            "quarantine": None if overview.quarantine is None else asdict(overview.quarantine),
            "quarantine_events": [asdict(event) for event in overview.quarantine_events],
        }

    def board_view(kind: str, query: BoardQuery) -> dict[str, Any]:
        project = _need("project", query.project)
        days, cursor = query.days, query.cursor
        window_s = days * DAY_S
        view: dict[str, Any] = {"project": project, "days": days}
        if kind == "flaky":
            shown = query.quarantined or Shown.ALL
            view["quarantined"] = shown.value
            page: Page[Any] = board.flaky_tests(
                project,
                window_s=window_s,
                limit=page_rows,
                cursor=cursor,
                quarantined=_QUARANTINED[shown],
            )
        elif kind == "slowest":
            page = board.slowest_tests(project, window_s=window_s, limit=page_rows, cursor=cursor)
        else:
            page = board.duration_changes(
                project, window_s=window_s, limit=page_rows, cursor=cursor
            )
        view["tests"] = _page_dict(page)
        return view

    def pick_project(kind: str) -> dict[str, Any]:
        return {"title": BOARD_TITLES[kind], "path": f"/{kind}", "projects": board.projects()}

    def as_json(build: Callable[[], dict[str, Any]]) -> Response:
        try:
            return JSONResponse(jsonable_encoder(build()))
        except UsageError as error:
            return refusal(Refused(400, str(error)))
        except Refused as error:
            return refusal(error)

    def as_page(
        template: str,
        build: Callable[[], dict[str, Any]],
        extra: Callable[[dict[str, Any]], dict[str, Any]] = lambda view: {},
    ) -> Response:
        try:
            view: dict[str, Any] = jsonable_encoder(build())
        except UsageError as error:
            return PlainTextResponse(str(error) + "\n", status_code=400)
        except Refused as error:
            return PlainTextResponse(error.reason + "\n", status_code=error.status_code)
        html = environment.get_template(template).render(now=clock(), **view, **extra(view))
        return HTMLResponse(html)

    @router.get("/api/tests")
    def test_json(project: _NeededProject, node_id: _NodeId, cursor: _Cursor = "") -> Response:
        return as_json(lambda: test_view(project, node_id, cursor))

    @router.get("/tests", response_class=HTMLResponse)
    def test_page(
        request: Request, project: _NeededProject, node_id: _NodeId, cursor: _Cursor = ""
    ) -> Response:
        def plot(view: dict[str, Any]) -> dict[str, Any]:
            points = [
                (p["created_at"], p["duration_s"], f"{p['run_id']} {p['outcome']}")
                for p in view["runs"]["items"]
            ]
            return {"plot": duration_svg(points), "csrf_token": writer_csrf(request)}

        return as_page("test.html", lambda: test_view(project, node_id, cursor), plot)

    for kind in BOARD_TITLES:
        _add_board(router, kind, board_view, pick_project, as_json, as_page)

    @router.post("/tests/quarantine", openapi_extra=_QUARANTINE_FORM)
    async def quarantine_form(request: Request, actor: str = Depends(require_writer)) -> Response:
        fields = await form_fields(request)
        project, node_id = fields.get("project", ""), fields.get("node_id", "")
        try:
            _quarantine(store, fields, actor)
        except UsageError as error:
            return PlainTextResponse(str(error) + "\n", status_code=400)
        return RedirectResponse(f"/tests?{_test_query(project, node_id)}", status_code=303)

    @router.post("/api/tests/quarantine", openapi_extra=_QUARANTINE_JSON)
    async def quarantine_json(request: Request, actor: str = Depends(require_writer)) -> Response:
        try:
            body = json.loads(await request.body())
        except (ValueError, UnicodeDecodeError):
            return refusal(Refused(400, "the body is not JSON"))
        if not isinstance(body, dict):
            return refusal(Refused(400, "the body must be a JSON object"))
        fields = {key: str(value) for key, value in body.items() if isinstance(value, str)}
        try:
            done = _quarantine(store, fields, actor)
        except UsageError as error:
            return refusal(Refused(400, str(error)))
        return JSONResponse({"status": "ok", "changed": done, "actor": actor})

    return router


def _add_board(
    router: APIRouter,
    kind: str,
    board_view: Callable[[str, BoardQuery], dict[str, Any]],
    pick_project: Callable[[str], dict[str, Any]],
    as_json: Callable[[Callable[[], dict[str, Any]]], Response],
    as_page: Callable[..., Response],
) -> None:
    """``GET /<kind>`` and ``GET /api/<kind>`` for one leaderboard."""
    page_query, api_query = _QUERIES[kind]

    def json_route(query: BoardQuery = api_query) -> Response:
        return as_json(lambda: board_view(kind, query))

    def html_route(query: BoardQuery = page_query) -> Response:
        if not query.project:
            # Leaderboards are per project: without one, the page offers them.
            return as_page("projects.html", lambda: pick_project(kind))
        return as_page(f"{kind}.html", lambda: board_view(kind, query))

    router.add_api_route(f"/api/{kind}", json_route, methods=["GET"])
    router.add_api_route(f"/{kind}", html_route, methods=["GET"], response_class=HTMLResponse)


def _quarantine(store: ResultStore, fields: dict[str, str], actor: str) -> bool:
    """Adds or removes the entry the fields name; whether anything changed."""
    project = _need("project", fields.get("project", ""))
    if len(project) > PROJECT_CHARS or "\x00" in project:  # what the store could not hold
        raise UsageError(f"project must be at most {PROJECT_CHARS} characters, with no NUL")
    node_id = _need("node_id", fields.get("node_id", ""))
    action, reason = fields.get("action", ""), fields.get("reason", "")
    if action == Change.ADD.value:
        store.quarantine.add(project, node_id, reason=reason, owner="", actor=actor)
        return True
    if action == Change.REMOVE.value:
        return store.quarantine.remove(project, node_id, reason=reason, actor=actor)
    raise UsageError(f"action must be add or remove, not {action[:40]!r}")


def _test_query(project: str, node_id: str) -> str:
    return urlencode({"project": project, "node_id": node_id})


__all__ = ["BoardQuery", "Shown", "duration_svg", "test_routes"]
