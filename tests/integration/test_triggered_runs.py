"""A change triggered by a webhook, end to end: a bare git repository plays the
remote, ``farm serve`` (with one conductor) takes a signed push, a ``farm worker``
runs the shards, and a fake GitHub on loopback records the statuses it is sent.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from browser_support import free_port
from fake_forge import Call, FakeForge
from helpers import WorkerProcess, farm_env, git
from sqlalchemy import text

from farm.store import ResultStore

pytestmark = pytest.mark.integration

SECRET = "hook-secret"
FORGE_TOKEN = "forge-token"
API_TOKEN = "api-token"
REPOSITORY = "github.com/acme/shop"


@dataclass(frozen=True)
class Farm:
    url: str  # farm serve's address
    forge: FakeForge
    remote: Path  # the bare repository
    work: Path  # a clone that pushes to it
    db_url: str


def wait_for(what: str, check: Callable[[], Any], timeout_s: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def farm(tmp_path: Path, redis_url: str, key_prefix: str, db_url: str) -> Iterator[Farm]:
    remote = tmp_path / "shop.git"
    work = tmp_path / "work"
    git(tmp_path, "init", "--quiet", "--bare", "--initial-branch=main", str(remote))
    git(tmp_path, "clone", "--quiet", str(remote), str(work))
    (work / "test_shop.py").write_text(
        "def test_add():\n    assert 1 + 1 == 2\n\n\ndef test_cart():\n    assert [] == []\n"
    )
    (work / "pyproject.toml").write_text("[tool.pytest.ini_options]\n")
    git(work, "add", "-A")
    git(work, "commit", "--quiet", "-m", "shop")
    git(work, "push", "--quiet", "origin", "HEAD:main")
    with FakeForge.start(token=FORGE_TOKEN) as forge:
        config = tmp_path / "server.toml"
        config.write_text(
            "[server]\napi_token_env = 'SHOP_API_TOKEN'\n\n"
            "[[repository]]\n"
            f"name = '{REPOSITORY}'\nurl = '{remote}'\napi_url = '{forge.url}'\n"
            "webhook_secret_env = 'SHOP_SECRET'\ntoken_env = 'SHOP_FORGE_TOKEN'\n"
        )
        env = farm_env(
            FARM_KEY_PREFIX=key_prefix, FARM_QUEUE=key_prefix + "q", FARM_DATABASE_URL=db_url,
            FARM_BROKER_URL=redis_url, FARM_STATE_DIR=str(tmp_path / "state"),
            FARM_CACHE_DIR=str(tmp_path / "conductor-cache"), FARM_DASHBOARD_URL="http://dash.test",
            FARM_TEST_USER="self", SHOP_SECRET=SECRET, SHOP_FORGE_TOKEN=FORGE_TOKEN,
            SHOP_API_TOKEN=API_TOKEN,
        )  # fmt: skip
        worker = WorkerProcess(
            tmp_path / "worker.log", "-c", "2", "--cache", str(tmp_path / "worker-cache"),
            "--name", "w1", cwd=tmp_path, env=env,
        )  # fmt: skip
        port = free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "farm", "serve", "--config", str(config), "--port", str(port),
             "--conductors", "1"],
            cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
            stderr=open(tmp_path / "serve.log", "wb"),  # noqa: SIM115
            stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        try:
            wait_for("the server", lambda: _healthy(url), timeout_s=30)
            yield Farm(url, forge, remote, work, db_url)
        finally:
            server.terminate()
            try:
                server.wait(timeout=20)
            finally:
                worker.kill()
        print((tmp_path / "serve.log").read_text(errors="replace")[-3000:])
        print((tmp_path / "state" / "conductors.log").read_text(errors="replace")[-5000:])


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/api/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def statuses(forge: FakeForge, sha: str) -> list[Call]:
    return [call for call in forge.calls if call.path.endswith(f"/statuses/{sha}")]


def verdict_calls(farm: Farm, sha: str) -> list[Call]:
    """The status calls for ``sha`` once the second (the verdict) has arrived."""
    return wait_for("the verdict", lambda: (s := statuses(farm.forge, sha))[1:] and s)  # type: ignore[no-any-return]


def push_event(sha: str) -> dict[str, Any]:
    return {
        "ref": "refs/heads/main", "before": "0" * 39 + "1", "after": sha, "deleted": False,
        "repository": {"full_name": "acme/shop", "html_url": "https://github.com/acme/shop"},
        "head_commit": {"id": sha, "author": {"email": "dev@example.com"}},
        "pusher": {"name": "dev"}, "sender": {"login": "dev"},
    }  # fmt: skip


def post_push(farm: Farm, sha: str, delivery: str) -> httpx.Response:
    body = json.dumps(push_event(sha)).encode()
    signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    headers = {"X-GitHub-Event": "push", "X-GitHub-Delivery": delivery,
               "X-Hub-Signature-256": signature, "Content-Type": "application/json"}  # fmt: skip
    return httpx.post(f"{farm.url}/api/hooks/github", content=body, headers=headers, timeout=5)


def test_a_signed_push_runs_the_commit_and_reports_pending_then_the_verdict(farm: Farm) -> None:
    passing = git(farm.work, "rev-parse", "HEAD")
    answer = post_push(farm, passing, "delivery-1")
    assert answer.status_code == 202, answer.text
    calls = verdict_calls(farm, passing)
    assert [call.body["state"] for call in calls] == ["pending", "success"]
    assert all(call.body["context"] == "farm" for call in calls)
    assert calls[1].body["target_url"].startswith("http://dash.test/runs/")
    assert "passed" in calls[1].body["description"]

    # A breaking commit: its failure is the verdict, with the failing test named.
    (farm.work / "test_shop.py").write_text(
        "def test_add():\n    assert 1 + 1 == 3\n\n\ndef test_cart():\n    assert [] == []\n"
    )
    git(farm.work, "commit", "--quiet", "-am", "break")
    git(farm.work, "push", "--quiet", "origin", "HEAD:main")
    breaking = git(farm.work, "rev-parse", "HEAD")
    assert post_push(farm, breaking, "delivery-2").status_code == 202
    calls = verdict_calls(farm, breaking)
    assert [call.body["state"] for call in calls] == ["pending", "failure"]
    assert "1 of 2 tests failed" in calls[1].body["description"]

    # The dashboard shows both changes, the breaking one's run and its failure.
    changes = httpx.get(f"{farm.url}/api/changes", timeout=5).json()
    assert {passing, breaking} <= {c["commit_sha"] for c in changes["changes"]}, changes
    run_page = httpx.get(calls[1].body["target_url"].replace("http://dash.test", farm.url))
    assert run_page.status_code == 200 and "test_shop.py::test_add" in run_page.text

    with ResultStore.open(farm.db_url) as store:
        found = store.change_runs(breaking)
        assert found is not None
        assert (found.change.repository, found.change.branch) == (REPOSITORY, "main")
        assert [(run.verdict, run.trigger) for run in found.runs] == [("failed", "github")]
        # Both commits were checked out into one slot: the second run started warm,
        # from the first one's collection, as repeated runs in one clone do.
        with store._db.transaction("count cached collections") as connection:
            cached = connection.execute(text("SELECT count(*) FROM collection_cache")).scalar()
        assert cached == 1

    # Re-run from the dashboard's API: the same commit runs again and reports again.
    rerun = httpx.post(
        f"{farm.url}/api/changes/{passing[:10]}/rerun",
        headers={"Authorization": f"Bearer {API_TOKEN}"}, timeout=5,
    )  # fmt: skip
    assert rerun.status_code == 202, rerun.text
    again = wait_for("the re-run's verdict", lambda: (s := statuses(farm.forge, passing))[3:] and s)
    assert [call.body["state"] for call in again] == ["pending", "success"] * 2
    with ResultStore.open(farm.db_url) as store:
        rerun_of = store.change_runs(passing)
        assert rerun_of is not None
        assert [(run.verdict, run.trigger) for run in rerun_of.runs] == [
            ("passed", "github"),
            ("passed", "rerun"),
        ]


def test_the_workers_page_lists_the_farms_worker(farm: Farm) -> None:
    page = wait_for(
        "the worker on the page",
        lambda: (
            (p := httpx.get(f"{farm.url}/workers", timeout=5)).status_code == 200
            and 'class="worker"' in p.text
            and p
        ),
    )
    assert ">w1<" in page.text
    machines = httpx.get(f"{farm.url}/api/workers", timeout=5).json()["machines"]
    assert [w["name"] for m in machines for w in m["workers"]] == ["w1"]


def test_a_commit_the_repository_lacks_is_an_error_status(farm: Farm) -> None:
    missing = "abcdef0" * 5 + "abcde"
    answer = httpx.post(
        f"{farm.url}/api/changes", json={"repository": REPOSITORY, "sha": missing},
        headers={"Authorization": f"Bearer {API_TOKEN}"}, timeout=5,
    )  # fmt: skip
    assert answer.status_code == 202, answer.text
    calls = verdict_calls(farm, missing)
    assert [call.body["state"] for call in calls] == ["pending", "error"]
    assert f"commit {missing[:12]} is not in" in calls[1].body["description"]
    with ResultStore.open(farm.db_url) as store:
        found = store.change_runs(missing)
        assert found is not None
        assert [(run.verdict, run.trigger) for run in found.runs] == [("error", "api")]
