"""The Changes and Change pages of the dashboard, each with its JSON twin.

``GET /changes`` lists changes newest first with their combined verdict, filtered
by repository, branch, author and verdict, a page at a time through the store's
keyset cursor (the next-page link carries the filters and the cursor).
``GET /changes/{sha}`` shows one change (a full sha or a prefix of 4+ hex digits; a
``repository`` parameter picks one of several): its runs, its verdict with the
reason ``farm change`` gives, and the tests that failed, were flaky or failed
while quarantined. A prefix several changes share lists them (status 300).

Bad input answers one line: 400 for a bad filter, cursor or prefix, 404 for a
change nobody ran. Everything shown comes from tests, authors and repositories,
so it goes through the templates' autoescaping and every link is built here with
its parts URL-quoted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal, get_args
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Query
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from jinja2 import Environment
from pydantic import BeforeValidator, Field
from starlette.requests import Request

from farm.core.domain import ChangeRef, Verdict
from farm.core.errors import UsageError
from farm.core.trigger import FIELD_LIMIT
from farm.server.answers import answer
from farm.server.auth import writer_csrf
from farm.server.pages import when
from farm.server.params import NO_NUL, OneLineErrors, blank_is_none
from farm.store.dashboard import PAGE_ROWS, DashboardQueries
from farm.store.dashboard_changes import MAX_LIMIT
from farm.store.dashboard_records import ChangeDetail, ChangeSummary
from farm.store.records import RunRecord

# What a change's combined verdict can be (farm.core.change_verdict): the filter's choices.
ChangeVerdictName = Literal["passed", "flaky", "failed", "error"]
CHANGE_VERDICTS = tuple(Verdict(name) for name in get_args(ChangeVerdictName))
MATCHES_SHOWN = 20  # changes listed when a sha prefix names several
_TEXT_FILTERS = ("repository", "branch", "author")
# No stored change has a repository, branch or author longer than FIELD_LIMIT
# (triggers check it, the columns are narrower): a longer filter could match nothing.
_TextFilter = Annotated[str | None, Query(max_length=FIELD_LIMIT, pattern=NO_NUL)]


class BadRequest(Exception):
    """A request answered with ``status_code`` and one line."""

    def __init__(self, status_code: int, reason: str) -> None:
        super().__init__(reason)
        self.status_code = status_code
        self.reason = reason


@dataclass(frozen=True)
class ChangeFilters:
    repository: str | None = None
    branch: str | None = None
    author: str | None = None
    verdict: Verdict | None = None

    def query(self) -> dict[str, str]:
        """The filters set, as query parameters."""
        given = {name: getattr(self, name) for name in _TEXT_FILTERS}
        if self.verdict is not None:
            given["verdict"] = self.verdict.value
        return {name: value for name, value in given.items() if value is not None}


@dataclass(frozen=True)
class ListQuery:
    filters: ChangeFilters
    limit: int  # rows a page
    limit_given: bool  # carried to the next page only if asked for
    cursor: str | None


def list_query(
    repository: _TextFilter = None,
    branch: _TextFilter = None,
    author: _TextFilter = None,
    verdict: Annotated[
        ChangeVerdictName | None,
        BeforeValidator(blank_is_none),
        Query(description="a change's combined verdict; empty for any"),
    ] = None,
    limit: Annotated[
        Annotated[int, Field(ge=1, le=MAX_LIMIT)] | None,
        BeforeValidator(blank_is_none),
        Query(description=f"changes a page (default {PAGE_ROWS})"),
    ] = None,
    cursor: Annotated[str | None, Query(description="the next_cursor of the page before")] = None,
) -> ListQuery:
    """The list's filters and page from the query string; an empty field (as a form
    sends it) is no filter."""
    filters = ChangeFilters(
        repository=_text(repository),
        branch=_text(branch),
        author=_text(author),
        verdict=None if verdict is None else Verdict(verdict),
    )
    return ListQuery(
        filters=filters,
        limit=PAGE_ROWS if limit is None else limit,
        limit_given=limit is not None,
        cursor=cursor or None,
    )


def _text(given: str | None) -> str | None:
    return (given or "").strip() or None


def change_url(change: ChangeRef) -> str:
    """The Change page of exactly this change (its repository named: shas may repeat)."""
    return f"/changes/{quote(change.commit_sha, safe='')}?" + urlencode(
        {"repository": change.repository}
    )


def test_url(node_id: str, project: str) -> str:
    return "/tests?" + urlencode({"node_id": node_id, "project": project})


def change_fields(change: ChangeRef) -> dict[str, Any]:
    return {
        "repository": change.repository,
        "commit_sha": change.commit_sha,
        "branch": change.branch,
        "pull_request": change.pull_request,
        "author": change.author,
        "url": change_url(change),
    }


def summary_row(summary: ChangeSummary) -> dict[str, Any]:
    latest = summary.latest_run_id
    return {
        **change_fields(summary.change),
        "created_at": summary.created_at,
        "created": when(summary.created_at),
        "verdict": summary.verdict.value,
        "runs": summary.runs,
        "latest_run_id": latest,
        "latest_run_url": None if latest is None else f"/runs/{quote(latest, safe='')}",
    }


def rerun_urls(change: ChangeRef) -> dict[str, str]:
    """Where the change's page (a form) and the API ask for it to run again."""
    path = f"/changes/{quote(change.commit_sha, safe='')}/rerun"
    query = urlencode({"repository": change.repository})
    return {"form_url": f"{path}?{query}", "api_url": f"/api{path}?{query}"}


def test_projects(runs: tuple[RunRecord, ...]) -> Callable[[str], str]:
    """The project each test of the change belongs to: that of the latest run whose
    findings name it, else the latest run's (the test page is per project). Built in
    one pass over the runs' findings, so a change with thousands of failing or flaky
    tests costs one lookup per test."""
    named: dict[str, str] = {}
    for run in runs:  # oldest first: a later run's naming wins
        found = run.findings
        if found is None:
            continue
        for node_id in (*found.failed, *found.flaky, *found.new_flaky, *found.quarantined_failures):
            named[node_id] = run.project
    fallback = runs[-1].project if runs else ""
    return lambda node_id: named.get(node_id, fallback)


def change_routes_pages(
    store_dashboard: DashboardQueries,
    *,
    environment: Environment,
    triggers: Callable[[str], bool] = lambda repository: False,
) -> APIRouter:
    """``GET /changes``, ``GET /changes/{sha}`` and their twins under ``/api/changes``;
    a change whose repository ``triggers`` names can be run again from its page."""
    router = APIRouter(route_class=OneLineErrors)

    def changes_view(query: ListQuery, *, api: bool) -> dict[str, Any]:
        filters, limit, cursor = query.filters, query.limit, query.cursor
        try:
            page = store_dashboard.changes(limit=limit, cursor=cursor, **vars(filters))
        except UsageError as error:
            raise BadRequest(400, str(error)) from None
        next_url = None
        if page.next_cursor is not None:
            carried = {**filters.query(), "cursor": page.next_cursor}
            if query.limit_given:
                carried["limit"] = str(limit)
            next_url = ("/api/changes?" if api else "/changes?") + urlencode(carried)
        return {
            "changes": [summary_row(summary) for summary in page.items],
            "filters": {
                name: filters.query().get(name, "") for name in (*_TEXT_FILTERS, "verdict")
            },
            "verdicts": [v.value for v in CHANGE_VERDICTS],
            "next_cursor": page.next_cursor,
            "next_url": next_url,
            "first_page": cursor is None,
        }

    def change_view(sha: str, repository: str | None) -> tuple[int, dict[str, Any]]:
        """200 and the change, or 300 and the changes a prefix matches."""
        repository = (repository or "").strip() or None
        try:
            matches = store_dashboard.changes_matching(
                sha, repository=repository, limit=MATCHES_SHOWN
            )
        except UsageError as error:
            raise BadRequest(400, str(error)) from None
        where = f" in {repository}" if repository is not None else ""
        if not matches:
            raise BadRequest(404, f"no change{where} has a sha starting with {sha.strip()!r}")
        if len(matches) > 1:
            return 300, {
                "sha": sha,
                "matches": [change_fields(match) for match in matches],
                "more": len(matches) == MATCHES_SHOWN,
            }
        detail = store_dashboard.change(matches[0].repository, matches[0].commit_sha)
        if detail is None:  # removed between the two reads
            raise BadRequest(404, f"no change{where} has a sha starting with {sha.strip()!r}")
        return 200, detail_fields(detail)

    def detail_fields(detail: ChangeDetail) -> dict[str, Any]:
        verdict = detail.verdict

        project_of = test_projects(detail.runs)

        def tests(node_ids: tuple[str, ...]) -> list[dict[str, str]]:
            return [
                {"node_id": node_id, "url": test_url(node_id, project_of(node_id))}
                for node_id in node_ids
            ]

        return {
            "change": {
                **change_fields(detail.change),
                "created_at": detail.created_at,
                "created": when(detail.created_at),
            },
            "verdict": verdict.verdict.value,
            "reason": verdict.reason,
            "failed": tests(verdict.failed),
            "flaky": tests(verdict.flaky),
            "quarantined_failures": tests(verdict.quarantined_failures),
            "runs": [run_fields(run) for run in reversed(detail.runs)],
            "rerun": rerun_urls(detail.change) if triggers(detail.change.repository) else None,
        }

    def run_fields(run: RunRecord) -> dict[str, Any]:
        progress = store_dashboard.run_progress(run.run_id)
        return {
            "run_id": run.run_id,
            "url": f"/runs/{quote(run.run_id, safe='')}",
            "project": run.project,
            "created_at": run.created_at,
            "created": when(run.created_at),
            "trigger": run.trigger,
            "state": run.state.value,
            "verdict": None if run.verdict is None else run.verdict.value,
            "outcomes": {outcome.value: count for outcome, count in progress.by_outcome},
            "message": run.message,
        }

    def html(template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        return HTMLResponse(
            environment.get_template(template).render(**context), status_code=status_code
        )

    @router.get("/api/changes")
    def changes_json(query: Annotated[ListQuery, Depends(list_query)]) -> Response:
        try:
            return JSONResponse(changes_view(query, api=True))
        except BadRequest as error:
            return answer(error.status_code, "refused", error.reason)

    @router.get("/changes", response_class=HTMLResponse)
    def changes_page(query: Annotated[ListQuery, Depends(list_query)]) -> Response:
        try:
            return html("changes.html", **changes_view(query, api=False))
        except BadRequest as error:
            return PlainTextResponse(error.reason + "\n", status_code=error.status_code)

    @router.get("/api/changes/{sha}")
    def change_json(sha: str, repository: _TextFilter = None) -> Response:
        try:
            status_code, view = change_view(sha, repository)
        except BadRequest as error:
            return answer(error.status_code, "refused", error.reason)
        return JSONResponse(view, status_code=status_code)

    @router.get("/changes/{sha}", response_class=HTMLResponse)
    def change_page(
        request: Request,
        sha: str,
        repository: _TextFilter = None,
        rerun: Annotated[Literal["queued"] | None, Query(description="a re-run was queued")] = None,
    ) -> Response:
        try:
            status_code, view = change_view(sha, repository)
        except BadRequest as error:
            return PlainTextResponse(error.reason + "\n", status_code=error.status_code)
        if status_code == 300:
            return html("change.html", status_code, **view)
        return html(
            "change.html",
            matches=None,
            csrf_token=writer_csrf(request),
            rerun_queued=rerun is not None,
            **view,
        )

    return router


__all__ = ["CHANGE_VERDICTS", "ChangeFilters", "ListQuery", "change_routes_pages", "list_query"]
