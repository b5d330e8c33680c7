"""The Changes and Change pages and their JSON twins over a real store: order,
filters, pagination through the next link, a change's runs and verdict, sha
prefixes, hostile names shown as text, and one-line 400/404 answers."""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from markupsafe import escape
from store_fakes import FakeClock, finished_run, result

from farm.core.domain import ChangeRef, Outcome, RunFindings, TestResult, Verdict
from farm.server.pages import page_environment
from farm.server.pages_changes import change_routes_pages
from farm.store import ResultStore

pytestmark = pytest.mark.integration

HOSTILE = "<script>alert(1)</script>"
Results = Callable[[str], list[TestResult]]


@pytest.fixture
def client(store: ResultStore) -> Iterator[TestClient]:
    app = FastAPI()
    app.include_router(change_routes_pages(store.dashboard, environment=page_environment()))
    with TestClient(app) as test_client:
        yield test_client


def one_passing(run_id: str) -> list[TestResult]:
    return [result(run_id, "t.py::a")]


def run_of(
    store: ResultStore,
    clock: FakeClock,
    change: ChangeRef,
    results: Results = one_passing,
    *,
    verdict: Verdict = Verdict.PASSED,
    findings: RunFindings | None = None,
    message: str = "",
) -> str:
    """A finished run of ``change`` made now; the clock then moves on an hour."""
    return finished_run(
        store,
        clock,
        results,
        change=change,
        verdict=verdict,
        message=message,
        findings=findings or RunFindings(),
    )


def change(
    sha: str, repository: str = "repo", branch: str = "main", author: str = "ann"
) -> ChangeRef:
    return ChangeRef(repository, sha, branch, author=author)


def one_line(response_text: str) -> bool:
    return bool(response_text.strip()) and "\n" not in response_text.strip()


def shas_of(page: str) -> list[str]:
    return re.findall(r'<tr class="change">.*?<code>([0-9a-f]+)</code>', page, re.S)


SPECS = [
    ("aaaa01", "repo", "main", "ann", Verdict.PASSED),
    ("aaaa02", "repo", "dev", "bob", Verdict.FAILED),
    ("aaaa03", "other", "main", "ann", Verdict.PASSED),
    ("aaaa04", "repo", "main", "bob", Verdict.FLAKY),
    ("aaaa05", "repo", "main", "ann", Verdict.PASSED),
]


@pytest.fixture
def five(store: ResultStore, clock: FakeClock) -> None:
    for sha, repository, branch, author, verdict in SPECS:
        failed = ("t.py::a",) if verdict is Verdict.FAILED else ()
        flaky = ("t.py::a",) if verdict is Verdict.FLAKY else ()
        run_of(
            store,
            clock,
            change(sha, repository, branch, author),
            verdict=verdict,
            findings=RunFindings(failed=failed, flaky=flaky),
        )


@pytest.mark.usefixtures("five")
def test_changes_newest_first_with_badges_and_filters(client: TestClient) -> None:
    data = client.get("/api/changes").json()
    assert [c["commit_sha"] for c in data["changes"]] == [
        "aaaa05",
        "aaaa04",
        "aaaa03",
        "aaaa02",
        "aaaa01",
    ]
    assert [c["verdict"] for c in data["changes"]][:2] == ["passed", "flaky"]
    assert data["next_cursor"] is None and data["next_url"] is None
    page = client.get("/changes")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert shas_of(page.text) == ["aaaa05", "aaaa04", "aaaa03", "aaaa02", "aaaa01"]
    assert page.text.count('class="badge passed"') == 3
    assert page.text.count('class="badge flaky"') == 1
    assert page.text.count('class="badge failed"') == 1
    assert 'href="/changes/aaaa03?repository=other"' in page.text

    def listed(query: str) -> list[str]:
        return shas_of(client.get(f"/changes?{query}").text)

    assert listed("repository=other") == ["aaaa03"]
    assert listed("repository=repo&branch=main") == ["aaaa05", "aaaa04", "aaaa01"]
    assert listed("author=bob") == ["aaaa04", "aaaa02"]
    assert listed("verdict=passed") == ["aaaa05", "aaaa03", "aaaa01"]
    assert listed("verdict=failed&branch=dev") == ["aaaa02"]
    assert listed("repository=&branch=&author=&verdict=") == [s[0] for s in reversed(SPECS)]
    assert "No change matches" in client.get("/changes?branch=nowhere").text
    kept = client.get("/changes?author=bob&verdict=flaky").text
    assert 'name="author" value="bob"' in kept and '<option value="flaky" selected>' in kept
    assert client.get("/api/changes?author=bob").json()["filters"]["author"] == "bob"


@pytest.mark.usefixtures("five")
def test_next_page_links_carry_filters_and_cursor(client: TestClient) -> None:
    seen: list[str] = []
    url: str | None = "/changes?repository=repo&limit=1"
    for _ in range(10):
        assert url is not None
        page = client.get(url).text
        seen.extend(shas_of(page))
        found = re.search(r'<a class="next" rel="next" href="([^"]+)"', page)
        url = html.unescape(found.group(1)) if found else None
        if url is None:
            break
        assert "repository=repo" in url and "cursor=" in url and "limit=1" in url
    assert seen == ["aaaa05", "aaaa04", "aaaa02", "aaaa01"]  # no duplicate, no gap
    api: list[str] = []
    next_url: str | None = "/api/changes?verdict=passed&limit=2"
    while next_url is not None:
        data = client.get(next_url).json()
        api.extend(c["commit_sha"] for c in data["changes"])
        next_url = data["next_url"]
    assert api == ["aaaa05", "aaaa03", "aaaa01"]


def test_a_change_shows_runs_verdict_and_tests(
    store: ResultStore, clock: FakeClock, client: TestClient
) -> None:
    ref = change("deadbeef01")

    def mixed(run_id: str) -> list[TestResult]:
        return [
            result(run_id, "t.py::a", Outcome.FAILED),
            result(run_id, "t.py::a", Outcome.FAILED, attempt=2),
            result(run_id, "t.py::b", Outcome.FAILED),
            result(run_id, "t.py::b", attempt=2),
            result(run_id, "t.py::q", Outcome.FAILED),
            result(run_id, "t.py::c"),
        ]

    first = run_of(
        store,
        clock,
        ref,
        mixed,
        verdict=Verdict.FAILED,
        findings=RunFindings(
            failed=("t.py::a",), flaky=("t.py::b",), quarantined_failures=("t.py::q",)
        ),
        message="1 failed",
    )
    second = run_of(store, clock, ref, lambda _: [], verdict=Verdict.ERROR, message="worker lost")
    data = client.get("/api/changes/deadbeef01").json()
    assert data["verdict"] == "failed" and data["reason"].startswith("failed")
    assert [t["node_id"] for t in data["failed"]] == ["t.py::a"]
    assert [t["node_id"] for t in data["flaky"]] == ["t.py::b"]
    assert [t["node_id"] for t in data["quarantined_failures"]] == ["t.py::q"]
    assert [r["run_id"] for r in data["runs"]] == [second, first]
    assert data["runs"][1]["outcomes"] == {"passed": 2, "failed": 4}
    assert (data["runs"][1]["trigger"], data["runs"][1]["state"]) == ("ci", "finished")
    assert data["runs"][0]["verdict"] == "error" and data["runs"][0]["outcomes"] == {}
    assert client.get("/api/changes/DEAD").json()["change"]["commit_sha"] == "deadbeef01"

    page = client.get("/changes/dead").text
    assert '<span class="badge failed">failed</span>' in page
    assert str(escape(data["reason"])) in page
    assert f'href="/runs/{first}"' in page and f'href="/runs/{second}"' in page
    assert '<span class="badge error">error</span>' in page and "worker lost" in page
    for kind, node in (("failed", "a"), ("flaky", "b"), ("quarantined", "q")):
        section = page.split(f'<section class="tests {kind}">')[1].split("</section>")[0]
        assert f'href="/tests?node_id=t.py%3A%3A{node}&amp;project=proj"' in section
    assert "passed 2" in page and "failed 4" in page


def test_a_prefix_of_several_changes_lists_them(
    store: ResultStore, clock: FakeClock, client: TestClient
) -> None:
    run_of(store, clock, change("abcd1111", "repo"))
    run_of(store, clock, change("abcd1111", "other"))
    run_of(store, clock, change("abcd2222", "repo"))
    listed = client.get("/changes/abcd")
    assert listed.status_code == 300
    assert listed.text.count('class="match"') == 3
    assert 'href="/changes/abcd1111?repository=other"' in listed.text
    data = client.get("/api/changes/abcd1111").json()
    assert data["more"] is False
    assert [(m["repository"], m["commit_sha"]) for m in data["matches"]] == [
        ("other", "abcd1111"),
        ("repo", "abcd1111"),
    ]
    chosen = client.get("/api/changes/abcd1111?repository=other")
    assert chosen.status_code == 200 and chosen.json()["change"]["repository"] == "other"
    assert client.get("/changes/abcd2").status_code == 200


def test_hostile_names_are_text(store: ResultStore, clock: FakeClock, client: TestClient) -> None:
    ref = ChangeRef(HOSTILE, "feed0001", HOSTILE, author=HOSTILE)
    run_of(
        store,
        clock,
        ref,
        lambda r: [result(r, HOSTILE, Outcome.FAILED)],
        verdict=Verdict.FAILED,
        findings=RunFindings(failed=(HOSTILE,)),
        message=HOSTILE,
    )
    escaped = str(escape(HOSTILE))
    for url in ("/changes", "/changes/feed", f"/changes?author={HOSTILE}&branch={HOSTILE}"):
        page = client.get(url).text
        assert HOSTILE not in page and escaped in page, url
    assert shas_of(client.get("/changes", params={"author": HOSTILE}).text) == ["feed0001"]
    data = client.get("/api/changes/feed0001").json()
    assert data["failed"][0]["node_id"] == HOSTILE and data["change"]["author"] == HOSTILE


@pytest.mark.usefixtures("five")
def test_unknown_and_bad_input_answer_one_line(client: TestClient) -> None:
    for url, status in [
        ("/changes/ffff99", 404),
        ("/changes/aaaa01?repository=other", 404),
        ("/changes/xyz1", 400),
        ("/changes/aaa", 400),
        ("/changes?cursor=not-a-cursor", 400),
        ("/changes?verdict=bogus", 400),
        ("/changes?limit=0", 400),
        ("/changes?limit=lots", 400),
        ("/changes?limit=501", 400),
        ("/changes?limit=%C2%B2", 400),  # a digit int() refuses
        ("/changes?author=a%00b", 400),  # PostgreSQL holds no NUL: it used to fail there
        ("/changes?branch=" + "b" * 513, 400),  # longer than any stored branch
        ("/changes/aaaa01?repository=%00", 400),
    ]:
        answered = client.get(url)
        assert answered.status_code == status, url
        assert answered.headers["content-type"].startswith("text/plain") and one_line(answered.text)
    assert "no change has a sha starting with 'ffff99'" in client.get("/changes/ffff99").text
    refused = client.get("/api/changes?cursor=W10")
    assert refused.status_code == 400 and "not a cursor" in refused.json()["reason"]
    assert client.get("/api/changes/ffff99").status_code == 404
    assert client.get("/api/changes?verdict=no_tests").status_code == 400
    bad_verdict = client.get("/api/changes?verdict=bogus")
    assert bad_verdict.status_code == 400 and bad_verdict.json()["status"] == "refused"
    assert bad_verdict.json()["reason"].startswith("verdict 'bogus': ")
    assert "\n" not in bad_verdict.json()["reason"]
    assert client.get("/api/changes?limit=&repository=%20").json()["filters"]["repository"] == ""


def test_get_and_post_share_the_api_path(store: ResultStore) -> None:
    """The list's GET sits beside the trigger's POST on /api/changes."""
    app = FastAPI()
    app.include_router(change_routes_pages(store.dashboard, environment=page_environment()))

    @app.post("/api/changes", status_code=202)
    def trigger() -> dict[str, str]:
        return {"status": "queued"}

    with TestClient(app) as test_client:
        assert test_client.get("/api/changes").json()["changes"] == []
        assert test_client.post("/api/changes").status_code == 202
