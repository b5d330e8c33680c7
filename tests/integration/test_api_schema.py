"""Every operation of the server's OpenAPI document, driven by requests schemathesis
generates from it: whatever the input, the answer is never a server error.

The app is the real one: a real store holding a change with a run and failing
attempts, the conductors' real queue on Redis, and the Workers page reading a real
registry. Every request shows the API token, so routes that change state are reached
too, and some generated requests have their names (project, test, repository, sha,
run) replaced by the stored ones, so filters, pages and quarantine meet real rows.
Webhooks are also sent signed (GitHub) or with their token (GitLab), so generated
payloads reach the event readers. Generation is derandomized and bounded, so the
file stays short and always the same.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import Case
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Err
from schemathesis.generation import GenerationMode
from schemathesis.schemas import APIOperation

from farm.core.domain import ChangeRef, Outcome, RunFindings, TestResult, Verdict
from farm.core.keys import Keys
from farm.core.server_config import parse_server_config
from farm.core.settings import Settings
from farm.run.conductor import ChangeQueue
from farm.server.app import ServerParts, create_app
from farm.server.auth import CSRF_FIELD, CSRF_HEADER, FORM_TYPE, SESSION_COOKIE
from farm.server.pages_changes import CHANGE_VERDICTS
from farm.server.pages_tests import MAX_DAYS, Shown
from farm.store import ResultStore, ShardRecord
from farm.worker.registry import WorkerInfo, WorkerRegistry

pytestmark = pytest.mark.integration

Operation = APIOperation[Any, Any, Any, Any]

TOKEN = "api-token-" + "s" * 20
HOOK_SECRET = "hook-secret-" + "h" * 20
LAB_SECRET = "lab-secret-" + "l" * 20
SHA = "5c" * 20
REPOSITORY = "github.com/acme/shop"
PROJECT = "shop"
NODE_ID = "tests/test_cart.py::test_total"
EXAMPLES_PER_OPERATION = 12
SIGNED_DELIVERIES = 60  # per forge
AUTHORIZATION = {"Authorization": f"Bearer {TOKEN}"}


def seed(store: ResultStore) -> str:
    """A finished, failed run of a change: one test failing twice, one passing. Its id."""
    now = time.time()
    change = ChangeRef(REPOSITORY, SHA, "main", author="ann")
    run_id = store.create_run(project=PROJECT, trigger="github", settings={}, change=change)
    store.start_run(run_id, total_tests=2, estimated_makespan_s=4.0,
                    shards=[ShardRecord(0, 3, 4.0)])  # fmt: skip
    store.shard_started(run_id, 0, worker="w1", started_at=now - 5, machine="m1")
    store.record_results([
        _attempt(run_id, NODE_ID, Outcome.FAILED, 1, now),
        _attempt(run_id, NODE_ID, Outcome.FAILED, 2, now),
        _attempt(run_id, "tests/test_cart.py::test_empty", Outcome.PASSED, 1, now),
    ])  # fmt: skip
    store.shard_finished(run_id, 0, finished_at=now - 1)
    findings = RunFindings(failed=(NODE_ID,))
    store.finish_run(run_id, verdict=Verdict.FAILED, findings=findings)
    return run_id


def _attempt(run_id: str, node_id: str, outcome: Outcome, attempt: int, now: float) -> TestResult:
    failed = outcome is Outcome.FAILED
    return TestResult(
        run_id=run_id, shard_id=0, lease=1, node_id=node_id, outcome=outcome, duration_s=0.5,
        worker="w1", attempt=attempt, longrepr="assert 3 == 4" if failed else "",
        started_at=now - 4, finished_at=now - 3.5, machine="m1",
    )  # fmt: skip


@pytest.fixture
def app(db_url: str, redis_url: str, key_prefix: str) -> Iterator[FastAPI]:
    env = {"HOOK_SECRET": HOOK_SECRET, "LAB_SECRET": LAB_SECRET, "API_TOKEN": TOKEN}
    config = parse_server_config(
        {
            "server": {"api_token_env": "API_TOKEN"},
            "repository": [
                {"url": f"https://{REPOSITORY}.git", "webhook_secret_env": "HOOK_SECRET"},
                {"url": "https://gitlab.com/acme/tools.git", "forge": "gitlab",
                 "webhook_secret_env": "LAB_SECRET"},
            ],
        },
        env,
    )  # fmt: skip
    queue = ChangeQueue(Settings(broker_url=redis_url, key_prefix=key_prefix))
    client = redis.Redis.from_url(redis_url)
    registry = WorkerRegistry(client, Keys(key_prefix))
    registry.announce(WorkerInfo("w1", "m1", 100, 2, "farm", started_at=time.time() - 60))
    try:
        with ResultStore.open(db_url) as store:
            created = create_app(ServerParts(config, store.deliveries, queue.send,
                                             live_workers=registry.live, store=store))  # fmt: skip
            created.state.seeded_run = seed(store)
            yield created
    finally:
        client.close()
        queue.close()


def stored_names(run_id: str) -> dict[str, str]:
    """Generated names replaced by these meet the seeded rows (a cursor: the first page)."""
    return {"project": PROJECT, "node_id": NODE_ID, "repository": REPOSITORY, "sha": SHA,
            "run_id": run_id, "cursor": ""}  # fmt: skip


def with_stored_names(case: Case[Any], names: dict[str, str]) -> Case[Any]:
    for part in (case.query, case.path_parameters, case.body):
        if isinstance(part, dict):
            part.update({name: names[name] for name in names.keys() & part.keys()})
    return case


def operations(app: FastAPI) -> tuple[list[Operation], dict[str, str]]:
    """The document's operations, and those it cannot describe (label: why)."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    found_operations: list[Operation] = []
    failures: dict[str, str] = {}
    for found in schema.get_all_operations():
        if isinstance(found, Err):
            failures[str(found.err())[:200]] = "the document does not describe it well"
        else:
            found_operations.append(found.ok())
    return found_operations, failures


def generated_failure(
    operation: Operation, names: dict[str, str], call: Callable[[Case[Any]], None]
) -> str | None:
    """Makes ``call`` with the operation's generated requests: inputs the document
    allows, inputs it forbids (those must be 4xx), and allowed inputs naming the stored
    rows. What failed, if anything."""
    positive = operation.as_strategy(GenerationMode("positive"))
    strategy = st.one_of(
        positive,
        operation.as_strategy(GenerationMode("negative")),
        positive.map(lambda case: with_stored_names(case, names)),
    )

    @given(case=strategy)
    @settings(max_examples=EXAMPLES_PER_OPERATION, derandomize=True, deadline=None,
              database=None, suppress_health_check=list(HealthCheck))  # fmt: skip
    def answers_without_a_server_error(case: Case[Any]) -> None:
        call(case)

    try:
        answers_without_a_server_error()
    except Exception as error:  # every operation runs; the failures are listed together
        return str(error)[:2000]
    return None


def test_no_generated_request_is_a_server_error(app: FastAPI) -> None:
    found_operations, failures = operations(app)
    names = {**stored_names(app.state.seeded_run), "token": TOKEN}  # sign-in succeeds too

    def with_the_token(case: Case[Any]) -> None:
        case.call_and_validate(headers=AUTHORIZATION, checks=[not_a_server_error])

    for operation in found_operations:
        failed = generated_failure(operation, names, with_the_token)
        if failed is not None:
            failures[operation.label] = failed
    labels = {operation.label for operation in found_operations}
    assert {"POST /api/changes", "GET /api/health", "POST /signin", "GET /api/flaky"} <= labels
    assert not failures, "\n\n".join(f"{label}:\n{text}" for label, text in failures.items())


# What a signed-in writer's session may change: the CSRF token goes with each request.
SESSION_WRITES = ("POST /tests/quarantine", "POST /api/tests/quarantine", "POST /signout")


def test_a_writer_sessions_generated_requests_are_never_a_server_error(app: FastAPI) -> None:
    """The session's path through require_writer: its cookie, and its CSRF token as the
    header (JSON) or the form's field (forms, read before the route reads the form)."""
    with TestClient(app) as client:
        assert client.post("/signin", data={"token": TOKEN, "name": "ann"}).status_code == 200
        csrf = str(client.get("/api/session").json()["csrf_token"])
        cookies = {SESSION_COOKIE: str(client.cookies[SESSION_COOKIE])}
    found_operations, failures = operations(app)
    writes = [operation for operation in found_operations if operation.label in SESSION_WRITES]
    assert sorted(operation.label for operation in writes) == sorted(SESSION_WRITES)

    def as_the_session(case: Case[Any]) -> None:
        headers = {}
        if case.media_type == FORM_TYPE and isinstance(case.body, dict):
            case.body[CSRF_FIELD] = csrf
        else:
            headers[CSRF_HEADER] = csrf
        answered = case.call_and_validate(
            headers=headers, cookies=cookies, checks=[not_a_server_error]
        )
        assert answered.status_code != 401, answered.text  # the session was seen

    for operation in writes:
        failed = generated_failure(operation, stored_names(app.state.seeded_run), as_the_session)
        if failed is not None:
            failures[operation.label] = failed
    assert not failures, "\n\n".join(f"{label}:\n{text}" for label, text in failures.items())


def github_headers(body: bytes, delivery: str, event: str) -> dict[str, str]:
    digest = hmac.new(HOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
    return {"X-Hub-Signature-256": f"sha256={digest}", "X-GitHub-Event": event,
            "X-GitHub-Delivery": delivery}  # fmt: skip


def gitlab_headers(body: bytes, delivery: str, event: str) -> dict[str, str]:
    return {"X-Gitlab-Token": LAB_SECRET, "X-Gitlab-Event": event, "Idempotency-Key": delivery}


Headers = Callable[[bytes, str, str], dict[str, str]]
# How each forge authenticates a delivery; the events its reader acts on, and one not.
HOOKS: dict[str, tuple[Headers, list[str]]] = {
    "POST /api/hooks/github": (github_headers, ["push", "pull_request", "ping", "issues"]),
    "POST /api/hooks/gitlab": (gitlab_headers, ["Push Hook", "Merge Request Hook", "Note Hook"]),
}


def json_values() -> st.SearchStrategy[Any]:
    scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=50)
    return st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                        | st.dictionaries(st.text(max_size=12), inner, max_size=4),
                        max_leaves=12)  # fmt: skip


def event_like() -> st.SearchStrategy[dict[str, Any]]:
    """Payloads shaped like the forges' events, each field mostly right, else anything."""

    def either(right: Any) -> st.SearchStrategy[Any]:
        fitting = right if isinstance(right, st.SearchStrategy) else st.just(right)
        return st.sampled_from([True] * 7 + [False]).flatmap(
            lambda fits: fitting if fits else json_values()
        )

    sha = "ab" * 20  # a commit nobody triggered yet: the first delivery naming it queues a run
    repository = st.fixed_dictionaries({
        "full_name": either("acme/shop"), "html_url": either(f"https://{REPOSITORY}"),
        "clone_url": either(f"https://{REPOSITORY}.git")})  # fmt: skip
    project = st.fixed_dictionaries({"web_url": either("https://gitlab.com/acme/tools"),
                                     "id": either(3)})  # fmt: skip
    return st.fixed_dictionaries({
        "ref": either("refs/heads/main"), "after": either(sha), "checkout_sha": either(sha),
        "object_kind": either("push"), "action": either("opened"), "deleted": either(False),
        "repository": either(repository), "project": either(project),
        "pull_request": either({"number": 1, "head": {"sha": sha, "ref": "f"}}),
        "object_attributes": either({"iid": 1, "last_commit": {"id": sha}}),
    })  # fmt: skip


def test_signed_webhook_deliveries_are_never_a_server_error(app: FastAPI) -> None:
    """Generated payloads, authenticated as each forge would: the event readers see them."""
    hooks = [operation for operation in operations(app)[0] if operation.label in HOOKS]
    assert sorted(operation.label for operation in hooks) == sorted(HOOKS)
    failures: list[str] = []
    with TestClient(app) as client:
        for operation in hooks:
            failures += deliver_generated(client, operation, *HOOKS[operation.label])
    assert not failures, "\n".join(failures[:5])


def deliver_generated(
    client: TestClient, operation: Operation, headers_of: Headers, events: list[str]
) -> list[str]:
    """Sends the operation's generated bodies and event-shaped ones, each a new
    delivery; what answered with a server error."""
    failures: list[str] = []
    deliveries = itertools.count()
    generated = operation.as_strategy(GenerationMode("positive")).map(lambda case: case.body)

    @given(payload=event_like() | generated, event=st.sampled_from(events))
    @settings(max_examples=SIGNED_DELIVERIES, derandomize=True, deadline=None,
              database=None, suppress_health_check=list(HealthCheck))  # fmt: skip
    def delivers(payload: Any, event: str) -> None:
        body = json.dumps(payload).encode()
        headers = headers_of(body, f"generated-{next(deliveries)}", event)
        answered = client.post(operation.path, content=body,
                               headers={"Content-Type": "application/json", **headers})  # fmt: skip
        assert answered.status_code != 401, answered.text  # authenticated: the reader ran
        if answered.status_code >= 500:
            failures.append(f"{operation.label} {event} {body[:300]!r}: {answered.text}")

    delivers()
    return failures


def declared(document: dict[str, Any], method: str, path: str) -> dict[str, dict[str, Any]]:
    """An operation's parameters by name, with their schema's alternatives merged."""
    found: dict[str, dict[str, Any]] = {}
    for parameter in document["paths"][path][method].get("parameters", []):
        schema = parameter["schema"]
        merged: dict[str, Any] = {}
        for part in schema.get("anyOf", [schema]):
            if "$ref" in part:  # an enum of its own: #/components/schemas/<name>
                part = document["components"]["schemas"][part["$ref"].rsplit("/", 1)[-1]]
            merged.update(part)
        found[parameter["name"]] = {**merged, "in": parameter["in"],
                                    "required": parameter["required"]}  # fmt: skip
    return found


def body_schema(document: dict[str, Any], method: str, path: str, media_type: str) -> Any:
    return document["paths"][path][method]["requestBody"]["content"][media_type]["schema"]


def test_the_document_declares_every_parameter_and_body(app: FastAPI) -> None:
    """What schemathesis generates from: a declaration dropped would go unnoticed there."""
    with TestClient(app) as client:
        document = client.get("/openapi.json").json()
    verdicts = [verdict.value for verdict in CHANGE_VERDICTS]
    for path in ("/api/changes", "/changes"):
        changes = declared(document, "get", path)
        assert {"repository", "branch", "author", "verdict", "limit", "cursor"} <= changes.keys()
        assert changes["verdict"]["enum"] == verdicts == ["passed", "flaky", "failed", "error"]
        assert (changes["limit"]["minimum"], changes["limit"]["maximum"]) == (1, 500)
        assert changes["repository"]["maxLength"] == 512 and "pattern" in changes["author"]
    for kind in ("flaky", "slowest", "durations"):
        for path in (f"/api/{kind}", f"/{kind}"):
            board = declared(document, "get", path)
            assert {"project", "days", "cursor"} <= board.keys(), path
            assert (board["days"]["minimum"], board["days"]["maximum"]) == (1, MAX_DAYS)
            assert ("quarantined" in board) == (kind == "flaky"), path
            # The API names its project; a page without one lists the projects.
            assert board["project"]["required"] == path.startswith("/api/"), path
    assert declared(document, "get", "/api/flaky")["quarantined"]["enum"] == [
        s.value for s in Shown
    ]
    for path in ("/api/tests", "/tests"):
        test = declared(document, "get", path)
        assert test["project"]["required"] and test["node_id"]["required"] and "cursor" in test
    trigger = body_schema(document, "post", "/api/changes", "application/json")
    assert trigger["required"] == ["repository", "sha"] and trigger["additionalProperties"] is False
    assert {"branch", "pull_request", "author"} <= trigger["properties"].keys()
    quarantine = body_schema(document, "post", "/api/tests/quarantine", "application/json")
    assert quarantine["properties"]["action"]["enum"] == ["add", "remove"]
    form = "application/x-www-form-urlencoded"
    assert "csrf_token" in body_schema(document, "post", "/tests/quarantine", form)["properties"]
    assert body_schema(document, "post", "/signin", form)["required"] == ["token"]
    assert "csrf_token" in body_schema(document, "post", "/signout", form)["properties"]
    for hook, header in (("github", "X-Hub-Signature-256"), ("gitlab", "X-Gitlab-Token")):
        path = f"/api/hooks/{hook}"
        assert body_schema(document, "post", path, "application/json") == {"type": "object"}
        assert declared(document, "post", path)[header]["in"] == "header"


def test_an_attempt_id_beyond_64_bits_is_refused_not_a_server_error(app: FastAPI) -> None:
    """Found by generation: the store's integers are 64-bit, so 2**64 used to fail there."""
    with TestClient(app) as client:
        for attempt_id in (2**64, 2**63 + 1, -(2**63) - 1, 0):
            answer = client.get(f"/api/runs/any/failures/{attempt_id}")
            assert answer.status_code == 400, answer.text
            assert answer.json()["reason"].startswith("attempt_id"), answer.text
        assert client.get("/api/runs/any/failures/1").status_code == 404
