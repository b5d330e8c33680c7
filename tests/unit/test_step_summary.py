"""The GitHub Actions job summary of a run (farm.report.step_summary)."""

from __future__ import annotations

import dataclasses
import re

from report_fixtures import FLAKY, HOSTILE, NEW, QUARANTINED, attempt, pytest_like_run, retried_run

from farm.core.change_verdict import ChangeVerdict
from farm.core.domain import ChangeRef, Outcome, Verdict
from farm.report.step_summary import Links, error_summary, fenced, markdown_text, step_summary

SHA = "0123456789abcdef0123456789abcdef01234567"
CHANGE = ChangeRef("github.com/acme/shop", SHA, branch="fix-cart", pull_request="42", author="ada")
LINKS = Links(
    commit_url=f"https://github.com/acme/shop/commit/{SHA}",
    build_url="https://github.com/acme/shop/actions/runs/9",
    dashboard_url="https://farm.example.com/",
)
FAILED = ChangeVerdict(
    Verdict.FAILED,
    "failed: 2 tests failed on every attempt: tests/test_a.py::test_bad, tests/test_old.py::test_x",
    failed=("tests/test_a.py::test_bad", "tests/test_old.py::test_x"),
)


def test_verdict_change_and_links() -> None:
    text = step_summary(pytest_like_run(), verdict=FAILED, change=CHANGE, links=LINKS)
    lines = text.splitlines()
    assert lines[0] == "## farm: ❌ failed"
    assert lines[2] == markdown_text(FAILED.reason)
    about = lines[4]
    assert about.startswith(
        f"commit [`0123456789ab`](<{LINKS.commit_url}>) of github\\.com/acme/shop"
    )
    assert "branch fix\\-cart, pull request 42, author ada" in about
    assert f"[build](<{LINKS.build_url}>)" in about
    assert "[run r1](<https://farm.example.com/runs/r1>)" in about
    # The makespan against the plan's estimate.
    assert (
        "in 64.50s (0:01:04) on 4 workers (the plan's estimate 60.00s (0:01:00), 108% of it)"
        in text
    )


def test_failures_with_their_place_and_first_traceback_lines() -> None:
    text = step_summary(pytest_like_run(), verdict=FAILED, change=CHANGE, path_prefix="py")
    assert "### Failures (3)" in text
    assert "**tests/test\\_a\\.py::test\\_bad** (failed) at py/tests/test\\_a\\.py:3" in text
    assert "```text\ndef test_bad():\n>   assert 1 == 2\nE   assert 1 == 2\n" in text
    assert "**tests/test\\_c\\.py::test\\_slow** (timeout) at py/tests/test\\_c\\.py\n" in text
    assert "### Lost: no result came back (1)\n\n- tests/test\\_c\\.py::test\\_lost" in text
    # A test the change failed in an earlier run, which this run did not run.
    assert (
        "### Failed in earlier runs of this change (1)\n\n- tests/test\\_old\\.py::test\\_x" in text
    )


def test_long_tracebacks_are_cut_to_their_first_lines() -> None:
    longrepr = "\n".join(f"line {i}" for i in range(100))
    run = dataclasses.replace(
        pytest_like_run(), results=(attempt("t.py::test", Outcome.FAILED, longrepr=longrepr),)
    )
    text = step_summary(run, verdict=None, change=None)
    assert "line 24\n... 75 more lines in the log\n```" in text and "line 25" not in text


def test_flaky_quarantined_and_slowest() -> None:
    run = retried_run()
    estimates = {"tests/test_f.py::test_flaky": 0.4}
    text = step_summary(run, verdict=None, change=run.change, estimates_s=estimates)
    assert text.startswith("## farm: ❌ failed\n\nfailed\n")  # the run's own: no message
    assert "### Flaky tests (2): failed, then passed" in text
    flaky = markdown_text(FLAKY)
    assert f"| {flaky} | 1: failed on host\\-a (0.50s); 2: passed on host\\-b (0.75s) |" in text
    quarantined = "### Quarantined tests that failed (not held against the change)"
    assert f"{quarantined}\n\n- {markdown_text(QUARANTINED)}" in text
    assert "### Slowest 10 tests\n\n| test | took | estimate |" in text
    assert f"| {flaky} | 0.75s | 0.40s |" in text
    assert (
        f"### New tests that are flaky: their repeats disagreed\n\n- {markdown_text(NEW)}" in text
    )
    # A quarantined failure is no failure of the run.
    assert f"**{markdown_text(QUARANTINED)}**" not in text


def test_no_links_without_urls() -> None:
    text = step_summary(pytest_like_run(), verdict=FAILED, change=CHANGE)
    assert "commit `0123456789ab` of" in text and "](" not in text


def test_text_from_tests_cannot_make_markup() -> None:
    node_id = "t.py::test[<img src=x onerror=alert(1)>|[a](javascript:x)]"
    longrepr = f"```\n</pre><script>x</script>\n````` fence\n{HOSTILE}"
    run = dataclasses.replace(
        pytest_like_run(), results=(attempt(node_id, Outcome.FAILED, longrepr=longrepr),)
    )
    text = step_summary(run, verdict=None, change=None)
    assert (
        "<img" not in text
        and "&lt;img src=x onerror=alert\\(1\\)&gt;\\|\\[a\\]\\(javascript:x\\)" in text
    )
    # The traceback sits in a fence longer than its longest run of backticks.
    assert "``````text\n```\n</pre><script>x</script>\n````` fence\n" in text
    assert "\x00" not in text and "\x1b" not in text and "\\x1b[2J" in text


def test_fences_and_plain_text() -> None:
    assert fenced("a") == "```text\na\n```"
    assert fenced("``x````") == "`````text\n``x````\n`````"
    assert markdown_text("a\nb  *c* _d_ # e") == "a b \\*c\\* \\_d\\_ \\# e"
    assert markdown_text("a & <b>") == "a &amp; &lt;b&gt;"


def test_a_run_that_ended_before_its_summary() -> None:
    text = error_summary(
        "no_tests: no tests collected from tests", change=CHANGE, verdict=Verdict.NO_TESTS
    )
    assert text.startswith("## farm: ⚠️ no_tests\n\nno\\_tests: no tests collected from tests\n")
    assert "commit `0123456789ab` of github\\.com/acme/shop" in text
    assert re.search(r"\n$", text)
