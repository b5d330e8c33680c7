"""``POST /api/changes``: test a commit of a configured repository, for other forges
and scripts. The caller shows the bearer token of the server's configuration; the
body names the repository (its configured name or any URL of it), the sha and,
optionally, the branch, pull request and author.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from farm.core.errors import UsageError
from farm.core.repository_names import repository_name
from farm.core.server_config import ServerConfig
from farm.core.signatures import bearer_token, token_ok
from farm.core.trigger import FIELD_LIMIT, TriggerRequest, TriggerSource
from farm.server.answers import Refused
from farm.server.body import json_object, read_body
from farm.server.intake import Intake
from farm.server.params import JSON_TYPE, declared_body

_FIELDS = ("repository", "sha", "branch", "pull_request", "author")
_ONE_LINE = {"type": "string", "maxLength": FIELD_LIMIT, "pattern": "^[^\\x00\\r\\n]*$"}
# The body is read by hand within the size limit, after the token is checked; this
# declares it for the OpenAPI document (TriggerRequest checks the same).
_BODY = declared_body(
    JSON_TYPE,
    {
        "type": "object",
        "properties": {
            "repository": {
                **_ONE_LINE,
                "minLength": 1,
                "description": "a configured repository's name or any URL of it",
            },
            "sha": {
                "type": "string",
                # FULL_SHA in either case: the sha is lowered before the check.
                "pattern": "^[0-9a-fA-F]{40}([0-9a-fA-F]{24})?$",
                "description": "the full commit sha (SHA-1 or SHA-256)",
            },
            "branch": _ONE_LINE,
            "pull_request": _ONE_LINE,
            "author": _ONE_LINE,
        },
        "required": ["repository", "sha"],
        "additionalProperties": False,
    },
)


def change_routes(config: ServerConfig, intake: Intake) -> APIRouter:
    router = APIRouter()

    @router.post("/api/changes", status_code=202, openapi_extra=_BODY)
    async def post_change(request: Request) -> JSONResponse:
        given = bearer_token(request.headers.get("authorization"))
        if not config.api_token:
            raise Refused(403, "the API is closed: the server has no api_token_env")
        if given is None or not token_ok(config.api_token, given):
            raise Refused(401, "a valid bearer token is required")
        body = await read_body(request, config.max_body_bytes)
        data = json_object(body)
        unknown = sorted(set(data) - set(_FIELDS))
        if unknown:
            raise Refused(400, f"unknown field {unknown[0]!r}")
        fields = {name: data.get(name, "") for name in _FIELDS}
        for name, value in fields.items():
            if not isinstance(value, str):
                raise Refused(400, f"{name} must be a string")
        if not fields["repository"] or not fields["sha"]:
            raise Refused(400, "repository and sha are required")
        repository = config.repository(repository_name(fields["repository"]))
        if repository is None:
            raise Refused(404, f"repository {fields['repository'][:200]!r} is not configured")
        try:
            trigger = TriggerRequest(
                repository=repository.name,
                commit_sha=fields["sha"].strip().lower(),
                source=TriggerSource.API,
                branch=fields["branch"].strip(),
                pull_request=fields["pull_request"].strip(),
                author=fields["author"].strip(),
            )
        except UsageError as e:
            raise Refused(400, str(e)) from None
        return await run_in_threadpool(lambda: intake.take(trigger, again=True))

    return router


__all__ = ["change_routes"]
