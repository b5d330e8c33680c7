"""Re-running a change from the dashboard, through the real app, session middleware,
store and intake: only a writer may, the run is queued once per ask with the change's
fields, and a change the server cannot fetch is refused in one line."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from store_fakes import FakeClock, finished_run, result

from farm.core.domain import ChangeRef
from farm.core.errors import FarmError
from farm.core.server_config import ForgeKind, RepositoryConfig, ServerConfig
from farm.core.trigger import TriggerRequest, TriggerSource
from farm.server.app import ServerParts, create_app
from farm.store import ResultStore

API = "api-token-" + "c" * 20
SHA = "ab12" + "0" * 36
OTHER = "ab12" + "f" * 36
APP_REPO = RepositoryConfig(
    name="github.com/acme/app",
    url="https://github.com/acme/app.git",
    forge=ForgeKind.GITHUB,
    api_url="https://api.github.com",
)


class Queue:
    """What the conductors' queue was given; ``fail`` makes it refuse."""

    def __init__(self) -> None:
        self.requests: list[TriggerRequest] = []
        self.fail = False

    def __call__(self, request: TriggerRequest) -> None:
        if self.fail:
            raise FarmError("the broker is down")
        self.requests.append(request)


@pytest.fixture
def queue() -> Queue:
    return Queue()


@pytest.fixture
def client(store: ResultStore, clock: FakeClock, queue: Queue) -> TestClient:
    config = ServerConfig(repositories=(APP_REPO,), api_token=API)
    parts = ServerParts(config, store.deliveries, queue, store=store)
    for sha, repository in ((SHA, "github.com/acme/app"), (OTHER, "gitlab.com/other/lib")):
        change = ChangeRef(repository, sha, branch="feature/x", pull_request="7", author="ann")
        finished_run(store, clock, lambda r: [result(r, "t.py::a")], change=change)
    return TestClient(create_app(parts))


def sign_in(client: TestClient) -> str:
    client.post("/signin", data={"token": API, "name": "alice"}, follow_redirects=False)
    csrf: str = client.get("/api/session").json()["csrf_token"]
    return csrf


def test_a_writer_re_runs_a_change_from_its_page(client: TestClient, queue: Queue) -> None:
    assert client.post(f"/changes/{SHA}/rerun").status_code == 401
    assert queue.requests == []

    csrf = sign_in(client)
    page = client.get(f"/changes/{SHA[:8]}").text
    assert f'action="/changes/{SHA}/rerun?repository=github.com%2Facme%2Fapp"' in page
    assert f'name="csrf_token" value="{csrf}"' in page
    assert client.post(f"/changes/{SHA}/rerun").status_code == 403  # no CSRF token

    done = client.post(
        f"/changes/{SHA[:8]}/rerun", data={"csrf_token": csrf}, follow_redirects=False
    )
    assert done.status_code == 303
    assert done.headers["location"] == f"/changes/{SHA[:8]}?rerun=queued"
    (request,) = queue.requests
    assert request == TriggerRequest(
        repository="github.com/acme/app",
        commit_sha=SHA,
        source=TriggerSource.RERUN,
        branch="feature/x",
        pull_request="7",
        author="ann",
    )
    assert "A new run of this change was queued" in client.get(done.headers["location"]).text

    # Asked for again, it is queued again: a re-run is asked for on purpose.
    again = client.post(f"/changes/{SHA}/rerun", headers={"X-CSRF-Token": csrf})
    assert again.status_code in (200, 303)
    assert len(queue.requests) == 2


def test_the_api_takes_the_token_and_says_why_it_refuses(client: TestClient, queue: Queue) -> None:
    bearer = {"Authorization": f"Bearer {API}"}
    rerun = client.get(f"/api/changes/{SHA}").json()["rerun"]
    assert rerun["api_url"] == f"/api/changes/{SHA}/rerun?repository=github.com%2Facme%2Fapp"
    assert client.get(f"/api/changes/{OTHER}").json()["rerun"] is None
    assert client.post(f"/api/changes/{SHA}/rerun").status_code == 401
    queued = client.post(f"/api/changes/{SHA}/rerun", headers=bearer)
    assert queued.status_code == 202 and queued.json()["status"] == "queued"
    assert [r.source for r in queue.requests] == [TriggerSource.RERUN]

    # The shared prefix names two changes: the repository picks one.
    several = client.post("/api/changes/ab12/rerun", headers=bearer)
    assert several.status_code == 400 and "several changes" in several.json()["reason"]
    picked = client.post(
        "/api/changes/ab12/rerun", params={"repository": "github.com/acme/app"}, headers=bearer
    )
    assert picked.status_code == 202

    unknown = client.post(f"/api/changes/{'c' * 40}/rerun", headers=bearer)
    assert unknown.status_code == 404
    assert client.post("/api/changes/zz/rerun", headers=bearer).status_code == 400
    elsewhere = client.post(f"/api/changes/{OTHER}/rerun", headers=bearer)
    assert elsewhere.status_code == 409
    assert "'gitlab.com/other/lib' is not one this server triggers" in elsewhere.json()["reason"]
    assert len(queue.requests) == 2

    queue.fail = True
    down = client.post(f"/api/changes/{SHA}/rerun", headers=bearer)
    assert down.status_code == 503 and "broker is down" in down.json()["reason"]


def test_a_change_the_server_cannot_fetch_offers_no_re_run(client: TestClient) -> None:
    sign_in(client)
    page = client.get(f"/changes/{OTHER}").text
    assert "/rerun" not in page
    assert "not a repository this server triggers" in page
