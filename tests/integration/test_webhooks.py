"""The server's front door: webhooks and the changes API, against a real store and a
real Redis queue (the conductors' Celery queue, read back with LLEN and LRANGE).

Each refusal is checked twice: its answer, and that nothing reached the queue.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient

from farm.core.server_config import ServerConfig, parse_server_config
from farm.core.settings import Settings
from farm.core.trigger import changes_queue
from farm.run.conductor import ChangeQueue
from farm.server.app import ServerParts, create_app
from farm.store import ResultStore

pytestmark = pytest.mark.integration

SECRET = "s3cret-for-hooks"
TOKEN = "api-token-123"
SHA = "1" * 40
OTHER_SHA = "2" * 40


@pytest.fixture
def config() -> ServerConfig:
    env = {"HOOK_SECRET": SECRET, "API_TOKEN": TOKEN, "LAB_SECRET": "lab-token"}
    data: dict[str, Any] = {
        "server": {"api_token_env": "API_TOKEN", "max_body_bytes": 4096},
        "repository": [
            {
                "url": "https://github.com/acme/shop.git",
                "webhook_secret_env": "HOOK_SECRET",
                "trust_label": "safe to test",
            },
            {
                "url": "https://gitlab.com/acme/tools.git",
                "forge": "gitlab",
                "webhook_secret_env": "LAB_SECRET",
            },
        ],
    }
    return parse_server_config(data, env)


@pytest.fixture
def queue_key(key_prefix: str) -> str:
    return f"{key_prefix}{changes_queue('farm')}"


@pytest.fixture
def client(
    config: ServerConfig, db_url: str, redis_url: str, key_prefix: str
) -> Iterator[TestClient]:
    settings = Settings(broker_url=redis_url, key_prefix=key_prefix)
    queue = ChangeQueue(settings)
    with ResultStore.open(db_url) as store:
        app = create_app(ServerParts(config, store.deliveries, queue.send))
        with TestClient(app) as test_client:
            yield test_client
    queue.close()


def queued(redis_url: str, queue_key: str) -> list[dict[str, Any]]:
    """The trigger requests on the conductors' queue, oldest first."""
    client = redis.Redis.from_url(redis_url)
    try:
        raw = client.lrange(queue_key, 0, -1)
    finally:
        client.close()
    messages = [json.loads(item) for item in reversed(raw)]
    return [json.loads(_body(message))[0][0] for message in messages]


def _body(message: dict[str, Any]) -> str:
    import base64

    body: str = message["body"]
    return base64.b64decode(body).decode() if message["properties"].get("body_encoding") else body


def push(sha: str = SHA, html_url: str = "https://github.com/acme/shop") -> dict[str, Any]:
    return {
        "ref": "refs/heads/main",
        "before": "0" * 39 + "1",
        "after": sha,
        "deleted": False,
        "repository": {"full_name": "acme/shop", "html_url": html_url},
        "head_commit": {"id": sha, "author": {"email": "dev@acme.test"}},
        "pusher": {"name": "dev"},
        "sender": {"login": "dev"},
    }


def signed(body: bytes, secret: str = SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def post_github(
    client: TestClient, payload: Any, *, event: str = "push", delivery: str = "d-1",
    signature: str | None = "sign", raw: bytes | None = None,
) -> Any:  # fmt: skip
    body = raw if raw is not None else json.dumps(payload).encode()
    headers = {"X-GitHub-Event": event, "X-GitHub-Delivery": delivery,
               "Content-Type": "application/json"}  # fmt: skip
    if signature == "sign":
        headers["X-Hub-Signature-256"] = signed(body)
    elif signature is not None:
        headers["X-Hub-Signature-256"] = signature
    return client.post("/api/hooks/github", content=body, headers=headers)


def test_a_signed_push_is_queued_within_a_second(
    client: TestClient, redis_url: str, queue_key: str
) -> None:
    started = time.monotonic()
    answer = post_github(client, push())
    assert time.monotonic() - started < 1.0
    assert answer.status_code == 202, answer.text
    assert answer.json()["status"] == "queued"
    (request,) = queued(redis_url, queue_key)
    assert request["repository"] == "github.com/acme/shop"
    assert request["commit_sha"] == SHA
    assert request["branch"] == "main"
    assert request["source"] == "github"
    assert request["delivery_id"] == "d-1"


@pytest.mark.parametrize(
    ("signature", "reason"),
    [(None, "missing"), ("sha256=" + "0" * 64, "does not match"), ("md5=abc", "does not match")],
)
def test_a_missing_or_wrong_signature_is_401(
    client: TestClient, redis_url: str, queue_key: str, signature: str | None, reason: str
) -> None:
    answer = post_github(client, push(), signature=signature)
    assert answer.status_code == 401
    assert reason in answer.json()["reason"]
    assert queued(redis_url, queue_key) == []


def test_a_body_signed_with_another_secret_is_401(
    client: TestClient, redis_url: str, queue_key: str
) -> None:
    body = json.dumps(push()).encode()
    answer = post_github(client, None, raw=body, signature=signed(body, "lab-token"))
    assert answer.status_code == 401
    assert queued(redis_url, queue_key) == []


def test_a_replayed_delivery_is_ignored(client: TestClient, redis_url: str, queue_key: str) -> None:
    assert post_github(client, push()).status_code == 202
    again = post_github(client, push(OTHER_SHA))  # same delivery id, even with a new body
    assert again.status_code == 200
    assert "received before" in again.json()["reason"]
    assert [r["commit_sha"] for r in queued(redis_url, queue_key)] == [SHA]


def test_a_commit_already_triggered_is_not_queued_twice(
    client: TestClient, redis_url: str, queue_key: str
) -> None:
    assert post_github(client, push(), delivery="d-1").status_code == 202
    second = post_github(client, push(), delivery="d-2")
    assert second.status_code == 200
    assert "already triggered" in second.json()["reason"]
    assert len(queued(redis_url, queue_key)) == 1


def test_an_oversized_body_is_413(client: TestClient, redis_url: str, queue_key: str) -> None:
    payload = {**push(), "padding": "x" * 5000}
    answer = post_github(client, payload)
    assert answer.status_code == 413
    assert queued(redis_url, queue_key) == []


def test_malformed_json_is_400(client: TestClient, redis_url: str, queue_key: str) -> None:
    answer = post_github(client, None, raw=b'{"ref": "refs/heads/main", ')
    assert answer.status_code == 400
    assert "not JSON" in answer.json()["reason"]
    assert queued(redis_url, queue_key) == []


def test_an_unconfigured_repository_is_404(
    client: TestClient, redis_url: str, queue_key: str
) -> None:
    answer = post_github(client, push(html_url="https://github.com/acme/unknown"))
    assert answer.status_code == 404
    assert queued(redis_url, queue_key) == []


def test_a_pull_request_from_an_untrusted_fork_waits_for_the_label(
    client: TestClient, redis_url: str, queue_key: str
) -> None:
    pull: dict[str, Any] = {
        "action": "opened",
        "number": 7,
        "label": None,
        "repository": {"full_name": "acme/shop", "html_url": "https://github.com/acme/shop"},
        "pull_request": {
            "number": 7,
            "draft": False,
            "user": {"login": "stranger"},
            "labels": [],
            "head": {"sha": OTHER_SHA, "ref": "feature", "repo": {"full_name": "stranger/shop"}},
            "base": {"ref": "main", "repo": {"full_name": "acme/shop"}},
        },
    }
    opened = post_github(client, pull, event="pull_request", delivery="p-1")
    assert opened.status_code == 200
    assert "fork" in opened.json()["reason"]
    assert queued(redis_url, queue_key) == []
    labeled = replace_action(pull, "labeled", {"name": "safe to test"})
    approved = post_github(client, labeled, event="pull_request", delivery="p-2")
    assert approved.status_code == 202, approved.text
    (request,) = queued(redis_url, queue_key)
    assert (request["commit_sha"], request["pull_request"]) == (OTHER_SHA, "7")


def replace_action(pull: dict[str, Any], action: str, label: dict[str, str]) -> dict[str, Any]:
    changed: dict[str, Any] = json.loads(json.dumps(pull))
    changed["action"] = action
    changed["label"] = label
    changed["pull_request"]["labels"] = [label]
    return changed


def post_gitlab(client: TestClient, token: str | None, key: str = "k-1") -> Any:
    payload = {
        "object_kind": "push",
        "ref": "refs/heads/main",
        "before": "0" * 39 + "1",
        "after": SHA,
        "checkout_sha": SHA,
        "user_username": "dev",
        "project": {"web_url": "https://gitlab.com/acme/tools", "id": 3},
    }
    headers = {"X-Gitlab-Event": "Push Hook", "Idempotency-Key": key}
    if token is not None:
        headers["X-Gitlab-Token"] = token
    return client.post("/api/hooks/gitlab", json=payload, headers=headers)


def test_gitlab_checks_its_token_and_idempotency_key(
    client: TestClient, redis_url: str, queue_key: str
) -> None:
    assert post_gitlab(client, None).status_code == 401
    assert post_gitlab(client, "wrong").status_code == 401
    assert post_gitlab(client, SECRET).status_code == 401  # GitHub's secret, not this one's
    assert queued(redis_url, queue_key) == []
    assert post_gitlab(client, "lab-token").status_code == 202
    replay = post_gitlab(client, "lab-token")
    assert replay.status_code == 200
    (request,) = queued(redis_url, queue_key)
    assert (request["repository"], request["source"]) == ("gitlab.com/acme/tools", "gitlab")


def test_the_changes_api_needs_its_token(
    client: TestClient, redis_url: str, queue_key: str
) -> None:
    body = {"repository": "git@github.com:acme/shop.git", "sha": SHA, "branch": "main"}
    assert client.post("/api/changes", json=body).status_code == 401
    wrong = {"Authorization": "Bearer nope"}
    assert client.post("/api/changes", json=body, headers=wrong).status_code == 401
    assert queued(redis_url, queue_key) == []
    auth = {"Authorization": f"Bearer {TOKEN}"}
    bad_sha = client.post("/api/changes", json={**body, "sha": "not-a-sha"}, headers=auth)
    assert bad_sha.status_code == 400
    unknown = client.post(
        "/api/changes", json={**body, "repository": "github.com/x/y"}, headers=auth
    )
    assert unknown.status_code == 404
    assert client.post("/api/changes", json=body, headers=auth).status_code == 202
    # Asked for explicitly, a commit runs again.
    assert client.post("/api/changes", json=body, headers=auth).status_code == 202
    assert [r["source"] for r in queued(redis_url, queue_key)] == ["api", "api"]


def test_a_closed_api_refuses_every_caller(config: ServerConfig, db_url: str) -> None:
    closed = replace(config, api_token="")
    with ResultStore.open(db_url) as store:
        app = create_app(ServerParts(closed, store.deliveries, lambda request: None))
        with TestClient(app) as test_client:
            answer = test_client.post(
                "/api/changes", json={"repository": "x", "sha": SHA},
                headers={"Authorization": "Bearer "},
            )  # fmt: skip
    assert answer.status_code == 403
