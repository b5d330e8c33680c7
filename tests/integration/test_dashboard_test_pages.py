"""The Test page, quarantine from it, and the flaky, slowest and duration-change
leaderboards, over a real results store filled through its own calls, behind the
real sign-in and CSRF checks; what a test calls itself is shown as text."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from markupsafe import escape
from starlette.requests import Request
from store_fakes import FakeClock, finished_run, result

from farm.core.domain import ChangeRef, Outcome, TestResult
from farm.core.server_config import ServerConfig
from farm.server import pages_tests
from farm.server.answers import Refused, refusal
from farm.server.auth import TOKEN_ACTOR, install_auth
from farm.server.pages import page_environment
from farm.server.pages_tests import duration_svg
from farm.store import ResultStore

pytestmark = pytest.mark.integration

API = "api-token-" + "a" * 20
PROJECT = "proj"
FLAKY = "tests/test_a.py::test_flaky"
SLOW = "tests/test_a.py::test_slow"
HOSTILE = "tests/test_x.py::test_x[<script>alert(1)</script>]"
DAY_S = 24 * 3600.0


def attempt(
    run_id: str,
    node_id: str,
    outcome: Outcome = Outcome.PASSED,
    duration_s: float = 1.0,
    *,
    attempt: int = 1,
    machine: str = "m1",
) -> TestResult:
    made = result(run_id, node_id, outcome, duration_s, attempt=attempt)
    return dataclasses.replace(made, machine=machine)


def run_of(
    store: ResultStore,
    clock: FakeClock,
    results: Callable[[str], list[TestResult]],
    branch: str,
) -> str:
    """A finished run made now on ``branch``; the clock then moves on an hour."""
    change = ChangeRef("repo", f"{int(clock.now):040x}"[-40:], branch)
    return finished_run(store, clock, results, change=change, project=PROJECT)


def week_results(index: int) -> Callable[[str], list[TestResult]]:
    """This week's run number ``index``: the flaky test fails on m2 then passes (slower
    each run), the hostile one is flaky in the first run only."""

    def results(run_id: str) -> list[TestResult]:
        made = [
            attempt(run_id, FLAKY, Outcome.FAILED, 2.0, machine="m2"),
            attempt(run_id, FLAKY, Outcome.PASSED, 1.0 + index, attempt=2),
            attempt(run_id, SLOW, duration_s=4.0),
        ]
        if index == 0:
            made.append(attempt(run_id, HOSTILE, Outcome.FAILED, 0.5))
            made.append(attempt(run_id, HOSTILE, Outcome.PASSED, 0.5, attempt=2))
        else:
            made.append(attempt(run_id, HOSTILE, Outcome.PASSED, 0.5))
            made.append(attempt(run_id, "tests/test_b.py::test_b"))
        return made

    return results


@pytest.fixture
def store(db_url: str, clock: FakeClock) -> Iterator[ResultStore]:
    with ResultStore.open(db_url, clock=clock) as opened:
        # Eight days ago: the window before this week, where the slow test was quick.
        run_of(
            store=opened,
            clock=clock,
            results=lambda r: [attempt(r, SLOW, duration_s=1.0)],
            branch="main",
        )
        clock.now += 8 * DAY_S
        for index, branch in enumerate(["main", "dev", "main"]):
            run_of(opened, clock, week_results(index), branch)
        yield opened


def app_for(store: ResultStore, clock: FakeClock) -> FastAPI:
    app = FastAPI()
    install_auth(app, ServerConfig(api_token=API))

    @app.exception_handler(Refused)
    async def refused(request: Request, error: Refused) -> object:
        return refusal(error)

    routes = pages_tests.test_routes(
        store, environment=page_environment(), clock=clock, page_rows=2
    )
    app.include_router(routes)
    return app


@pytest.fixture
def client(store: ResultStore, clock: FakeClock) -> Iterator[TestClient]:
    with TestClient(app_for(store, clock)) as test_client:
        yield test_client


def test_the_test_page_shows_runs_machines_branches_and_a_plot(client: TestClient) -> None:
    query = {"project": PROJECT, "node_id": FLAKY}
    first = client.get("/api/tests", params=query).json()
    assert first["node_id"] == FLAKY and first["quarantine"] is None
    assert [p["attempts"] for p in first["runs"]["items"]] == [2, 2]
    assert [p["duration_s"] for p in first["runs"]["items"]] == [3.0, 2.0]  # newest first
    assert first["failures_by_machine"] == [{"machine": "m2", "failures": 3}]
    assert {"branch": "dev", "outcome": "failed", "attempts": 1} in first["outcomes_by_branch"]
    cursor = first["runs"]["next_cursor"]
    older = client.get("/api/tests", params={**query, "cursor": cursor}).json()
    assert [p["duration_s"] for p in older["runs"]["items"]] == [1.0]
    assert older["runs"]["next_cursor"] is None

    page = client.get("/tests", params=query)
    assert page.status_code == 200
    assert "<polyline" in page.text and page.text.count("<circle") == 2
    assert "m2" in page.text and "Sign in" in page.text and 'name="csrf_token"' not in page.text
    assert 'class="next" href="/tests?project=proj&amp;node_id=' in page.text


def test_a_hostile_node_id_shows_as_text(client: TestClient) -> None:
    page = client.get("/tests", params={"project": PROJECT, "node_id": HOSTILE})
    assert page.status_code == 200
    assert "<script>" not in page.text
    assert str(escape(HOSTILE)) in page.text
    flaky = client.get("/flaky", params={"project": PROJECT})
    assert "<script>" not in flaky.text and str(escape(HOSTILE)) in flaky.text


def test_bad_input_gets_one_line(client: TestClient) -> None:
    unknown = client.get("/tests", params={"project": PROJECT, "node_id": "nope.py::t"})
    assert unknown.status_code == 404 and unknown.text.count("\n") == 1
    assert client.get("/api/tests", params={"project": PROJECT, "node_id": "x"}).status_code == 404
    assert client.get("/tests", params={"project": PROJECT}).status_code == 400
    bad_cursor = {"project": PROJECT, "node_id": FLAKY, "cursor": "garbage"}
    assert client.get("/tests", params=bad_cursor).status_code == 400
    answer = client.get("/api/tests", params=bad_cursor)
    assert answer.status_code == 400 and "not a cursor" in answer.json()["reason"]
    for days in ["0", "-1", "x", "9999", "1.5", "\u00b2"]:  # "²" is a digit int() refuses
        for path in ["/flaky", "/api/slowest", "/durations"]:
            bad = client.get(path, params={"project": PROJECT, "days": days})
            assert bad.status_code == 400, (path, days)
            assert bad.text.count("\n") == (0 if path.startswith("/api/") else 1), bad.text
    refused = client.get("/api/flaky", params={"project": PROJECT, "days": "0"}).json()
    assert refused["status"] == "refused" and refused["reason"].startswith("days '0': ")
    for path in ["/api/slowest", "/durations"]:  # a form's empty field is the default
        assert client.get(path, params={"project": PROJECT, "days": ""}).status_code == 200
    default = client.get("/api/flaky", params={"project": PROJECT, "days": "", "quarantined": ""})
    assert default.json()["days"] == 7 and default.json()["quarantined"] == "all"
    assert client.get("/flaky", params={"project": PROJECT, "quarantined": "x"}).status_code == 400
    assert client.get("/api/flaky", params={"project": PROJECT, "cursor": "W10"}).status_code == 400


def test_the_flaky_board_ranks_by_retry_cost_and_filters_quarantined(
    client: TestClient, store: ResultStore
) -> None:
    ranked = client.get("/api/flaky", params={"project": PROJECT}).json()
    items = ranked["tests"]["items"]
    assert [t["node_id"] for t in items] == [FLAKY, HOSTILE]
    assert items[0]["retry_cost_s"] == 6.0 and items[0]["flaky_runs"] == 3
    assert not any(t["quarantined"] for t in items)

    store.quarantine.add(PROJECT, HOSTILE, reason="known", owner="", actor="bob")
    only = client.get("/api/flaky", params={"project": PROJECT, "quarantined": "only"}).json()
    assert [t["node_id"] for t in only["tests"]["items"]] == [HOSTILE]
    none = client.get("/api/flaky", params={"project": PROJECT, "quarantined": "none"}).json()
    assert [t["node_id"] for t in none["tests"]["items"]] == [FLAKY]
    page = client.get("/flaky", params={"project": PROJECT})
    assert page.text.count("badge flaky") == 1 and "6.000s" in page.text
    # Nothing flaky in the last hour's runs: the window is what it says.
    assert client.get("/api/flaky", params={"project": PROJECT, "days": "1"}).status_code == 200


def test_slowest_and_duration_changes_walk_their_pages(client: TestClient) -> None:
    slowest = client.get("/api/slowest", params={"project": PROJECT}).json()["tests"]
    assert slowest["items"][0]["node_id"] == SLOW and slowest["items"][0]["mean_s"] == 4.0
    rest = client.get("/api/slowest", params={"project": PROJECT, "cursor": slowest["next_cursor"]})
    assert rest.status_code == 200 and rest.json()["tests"]["items"]
    assert "4.000s" in client.get("/slowest", params={"project": PROJECT}).text

    changes = client.get("/api/durations", params={"project": PROJECT}).json()["tests"]
    assert [(c["node_id"], c["before_s"], c["after_s"]) for c in changes["items"]] == [
        (SLOW, 1.0, 4.0)
    ]
    page = client.get("/durations", params={"project": PROJECT})
    assert "+3.000s" in page.text and "\u00d74.00" in page.text


def sign_in(client: TestClient) -> str:
    answer = client.post("/signin", data={"token": API, "name": "alice"}, follow_redirects=False)
    assert answer.status_code == 303
    csrf: str = client.get("/api/session").json()["csrf_token"]
    return csrf


def test_quarantine_needs_a_writer_and_records_the_actor(
    client: TestClient, store: ResultStore
) -> None:
    form = {"project": PROJECT, "node_id": FLAKY, "action": "add", "reason": "flaky on m2"}
    assert client.post("/tests/quarantine", data=form).status_code == 401
    assert client.post("/api/tests/quarantine", json=form).status_code == 401
    csrf = sign_in(client)
    refused = client.post("/tests/quarantine", data=form, follow_redirects=False)
    assert refused.status_code == 403 and not store.quarantine.entries(PROJECT)

    page = client.get("/tests", params={"project": PROJECT, "node_id": FLAKY})
    assert f'name="csrf_token" value="{csrf}"' in page.text  # the form carries it
    done = client.post(
        "/tests/quarantine", data={**form, "csrf_token": csrf}, follow_redirects=False
    )
    assert done.status_code == 303
    assert (
        done.headers["location"] == "/tests?project=proj&node_id=tests%2Ftest_a.py%3A%3Atest_flaky"
    )
    (entry,) = store.quarantine.entries(PROJECT)
    assert (entry.node_id, entry.actor, entry.reason) == (FLAKY, "alice", "flaky on m2")
    shown = client.get(done.headers["location"]).text
    assert "in-quarantine" in shown and re.search(r"<td>alice</td>", shown)

    bearer = TestClient(app_for(store, FakeClock()))
    removal = {**form, "action": "remove", "reason": "fixed"}
    auth = {"Authorization": f"Bearer {API}"}
    answer = bearer.post("/api/tests/quarantine", json=removal, headers=auth)
    assert answer.status_code == 200 and answer.json()["actor"] == TOKEN_ACTOR
    assert answer.json()["changed"] is True and not store.quarantine.entries(PROJECT)
    events = store.quarantine.events(PROJECT, FLAKY)
    assert [(e.action.value, e.actor) for e in events] == [
        ("left", TOKEN_ACTOR),
        ("entered", "alice"),
    ]
    no_reason = bearer.post("/api/tests/quarantine", json={**form, "reason": ""}, headers=auth)
    assert no_reason.status_code == 400
    bad_action = bearer.post("/api/tests/quarantine", json={**form, "action": "x"}, headers=auth)
    assert bad_action.status_code == 400
    for project in ["p\x00", "p" * 256]:  # the store's project column cannot hold them
        bad = {**form, "project": project}
        for refused in [
            bearer.post("/api/tests/quarantine", json=bad, headers=auth),
            bearer.post("/tests/quarantine", data=bad, headers=auth, follow_redirects=False),
        ]:
            assert refused.status_code == 400 and "at most 255" in refused.text, refused.text


def test_the_plot_is_pure() -> None:
    assert duration_svg([]) == ""
    svg = duration_svg([(2.0, 1.0, "<b>"), (1.0, 2.0, "a")], width=100, height=50)
    assert 'points="8.0,8.0 92.0,25.0"' in svg  # oldest first, the longest at the top
    assert "&lt;b&gt;" in svg and "<b>" not in svg


def test_a_leaderboard_without_a_project_offers_the_projects(
    store: ResultStore, clock: FakeClock, client: TestClient
) -> None:
    other = "<b>other</b>"
    finished_run(store, clock, lambda r: [result(r, "t.py::a")], project=other)  # the newest
    for kind in ("flaky", "slowest", "durations"):
        page = client.get(f"/{kind}")
        assert page.status_code == 200
        links = [line for line in page.text.splitlines() if "<li><a href=" in line]
        assert [f"/{kind}?project=%3Cb%3Eother%3C/b%3E" in links[0], PROJECT in links[1]] == [
            True,
            True,
        ]
        assert other not in page.text  # shown as text
        assert client.get(f"/api/{kind}").status_code == 400  # the API names its project
