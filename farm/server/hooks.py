"""``POST /api/hooks/github`` and ``/api/hooks/gitlab``: webhooks in, runs queued.

Nothing in a delivery is looked at before it is authenticated. GitHub's
``X-Hub-Signature-256`` is checked against the secrets of the configured
repositories (one secret may serve many, as an organisation's hook does) before
the body is parsed; once parsed, the repository it names must be one whose own
secret signed it. GitLab's ``X-Gitlab-Token`` is compared the same way, in constant
time. Then, in order: malformed JSON is 400; a delivery id seen before is 200 and
ignored (GitHub signs no timestamp: the id is the replay guard; GitLab's is its
``Idempotency-Key``); what the event says (farm.server.events) decides whether a
run is queued. The answer comes at once: the run is a Celery task.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from farm.core.server_config import ServerConfig
from farm.core.signatures import github_signature_ok, token_ok
from farm.server.answers import Refused, answer
from farm.server.body import json_object, read_body
from farm.server.events import Skip, read_github_event, read_gitlab_event
from farm.server.intake import Intake
from farm.server.params import JSON_TYPE, declared_body

GITHUB = "github"
GITLAB = "gitlab"


def _raw_json_body(headers: dict[str, tuple[bool, str]]) -> dict[str, Any]:
    """The OpenAPI declaration of a webhook: its headers (name: required, what) and a
    JSON body. Only declared: the route reads the raw bytes itself, since the
    signature covers exactly them."""
    return {
        "parameters": [
            {
                "name": name,
                "in": "header",
                "required": required,
                "schema": {"type": "string"},
                "description": what,
            }
            for name, (required, what) in headers.items()
        ],
        **declared_body(JSON_TYPE, {"type": "object"}),
    }


_GITHUB_HOOK = _raw_json_body(
    {
        "X-Hub-Signature-256": (True, "sha256=<HMAC of the body with the webhook secret>"),
        "X-GitHub-Delivery": (True, "the delivery's id, the replay guard"),
        "X-GitHub-Event": (False, "push, pull_request, ping, ..."),
    }
)
_GITLAB_HOOK = _raw_json_body(
    {
        "X-Gitlab-Token": (True, "the webhook's secret token"),
        "X-Gitlab-Event": (False, "Push Hook, Merge Request Hook, ..."),
        "Idempotency-Key": (False, "the same on every redelivery (GitLab 17.4+)"),
        "X-Gitlab-Event-UUID": (False, "the delivery attempt's id"),
    }
)


def hook_routes(config: ServerConfig, intake: Intake) -> APIRouter:
    router = APIRouter()

    @router.post("/api/hooks/github", status_code=202, openapi_extra=_GITHUB_HOOK)
    async def github_hook(request: Request) -> JSONResponse:
        body = await read_body(request, config.max_body_bytes)
        signature = _authenticated(
            config, request, "X-Hub-Signature-256",
            lambda secret, given: github_signature_ok(secret, body, given),
        )  # fmt: skip
        payload = json_object(body)
        delivery_id = request.headers.get("x-github-delivery", "").strip()
        if not delivery_id:
            raise Refused(400, "X-GitHub-Delivery is missing")
        event_name = request.headers.get("x-github-event", "").strip()
        decision = read_github_event(event_name, payload, config, delivery_id=delivery_id)
        if not isinstance(decision, Skip) and not github_signature_ok(
            decision.repository.webhook_secret, body, signature
        ):
            raise Refused(401, f"not signed with the secret of {decision.repository.name}")
        return await _decide(intake, GITHUB, delivery_id, decision)

    @router.post("/api/hooks/gitlab", status_code=202, openapi_extra=_GITLAB_HOOK)
    async def gitlab_hook(request: Request) -> JSONResponse:
        body = await read_body(request, config.max_body_bytes)
        token = _authenticated(config, request, "X-Gitlab-Token", token_ok)
        payload = json_object(body)
        # Idempotency-Key is the same on every redelivery of one event (GitLab 17.4+);
        # older servers send only the per-attempt event UUID, which guards less.
        delivery_id = (
            request.headers.get("idempotency-key")
            or request.headers.get("x-gitlab-event-uuid")
            or ""
        ).strip()
        event_name = request.headers.get("x-gitlab-event", "").strip()
        decision = read_gitlab_event(event_name, payload, config, delivery_id=delivery_id)
        if not isinstance(decision, Skip) and not token_ok(
            decision.repository.webhook_secret, token
        ):
            raise Refused(401, f"not the token of {decision.repository.name}")
        return await _decide(intake, GITLAB, delivery_id, decision)

    return router


def _authenticated(
    config: ServerConfig, request: Request, header: str, matches: Callable[[str, str], bool]
) -> str:
    """The header's value, if it ``matches`` some configured repository's secret;
    else :class:`Refused` (401)."""
    given = request.headers.get(header)
    if given is None:
        raise Refused(401, f"{header} is missing")
    secrets = {r.webhook_secret for r in config.repositories if r.webhook_secret}
    if not any(matches(secret, given) for secret in secrets):
        raise Refused(401, f"{header} does not match")
    return given


async def _decide(intake: Intake, source: str, delivery_id: str, decision: Any) -> JSONResponse:
    first = await run_in_threadpool(intake.first_delivery, source, delivery_id)
    if not first:
        return answer(200, "ignored", f"delivery {delivery_id} was received before")
    if isinstance(decision, Skip):
        status = "ignored" if decision.status_code < 400 else "refused"
        return answer(decision.status_code, status, decision.reason)
    return await run_in_threadpool(
        lambda: intake.take(decision.request, delivery_source=source, delivery_id=delivery_id)
    )


__all__ = ["GITHUB", "GITLAB", "hook_routes"]
