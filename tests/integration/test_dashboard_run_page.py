"""The Run page on a real store: progress, the time line's lanes, failures grouped and
paginated, escaping, the JSON twin, unknown runs, and a page bounded in size."""

from __future__ import annotations

import dataclasses
import re
from html import escape
from urllib.parse import quote_plus

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from store_fakes import FakeClock, result

from farm.core.domain import Outcome, TestResult, Verdict
from farm.server.pages import page_environment
from farm.server.pages_runs import CLIP_CHARS, FAILURES_PER_PAGE, run_routes
from farm.store import ResultStore, ShardRecord

REFUSED = "ConnectionRefusedError: [Errno 111] Connection refused"
EVIL = "t.py::test_x[<script>alert(1)</script>]"


def traceback(message: str) -> str:
    return f"def test():\n>       connect()\nE       {message}\n\nt.py:3: {message.split(':')[0]}\n"


@pytest.fixture
def client(store: ResultStore, clock: FakeClock) -> TestClient:
    app = FastAPI()
    app.include_router(run_routes(store.dashboard, environment=page_environment(), clock=clock))
    return TestClient(app)


def on(made: TestResult, shard_id: int, worker: str, machine: str) -> TestResult:
    return dataclasses.replace(made, shard_id=shard_id, worker=worker, machine=machine)


def running_run(store: ResultStore, clock: FakeClock, *, total: int = 10) -> str:
    """A running run of ``total`` tests planned as four shards on four slots of two
    machines; three shards started, one of them finished."""
    run_id = store.create_run(project="proj", trigger="ci", settings={})
    shards = [ShardRecord(i, total // 4 or 1, 4.0) for i in range(4)]
    store.start_run(run_id, total_tests=total, estimated_makespan_s=8.0, shards=shards)
    start = clock.now
    slots = [("w1:1", "m1"), ("w2:2", "m1"), ("w3:3", "m2"), ("w4:4", "m2")]
    for shard_id, (worker, machine) in enumerate(slots[:3]):
        store.shard_started(run_id, shard_id, worker=worker, started_at=start, machine=machine)
    other_errno = traceback(REFUSED.replace("111", "61"))
    db = result(run_id, "t.py::db", Outcome.FAILED, longrepr=traceback(REFUSED))
    evil = result(run_id, EVIL, Outcome.FAILED, longrepr=other_errno, output="<b>captured</b>")
    store.record_results(
        [
            on(result(run_id, "t.py::ok", duration_s=2.0), 0, "w1:1", "m1"),
            on(result(run_id, "t.py::slow", duration_s=3.5), 0, "w1:1", "m1"),
            on(db, 1, "w2:2", "m1"),
            on(evil, 1, "w2:2", "m1"),
        ]
    )
    store.shard_finished(run_id, 0, finished_at=start + 6.0)
    clock.now += 4.0
    return run_id


def test_the_page_shows_progress_timeline_groups_and_escapes(
    client: TestClient, store: ResultStore, clock: FakeClock
) -> None:
    run_id = running_run(store, clock)
    answer = client.get(f"/runs/{run_id}")
    assert answer.status_code == 200
    html = answer.text
    assert '<span id="tests-reported">4</span> / <span id="total-tests">10</span>' in html
    assert 'data-state="running"' in html and "<script>" in html  # the live script
    # ETA: 4 s so far for 4 tests of 10 -> 6 s to go.
    assert re.search(r'<strong id="eta">6\.0s</strong>', html)
    # Three slots started shards: one lane each, under two machines.
    assert len(re.findall(r'<g class="lane"', html)) == 3
    assert len(re.findall(r'<g class="machine"', html)) == 2
    assert (
        "2 tests failed with ConnectionRefusedError: [Errno &lt;n&gt;] Connection refused" in html
    )
    assert "<script>alert(1)</script>" not in html
    assert "test_x[&lt;script&gt;alert(1)&lt;/script&gt;]" in html
    assert "&lt;b&gt;captured&lt;/b&gt;" in html and "<b>captured</b>" not in html
    assert html.count('<details class="failure"') == 2
    # Slowest first; lower bound: busy 6 s (finished) + 4 s + 4 s (running) on 3 slots
    # = 4.67 s, above the longest test's 3.5 s.
    slow = re.findall(r'<tr class="slow"><td><code>([^<]*)</code>', html)
    assert slow[0] == "t.py::slow"
    assert '<td id="lower-bound">4.7s' in html
    assert '<td id="estimate">8.0s' in html


def test_the_json_twin_says_what_the_page_shows(
    client: TestClient, store: ResultStore, clock: FakeClock
) -> None:
    run_id = running_run(store, clock)
    view = client.get(f"/api/runs/{run_id}").json()
    assert view["state"] == "running" and view["live"] is True
    assert view["progress"]["tests_reported"] == 4
    assert view["progress"]["by_outcome"] == {"failed": 2, "passed": 2}
    assert view["progress"]["eta_s"] == pytest.approx(6.0)
    assert view["makespan"]["slots"] == 3
    assert [g["count"] for g in view["failure_groups"]] == [2]
    assert {f["node_id"] for f in view["failures"]} == {"t.py::db", EVIL}
    svg = client.get(f"/runs/{run_id}/timeline.svg")
    assert svg.headers["content-type"].startswith("image/svg+xml")
    assert svg.text.count('<g class="lane"') == 3

    store.record_results([on(result(run_id, f"t.py::n{i}"), 2, "w3:3", "m2") for i in range(6)])
    store.shard_finished(run_id, 2, finished_at=clock.now)
    store.finish_run(run_id, verdict=Verdict.FAILED)
    done = client.get(f"/api/runs/{run_id}").json()
    assert done["state"] == "finished" and done["live"] is False
    assert done["progress"]["tests_reported"] == 10 and done["progress"]["eta_s"] is None
    assert 'fetch("/api/runs/"' not in client.get(f"/runs/{run_id}").text  # no polling once done


def test_an_unknown_run_is_a_404_with_one_line(client: TestClient) -> None:
    page = client.get("/runs/no-such-run")
    assert page.status_code == 404
    assert '<p id="problem">there is no run no-such-run</p>' in page.text
    api = client.get("/api/runs/no-such-run")
    assert api.status_code == 404
    assert api.json() == {"status": "refused", "reason": "there is no run no-such-run"}
    assert client.get("/runs/no-such-run/timeline.svg").status_code == 404
    assert client.get("/api/runs/no-such-run/failures").status_code == 404


def test_failures_come_a_page_at_a_time_and_the_html_stays_small(
    client: TestClient, store: ResultStore, clock: FakeClock
) -> None:
    run_id = running_run(store, clock, total=2100)
    big = traceback(REFUSED) + "x" * (64 * 1024)
    failing = [
        on(result(run_id, f"t.py::f{i}", Outcome.FAILED, longrepr=big, output="o" * 64 * 1024),
           3, "w4:4", "m2")
        for i in range(2000)
    ]  # fmt: skip
    store.record_results(failing)
    answer = client.get(f"/runs/{run_id}")
    assert answer.status_code == 200
    assert len(answer.content) < 2 * 1024 * 1024
    assert answer.text.count('<details class="failure"') == FAILURES_PER_PAGE
    assert "Traceback clipped to its first" in answer.text
    # The headline counts every failed test of the run, not those of the page shown.
    assert "2002 tests failed with ConnectionRefusedError" in answer.text
    assert re.findall(r'class="failure-group" data-count="(\d+)"', answer.text) == ["2002"]

    # Walk every failure through the JSON pages and the "more" link's cursor.
    seen: list[str] = []
    cursor = re.search(r'class="more" href="/runs/[^?]+\?cursor=([^#"]+)#', answer.text)
    assert cursor is not None
    first = client.get(f"/api/runs/{run_id}/failures").json()
    assert len(first["failures"]) == FAILURES_PER_PAGE
    assert first["next_cursor"] == cursor.group(1)
    seen.extend(f["node_id"] for f in first["failures"])
    next_cursor = first["next_cursor"]
    while next_cursor:
        page = client.get(f"/api/runs/{run_id}/failures", params={"cursor": next_cursor}).json()
        seen.extend(f["node_id"] for f in page["failures"])
        next_cursor = page["next_cursor"]
    assert len(seen) == 2002 and len(set(seen)) == 2002

    # The page the link opens, and one failure's full text.
    second = client.get(f"/runs/{run_id}", params={"cursor": first["next_cursor"]})
    assert second.status_code == 200 and "t.py::f18" in second.text
    shown = first["failures"][-1]
    assert shown["longrepr"]["clipped"] and len(shown["longrepr"]["text"]) == CLIP_CHARS
    full = client.get(shown["full_url"]).json()
    # As the store keeps it (it clips what it stores to its own bound, far above the page's).
    assert full["node_id"] == shown["node_id"] and len(full["longrepr"]) > 4 * CLIP_CHARS
    assert big.startswith(full["longrepr"][: 4 * CLIP_CHARS])
    assert client.get(f"/api/runs/{run_id}/failures/999999999").status_code == 404
    assert client.get(f"/api/runs/{run_id}/failures", params={"cursor": "junk"}).status_code == 400


def test_failed_shards_and_retries_are_marked_over_the_whole_run(
    client: TestClient, store: ResultStore, clock: FakeClock
) -> None:
    """Shard 0's failures fill the first page of failures; shard 1's one failure comes
    after them, and shard 2 retries a test of shard 0, which passes there."""
    run_id = store.create_run(project="proj", trigger="ci", settings={})
    shards = [ShardRecord(i, 10, 4.0) for i in range(4)]
    store.start_run(run_id, total_tests=40, estimated_makespan_s=8.0, shards=shards)
    start = clock.now
    for shard_id in range(4):
        worker = f"w{shard_id}:1"
        store.shard_started(run_id, shard_id, worker=worker, started_at=start + shard_id)
    refused = traceback(REFUSED)
    failing = [
        on(result(run_id, f"t.py::f{i}", Outcome.FAILED, longrepr=refused), 0, "w0:1", "")
        for i in range(FAILURES_PER_PAGE + 5)
    ]
    late = result(run_id, "t.py::late", Outcome.FAILED, longrepr=traceback("KeyError: 'x'"))
    retry = dataclasses.replace(result(run_id, "t.py::f0", attempt=2), shard_id=2, worker="w2:1")
    store.record_results([*failing, on(late, 1, "w1:1", ""), retry])
    store.record_results([on(result(run_id, "t.py::ok"), 3, "w3:1", "")])
    for shard_id in range(4):
        store.shard_finished(run_id, shard_id, finished_at=start + shard_id + 3.0)
    store.finish_run(run_id, verdict=Verdict.FAILED)

    view = client.get(f"/api/runs/{run_id}").json()
    assert all(f["shard_id"] == 0 for f in view["failures"])  # shard 1's is on page two
    groups = [(g["count"], g["example_node_id"]) for g in view["failure_groups"]]
    assert groups == [(FAILURES_PER_PAGE + 4, "t.py::f1"), (1, "t.py::late")]  # f0 passed
    svg = client.get(f"/runs/{run_id}/timeline.svg").text
    failed = set(re.findall(r'<rect class="bar failed" id="shard-(\d+)-1"', svg))
    assert failed == {"0", "1"}
    assert re.search(r'<rect class="bar ok" id="shard-2-1" data-retry-of="0"', svg)
    links = re.findall(r'<path class="retry-link" data-from="([^"]+)" data-to="([^"]+)"', svg)
    assert links == [("shard-0-1", "shard-2-1")]
    assert 'class="retry-link"' in client.get(f"/runs/{run_id}").text


def test_a_failure_group_opens_to_its_tests_with_their_tracebacks(
    client: TestClient, store: ResultStore, clock: FakeClock
) -> None:
    run_id = running_run(store, clock)
    (group,) = client.get(f"/api/runs/{run_id}").json()["failure_groups"]
    assert group["url"] == f"/runs/{run_id}/group?signature=" + quote_plus(group["signature"])
    html = client.get(f"/runs/{run_id}").text
    assert f'data-src="{escape(group["fragment_url"])}"' in html

    view = client.get(f"/api/runs/{run_id}/group", params={"signature": group["signature"]})
    assert view.status_code == 200
    assert view.json()["headline"] == group["headline"]
    assert {f["node_id"] for f in view.json()["failures"]} == {"t.py::db", EVIL}

    page = client.get(group["url"])
    assert page.status_code == 200
    assert '<h1 id="group-headline">2 tests failed with ConnectionRefusedError' in page.text
    assert page.text.count('<details class="failure"') == 2
    assert "<script>alert(1)</script>" not in page.text
    assert "test_x[&lt;script&gt;alert(1)&lt;/script&gt;]" in page.text

    fragment = client.get(group["fragment_url"])
    assert fragment.status_code == 200
    assert "<html" not in fragment.text and fragment.text.count('<details class="failure"') == 2
    assert "&lt;b&gt;captured&lt;/b&gt;" in fragment.text


def test_a_large_group_comes_a_page_at_a_time(
    client: TestClient, store: ResultStore, clock: FakeClock
) -> None:
    run_id = store.create_run(project="proj", trigger="ci", settings={})
    store.start_run(run_id, total_tests=45, estimated_makespan_s=1.0, shards=[])
    failing = traceback(REFUSED)
    store.record_results(
        [result(run_id, f"t.py::f{i:02}", Outcome.FAILED, longrepr=failing) for i in range(45)]
    )
    (group,) = client.get(f"/api/runs/{run_id}").json()["failure_groups"]
    seen: list[str] = []
    url: str | None = group["url"]
    while url:
        page = client.get(url).text
        seen += re.findall(r'<code class="node-id">([^<]*)</code>', page)
        more = re.search(r'<a class="more" href="([^"]*)"', page)
        url = more.group(1).replace("&amp;", "&") if more else None
    assert seen == [f"t.py::f{i:02}" for i in range(45)]
    assert "of this group's 45 tests" in client.get(group["url"]).text


def test_unknown_groups_runs_and_bad_input_are_one_line_answers(
    client: TestClient, store: ResultStore, clock: FakeClock
) -> None:
    run_id = running_run(store, clock)
    answer = client.get(f"/api/runs/{run_id}/group", params={"signature": "KeyError: x"})
    assert answer.status_code == 404
    assert answer.json()["reason"] == f"no test of run {run_id} failed with KeyError: x"
    page = client.get(f"/runs/{run_id}/group", params={"signature": "<b>x</b>"})
    assert page.status_code == 404 and "&lt;b&gt;x&lt;/b&gt;" in page.text
    assert client.get("/runs/nope/group", params={"signature": "x"}).status_code == 404
    bad = client.get(f"/api/runs/{run_id}/group", params={"signature": "x", "cursor": "zz"})
    assert bad.status_code in (400, 404)
    missing = client.get(f"/runs/{run_id}/group")
    assert (missing.status_code, missing.text) == (400, "signature: Field required\n")
    too_long = client.get(f"/runs/{run_id}/group/failures", params={"signature": "x" * 201})
    assert too_long.status_code == 400 and too_long.text.count("\n") == 1
