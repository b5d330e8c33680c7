"""The dashboard in Chromium on a real ``farm serve``: a test named and printing HTML
shows as text on every page that names it, and nothing it holds runs as script;
quarantine from the test page works for a signed-in writer and is refused without a
session or without the session's CSRF token."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING
from urllib.parse import urlencode

import httpx
import pytest
from browser_support import API_TOKEN, browser_page, served  # noqa: F401
from store_fakes import FakeClock, finished_run, result

from farm.core.domain import ChangeRef, Outcome, RunFindings, TestResult, Verdict
from farm.store import ResultStore

if TYPE_CHECKING:
    from playwright.sync_api import Page

# Each payload would set window.__xss if the browser ran it.
EVIL = 't.py::test_x[<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>]'
EVIL_OUTPUT = "<script>window.__xss=3</script><b>bold?</b>"
SHA = "e" * 40


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(now=time.time() - 3600)  # recent: the week's leaderboards hold it


def evil_run(store: ResultStore, clock: FakeClock) -> str:
    """A finished run in which EVIL failed, printing EVIL_OUTPUT, then passed."""

    def results(run_id: str) -> list[TestResult]:
        failed = result(
            run_id, EVIL, Outcome.FAILED, longrepr=f"E       ValueError: {EVIL}\n",
            output=EVIL_OUTPUT,
        )  # fmt: skip
        return [result(run_id, "t.py::ok"), failed, result(run_id, EVIL, attempt=2)]

    change = ChangeRef("github.com/acme/app", SHA, branch="main", author="<i>eve</i>")
    findings = RunFindings(flaky=(EVIL,))
    return finished_run(
        store, clock, results, change=change, verdict=Verdict.FLAKY, findings=findings
    )


def no_script_ran(page: Page) -> None:
    assert page.evaluate("window.__xss") is None
    assert page.locator("img[src=x]").count() == 0
    assert page.locator("main b").count() == 0


def test_a_test_named_and_printing_html_is_text_everywhere(
    served: str,  # noqa: F811
    store: ResultStore,
    clock: FakeClock,
    browser_page: Page,  # noqa: F811
) -> None:
    run_id = evil_run(store, clock)
    page = browser_page
    test_page = f"{served}/tests?{urlencode({'project': 'proj', 'node_id': EVIL})}"

    page.goto(f"{served}/changes")
    assert "<i>eve</i>" in (page.text_content("main") or "")
    no_script_ran(page)

    page.goto(f"{served}/changes/{SHA}")
    assert EVIL in (page.text_content("section.tests.flaky") or "")
    no_script_ran(page)

    page.goto(f"{served}/runs/{run_id}")
    page.click("details.failure summary")
    assert page.text_content("details.failure code.node-id") == EVIL
    assert page.text_content("details.failure pre.output") == EVIL_OUTPUT
    no_script_ran(page)

    page.goto(test_page)
    assert page.text_content("h1.node-id") == EVIL
    no_script_ran(page)

    page.goto(f"{served}/flaky?project=proj")
    assert EVIL in (page.text_content("main") or "")
    no_script_ran(page)


def test_quarantine_from_the_test_page_needs_a_session_and_its_csrf_token(
    served: str,  # noqa: F811
    store: ResultStore,
    clock: FakeClock,
    browser_page: Page,  # noqa: F811
) -> None:
    evil_run(store, clock)
    page = browser_page
    test_page = f"{served}/tests?{urlencode({'project': 'proj', 'node_id': 't.py::ok'})}"
    form: dict[str, str | float | bool] = {
        "project": "proj",
        "node_id": "t.py::ok",
        "action": "add",
        "reason": "flaky",
    }

    page.goto(test_page)
    assert page.locator("#quarantine form").count() == 0  # no session: no form
    refused = page.request.post(f"{served}/tests/quarantine", form=form)
    assert refused.status == 401
    assert "t.py::ok" not in store.quarantine.current("proj")

    page.goto(f"{served}/signin")
    page.fill("input[name=name]", "alice")
    page.fill("input[name=token]", API_TOKEN)
    page.click("button[type=submit]")
    page.wait_for_selector("#signed-in")

    # The session's cookie alone does not do: a forged form lacks the CSRF token.
    forged = page.request.post(f"{served}/tests/quarantine", form=form)
    assert forged.status == 403
    assert "t.py::ok" not in store.quarantine.current("proj")

    page.goto(test_page)
    page.fill("#quarantine input[name=reason]", "fails on Mondays")
    page.click("#quarantine button[type=submit]")
    page.wait_for_selector("#quarantine p.in-quarantine")
    assert "by alice" in (page.text_content("#quarantine p.in-quarantine") or "")
    (entry,) = store.quarantine.entries("proj")
    assert (entry.node_id, entry.reason, entry.actor) == ("t.py::ok", "fails on Mondays", "alice")

    page.fill("#quarantine input[name=reason]", "fixed")
    page.click("#quarantine button[type=submit]")
    page.wait_for_selector("#quarantine p.not-in-quarantine")
    assert "t.py::ok" not in store.quarantine.current("proj")
    events = page.locator("#quarantine table.quarantine-events tbody tr")
    assert events.count() == 2
    # Nobody signed in, the API says the same: no token, no change.
    answer = httpx.post(f"{served}/api/tests/quarantine", json=form, timeout=5)
    assert answer.status_code == 401
