"""Re-running a change from the dashboard: ``POST /changes/{sha}/rerun`` (the Change
page's form) and ``POST /api/changes/{sha}/rerun`` (JSON).

Either needs a writer: the API token as a bearer token, or a signed-in session whose
request carries its CSRF token. The change is found in the store by its sha (or a
prefix of 4+ hex digits, and ``?repository=`` when the prefix names several), and
its repository must be one this server triggers, since the conductor fetches the
commit from there. The run is queued through the same intake as webhooks and the
API, always (a re-run is asked for on purpose), with the change's branch, pull
request and author, so its verdict goes to the same commit status.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Query
from fastapi.responses import PlainTextResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from farm.core.domain import ChangeRef
from farm.core.errors import UsageError
from farm.core.repository_names import repository_name
from farm.core.server_config import ServerConfig
from farm.core.trigger import FIELD_LIMIT, TriggerRequest, TriggerSource
from farm.server.answers import Refused
from farm.server.auth import CSRF_FIELD, FORM_TYPE, require_writer
from farm.server.intake import Intake
from farm.server.params import JSON_TYPE, OneLineErrors, declared_body
from farm.store.dashboard import DashboardQueries

QUEUED = "queued"  # the Change page's ``?rerun=`` after a re-run was queued

Repository = Annotated[
    str | None,
    Query(max_length=FIELD_LIMIT, description="the change's repository, when the sha is shared"),
]
_JSON_BODY = declared_body(JSON_TYPE, {"type": "object", "maxProperties": 0}, required=False)
_FORM_BODY = declared_body(
    FORM_TYPE,
    {"type": "object", "properties": {CSRF_FIELD: {"type": "string", "maxLength": 200}}},
    required=False,
)


def triggers(config: ServerConfig) -> Callable[[str], bool]:
    """Whether a change of this repository (as the store names it) can run again here."""
    return lambda repository: config.repository(repository_name(repository)) is not None


@dataclass(frozen=True)
class Rerun:
    """What re-running a change takes: the server's repositories, the intake that
    queues runs, and the store's reads to find the change."""

    config: ServerConfig
    intake: Intake
    board: DashboardQueries

    def trigger_for(self, sha: str, repository: str | None) -> TriggerRequest:
        """The trigger request that runs the change again; :class:`Refused` if there
        is no such change, several, or its repository is not this server's."""
        change = self._change(sha, repository)
        configured = self.config.repository(repository_name(change.repository))
        if configured is None:
            raise Refused(
                409,
                f"repository {change.repository[:200]!r} is not one this server triggers: "
                "run the change again with farm ci or farm run",
            )
        try:
            return TriggerRequest(
                repository=configured.name,
                commit_sha=change.commit_sha,
                source=TriggerSource.RERUN,
                branch=change.branch,
                pull_request=change.pull_request,
                author=change.author,
            )
        except UsageError as error:  # a change recorded by farm run with a short sha
            raise Refused(409, f"the change cannot be run again: {error}") from None

    def _change(self, sha: str, repository: str | None) -> ChangeRef:
        try:
            found = self.board.changes_matching(sha, repository=repository, limit=2)
        except UsageError as error:
            raise Refused(400, str(error)) from None
        if not found:
            where = f" of {repository[:200]!r}" if repository else ""
            raise Refused(404, f"there is no change {sha[:80]!r}{where}")
        if len(found) > 1:
            raise Refused(400, f"{sha[:80]!r} names several changes: give ?repository=")
        return found[0]

    def queue(self, sha: str, repository: str | None) -> Response:
        """Queue the re-run; the intake's answer (202 queued, 503 unavailable)."""
        trigger = self.trigger_for(sha, repository)
        return self.intake.take(trigger, again=True)


def rerun_routes(rerun: Rerun) -> APIRouter:
    router = APIRouter(route_class=OneLineErrors)

    @router.post("/api/changes/{sha}/rerun", status_code=202, openapi_extra=_JSON_BODY)
    async def rerun_json(
        sha: str, repository: Repository = None, actor: str = Depends(require_writer)
    ) -> Response:
        return await run_in_threadpool(rerun.queue, sha, repository)

    @router.post("/changes/{sha}/rerun", openapi_extra=_FORM_BODY)
    async def rerun_form(
        sha: str, repository: Repository = None, actor: str = Depends(require_writer)
    ) -> Response:
        try:
            answer = await run_in_threadpool(rerun.queue, sha, repository)
        except Refused as error:
            return PlainTextResponse(error.reason + "\n", status_code=error.status_code)
        if answer.status_code != 202:
            return answer
        query = {"rerun": QUEUED, **({"repository": repository} if repository else {})}
        return RedirectResponse(
            f"/changes/{quote(sha, safe='')}?{urlencode(query)}", status_code=303
        )

    return router


__all__ = ["QUEUED", "Rerun", "rerun_routes", "triggers"]
