"""The forge clients over real HTTP, against the fake forge on loopback.

Each test reads what the fake received: paths, headers, JSON bodies, the GitHub
App's JWT (the fake verifies it with the App's public key, as GitHub does).
Waits between retries are recorded, not slept.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from dataclasses import replace

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fake_forge import FakeForge

from farm.core.errors import ForgeError
from farm.core.server_config import ForgeKind, GitHubApp, RepositoryConfig
from farm.forge.github import GitHubClient, app_jwt
from farm.forge.reporter import STARTED_DESCRIPTION, StatusHandle, reporter_for
from farm.forge.status import Annotation, StatusReport, StatusState

pytestmark = pytest.mark.integration

SHA = "0123456789abcdef0123456789abcdef01234567"
TOKEN = "ghp_s3cret-token-value"
RUN_URL = "http://farm.example/runs/42"


@pytest.fixture(scope="module")
def app_keys() -> tuple[str, str]:
    """(private, public) PEM of a fresh RSA key."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


@pytest.fixture
def forge() -> Iterator[FakeForge]:
    with FakeForge.start(token=TOKEN) as fake:
        yield fake


def repository(forge_url: str, **changes: object) -> RepositoryConfig:
    config = RepositoryConfig(
        name="github.com/acme/shop",
        url="https://github.com/acme/shop.git",
        forge=ForgeKind.GITHUB,
        api_url=forge_url,
        token=TOKEN,
    )
    return replace(config, **changes)  # type: ignore[arg-type]


def test_a_github_token_sets_a_pending_then_a_final_commit_status(forge: FakeForge) -> None:
    reporter = reporter_for(repository(forge.url, status_context="farm/ci"))
    handle = reporter.started(SHA, RUN_URL)
    reporter.finished(handle, StatusReport(StatusState.FAILURE, "2 failed, 8 passed", RUN_URL))

    reporter.finished(handle, StatusReport(StatusState.FAILURE, "bad byte \udcff", ""))

    first, second, third = forge.calls
    assert third.body is not None and third.body["description"] == "bad byte ?"
    assert first.method == second.method == "POST"
    assert first.path == second.path == f"/repos/acme/shop/statuses/{SHA}"
    assert first.headers["authorization"] == f"Bearer {TOKEN}"
    assert first.headers["accept"] == "application/vnd.github+json"
    assert first.headers["x-github-api-version"] == "2022-11-28"
    assert first.headers["user-agent"] == "farm"
    assert first.body == {
        "state": "pending",
        "description": STARTED_DESCRIPTION,
        "context": "farm/ci",
        "target_url": RUN_URL,
    }
    assert second.body == {
        "state": "failure",
        "description": "2 failed, 8 passed",
        "context": "farm/ci",
        "target_url": RUN_URL,
    }


def test_a_github_app_writes_a_check_run_with_annotations_fifty_at_a_time(
    app_keys: tuple[str, str],
) -> None:
    private, public = app_keys
    before_s = time.time()
    with FakeForge.start(app_public_key_pem=public) as forge:
        app = GitHubApp("12345", private, "678")
        reporter = reporter_for(repository(forge.url, token="", github_app=app))
        handle = reporter.started(SHA, RUN_URL)
        failures = tuple(
            Annotation(f"tests/test_{i % 7}.py", i + 1, f"test_{i}", f"assert {i} == -1")
            for i in range(120)
        )
        report = StatusReport(
            StatusState.FAILURE, "120 failed", RUN_URL, "**120 failed**", failures
        )
        reporter.finished(handle, report)
        calls = forge.calls

    token_call, create, *updates = calls
    assert token_call.path == "/app/installations/678/access_tokens"
    signed = token_call.headers["authorization"].removeprefix("Bearer ")
    claims = jwt.decode(signed, public, algorithms=["RS256"])
    assert claims["iss"] == "12345"
    assert before_s - 61 <= claims["iat"] <= before_s - 59 + 5  # 60 s back, for clock drift
    assert claims["exp"] - claims["iat"] <= 600  # GitHub's limit, counted from the back-dated iat

    installation_token = create.headers["authorization"].removeprefix("Bearer ")
    assert installation_token.startswith("ghs_fake")
    assert create.path == "/repos/acme/shop/check-runs"
    assert create.body == {
        "name": "farm",
        "head_sha": SHA,
        "status": "in_progress",
        "details_url": RUN_URL,
    }
    assert handle.check_run_id is not None
    assert [u.path for u in updates] == [f"/repos/acme/shop/check-runs/{handle.check_run_id}"] * 3
    assert all(u.method == "PATCH" for u in updates)
    assert all(u.headers["authorization"] == f"Bearer {installation_token}" for u in updates)
    assert updates[0].body["status"] == "completed"
    assert updates[0].body["conclusion"] == "failure"
    assert updates[0].body["output"]["title"] == "120 failed"
    assert updates[0].body["output"]["summary"] == "**120 failed**"
    sizes = [len(u.body["output"]["annotations"]) for u in updates]
    assert sizes == [50, 50, 20]
    sent = [a for u in updates for a in u.body["output"]["annotations"]]
    assert [a["title"] for a in sent] == [f"test_{i}" for i in range(120)]
    assert sent[119] == {
        "path": "tests/test_0.py",
        "start_line": 120,
        "end_line": 120,
        "annotation_level": "failure",
        "title": "test_119",
        "message": "assert 119 == -1",
    }


def test_an_installation_token_is_reused_until_shortly_before_it_expires(
    app_keys: tuple[str, str],
) -> None:
    private, public = app_keys
    app = GitHubApp("12345", private, "678")
    report = StatusReport(StatusState.ERROR, "workers lost", "")
    for lifetime_s, fetches in ((3600.0, 1), (60.0, 2)):
        with FakeForge.start(app_public_key_pem=public, token_lifetime_s=lifetime_s) as forge:
            client = GitHubClient(forge.url, app=app)
            for _ in range(2):
                client.finish_check_run("github.com/acme/shop", SHA, name="farm", report=report)
            calls = forge.calls
        paths = [c.path for c in calls]
        assert paths.count("/app/installations/678/access_tokens") == fetches
        created = [c.body for c in calls if c.path.endswith("/check-runs")]
        # Never started: created concluded; GitHub has no error conclusion, the title says it.
        assert created[0]["conclusion"] == "failure"
        assert created[0]["output"]["title"] == "error: workers lost"


def test_failures_past_the_annotation_limit_are_listed_in_the_summary(forge: FakeForge) -> None:
    client = GitHubClient(forge.url, token=TOKEN, annotations_limit=60)
    failures = tuple(Annotation("tests/test_a.py", i + 1, f"test_{i}", "boom") for i in range(70))
    report = StatusReport(StatusState.FAILURE, "70 failed", "", "**70 failed**", failures)
    client.finish_check_run("github.com/acme/shop", SHA, name="farm", report=report)
    create, update = forge.calls
    assert len(create.body["output"]["annotations"]) == 50
    assert len(update.body["output"]["annotations"]) == 10
    summary = update.body["output"]["summary"]
    assert summary.startswith("**70 failed**\n\n10 more not annotated on their lines:")
    assert summary.splitlines()[-1] == "- `tests/test_a.py:70` test_69"


def test_gitlab_gets_running_then_failed_for_an_error(forge: FakeForge) -> None:
    config = repository(
        forge.url,
        name="gitlab.example.com/acme/tools/shop",
        forge=ForgeKind.GITLAB,
    )
    reporter = reporter_for(config)
    reporter.finished(
        reporter.started(SHA, RUN_URL),
        StatusReport(StatusState.ERROR, "no tests ran", RUN_URL),
    )
    started, finished = forge.calls
    assert started.path == finished.path == f"/projects/acme%2Ftools%2Fshop/statuses/{SHA}"
    assert started.headers["private-token"] == TOKEN
    assert "authorization" not in started.headers
    assert started.body == {
        "state": "running",
        "name": "farm",
        "description": STARTED_DESCRIPTION,
        "target_url": RUN_URL,
    }
    assert finished.body["state"] == "failed"
    assert finished.body["description"] == "error: no tests ran"


def test_a_5xx_is_tried_again_after_a_wait(forge: FakeForge) -> None:
    waits: list[float] = []
    reporter = reporter_for(repository(forge.url), sleep=waits.append)
    forge.fail_next(2, status=502)
    reporter.started(SHA, "")
    assert [c.path for c in forge.calls] == [f"/repos/acme/shop/statuses/{SHA}"] * 3
    assert waits == [1.0, 2.0]
    assert "target_url" not in (forge.calls[-1].body or {})


def test_a_forge_still_failing_after_the_retries_is_a_forge_error(forge: FakeForge) -> None:
    waits: list[float] = []
    reporter = reporter_for(repository(forge.url), sleep=waits.append)
    forge.fail_next(3, status=503)
    with pytest.raises(
        ForgeError, match=r"^GitHub POST /repos/acme/shop/statuses/\w+ was refused: 503"
    ):
        reporter.started(SHA, RUN_URL)
    assert len(forge.calls) == 3 and len(waits) == 2


def test_refused_credentials_are_one_line_without_the_token(forge: FakeForge) -> None:
    waits: list[float] = []
    wrong = "ghp_wrong-token-9f8e7d"
    reporter = reporter_for(repository(forge.url, token=wrong), sleep=waits.append)
    with pytest.raises(ForgeError) as caught:
        reporter.finished(StatusHandle(SHA), StatusReport(StatusState.SUCCESS, "10 passed", ""))
    message = str(caught.value)
    assert message.endswith("was refused: 401 Bad credentials")
    assert wrong not in message and "\n" not in message
    assert len(forge.calls) == 1 and waits == []  # a 4xx is not tried again


def test_a_forge_that_cannot_be_reached_is_a_forge_error() -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    waits: list[float] = []
    reporter = reporter_for(repository(f"http://127.0.0.1:{port}"), sleep=waits.append)
    with pytest.raises(ForgeError, match=r"^cannot reach GitHub POST /repos/acme/shop/statuses/"):
        reporter.started(SHA, RUN_URL)
    assert len(waits) == 2


def test_a_repository_without_statuses_sends_nothing(forge: FakeForge) -> None:
    for config in (repository(forge.url, statuses=False), repository(forge.url, token="")):
        reporter = reporter_for(config)
        reporter.finished(
            reporter.started(SHA, RUN_URL), StatusReport(StatusState.SUCCESS, "ok", "")
        )
    assert forge.calls == []


def test_an_app_jwt_is_issued_by_the_clock_given(app_keys: tuple[str, str]) -> None:
    private, public = app_keys
    signed = app_jwt(GitHubApp("7", private, "8"), 1_700_000_000.5)
    claims = jwt.decode(signed, public, algorithms=["RS256"], options={"verify_exp": False})
    assert claims == {"iat": 1_699_999_940, "exp": 1_700_000_540, "iss": "7"}
    with pytest.raises(ForgeError, match=r"^the private key of GitHub App 7 is not an RSA"):
        app_jwt(GitHubApp("7", "not a key", "8"), 1_700_000_000.0)
