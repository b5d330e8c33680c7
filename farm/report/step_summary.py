"""A run as a GitHub Actions job summary: markdown appended to ``$GITHUB_STEP_SUMMARY``.

In order, each part only when it has something to say: the verdict and its reason
(the change's, over all its runs, when known), the commit (a link when the CI gave
the repository's web page), branch, pull request and links to the build and to the
run's dashboard page; the counts and the makespan against the plan's estimate; the
failures, each with its place and the first lines of its traceback; tests that
failed in earlier runs of the change; flaky tests with their attempts; new tests whose
repeats disagreed; quarantined tests that failed; the slowest tests beside their
estimates.

Node ids, messages and tracebacks come from the tests: plain text has markdown's
punctuation backslash-escaped and ``&``, ``<``, ``>`` written as entities, so it
cannot make links, HTML or tables of its own; a traceback goes in a fence longer
than any run of backticks it holds, so it cannot close the fence; control
characters are made visible as in the terminal. Pure: text in, text out.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from farm.core.change_verdict import ChangeVerdict
from farm.core.domain import ChangeRef, RunSummary, TestResult, Verdict
from farm.report.failure_location import failure_location
from farm.report.findings import earlier_by_test
from farm.report.summary import summary_counts
from farm.report.text import format_duration, plural, terminal_safe

FAILURES_SHOWN = 20  # failures shown with their traceback; the others by name
NAMES_SHOWN = 50  # node ids a list names before it counts the rest
TRACEBACK_LINES = 25  # the first lines of a failure's traceback
TRACEBACK_LINE_CHARS = 300
SLOWEST = 10

_MARKDOWN_PUNCTUATION = re.compile(r"([\\`*_{}\[\]()#+\-.!|~])")
_BACKTICKS = re.compile(r"`+")
_MARK = {
    Verdict.PASSED: "✅",
    Verdict.FLAKY: "⚠️",
    Verdict.NO_TESTS: "⚠️",
    Verdict.FAILED: "❌",
    Verdict.ERROR: "❌",
    Verdict.INTERRUPTED: "❌",
}


@dataclass(frozen=True)
class Links:
    """Pages the summary links to ("" for none): the commit's page, the build's, and
    the dashboard's address, under which a run's page is ``/runs/RUN_ID``."""

    commit_url: str = ""
    build_url: str = ""
    dashboard_url: str = ""

    def run_url(self, run_id: str) -> str:
        if not self.dashboard_url or not run_id:
            return ""
        return f"{self.dashboard_url.rstrip('/')}/runs/{run_id}"


def step_summary(
    summary: RunSummary,
    *,
    verdict: ChangeVerdict | None,
    change: ChangeRef | None,
    links: Links = Links(),
    estimates_s: Mapping[str, float] | None = None,
    path_prefix: str = "",
) -> str:
    """The markdown of one run of ``change``; ``verdict`` is the change's over all its
    runs (None: the run's own verdict and message stand). ``path_prefix`` is the
    rootdir's folder in the repository, for the failures' places."""
    if verdict is not None:
        shown, reason = verdict.verdict, verdict.reason
    else:
        shown, reason = summary.verdict, summary.message or summary.verdict.value
    parts = [_heading(shown, reason), _about(change, links, summary.run_id)]
    parts.append(_counts(summary))
    parts += _failures(summary, path_prefix)
    if verdict is not None:
        parts += _earlier_failures(summary, verdict)
    parts += _flaky(summary)
    if summary.new_flaky:
        names = _names(summary.new_flaky)
        parts.append(f"### New tests that are flaky: their repeats disagreed\n\n{names}")
    if summary.quarantined_failures:
        names = _names(summary.quarantined_failures)
        parts.append("### Quarantined tests that failed (not held against the change)\n\n" + names)
    parts += _slowest(summary, estimates_s or {})
    return "\n\n".join(part for part in parts if part) + "\n"


def error_summary(
    message: str,
    *,
    change: ChangeRef | None,
    links: Links = Links(),
    verdict: Verdict = Verdict.ERROR,
) -> str:
    """The markdown of a run that ended before it had a summary (no tests collected, the
    farm could not be reached): why, and the change."""
    parts = (_heading(verdict, message), _about(change, links, ""))
    return "\n\n".join(part for part in parts if part) + "\n"


def markdown_text(text: str) -> str:
    """``text`` as one line of plain markdown text: no markup, no HTML, no line breaks."""
    one_line = " ".join(terminal_safe(text).split())
    escaped = _MARKDOWN_PUNCTUATION.sub(r"\\\1", one_line)
    return escaped.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def fenced(text: str, info: str = "text") -> str:
    """``text`` in a fenced code block that nothing in it can close."""
    longest = max((len(run) for run in _BACKTICKS.findall(text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{info}\n{terminal_safe(text)}\n{fence}"


def _link(text: str, url: str) -> str:
    """``text`` (already markdown) linked to ``url``, or as it is without a URL."""
    if not url:
        return text
    # The URL goes in <...>: spaces and parentheses cannot end it early there.
    target = url.replace("<", "%3C").replace(">", "%3E").replace("\n", "")
    return f"[{text}](<{target}>)"


def _heading(verdict: Verdict, reason: str) -> str:
    return f"## farm: {_MARK[verdict]} {verdict.value}\n\n{markdown_text(reason)}"


def _about(change: ChangeRef | None, links: Links, run_id: str) -> str:
    facts: list[str] = []
    if change is not None:
        commit = _link(f"`{change.commit_sha[:12]}`", links.commit_url)
        facts.append(f"commit {commit} of {markdown_text(change.repository)}")
        if change.branch:
            facts.append(f"branch {markdown_text(change.branch)}")
        if change.pull_request:
            facts.append(f"pull request {markdown_text(change.pull_request)}")
        if change.author:
            facts.append(f"author {markdown_text(change.author)}")
    if links.build_url:
        facts.append(_link("build", links.build_url))
    run_url = links.run_url(run_id)
    if run_url:
        facts.append(_link(f"run {markdown_text(run_id[:8])}", run_url))
    return ", ".join(facts)


def _counts(summary: RunSummary) -> str:
    counts = markdown_text(summary_counts(summary))
    if not summary.run_id:
        return counts  # nothing ran: there is no plan to compare with
    actual, planned = summary.makespan_s, summary.estimated_makespan_s
    ratio = f", {actual / planned:.0%} of it" if planned > 0 else ""
    return (
        f"{counts} in {format_duration(actual)} on {plural(summary.workers, 'worker')} "
        f"(the plan's estimate {format_duration(planned)}{ratio})"
    )


def _failures(summary: RunSummary, path_prefix: str) -> list[str]:
    quarantined = set(summary.quarantined_failures)
    failing = [r for r in summary.results if r.outcome.is_failure and r.node_id not in quarantined]
    parts: list[str] = []
    if failing:
        parts.append(f"### Failures ({len(failing)})")
        parts += [_failure(result, path_prefix) for result in failing[:FAILURES_SHOWN]]
        rest = [result.node_id for result in failing[FAILURES_SHOWN:]]
        if rest:
            parts.append(f"{plural(len(rest), 'more failure')}:\n\n{_names(rest)}")
    if summary.missing:
        parts.append(f"### Lost: no result came back ({len(summary.missing)})")
        parts.append(_names(summary.missing))
    return parts


def _failure(result: TestResult, path_prefix: str) -> str:
    path, line = failure_location(result.node_id, result.longrepr)
    if path_prefix:
        path = f"{path_prefix.rstrip('/')}/{path}"
    place = f"{path}:{line}" if line is not None else path
    title = (
        f"**{markdown_text(result.node_id)}** ({result.outcome.value}) at {markdown_text(place)}"
    )
    lines = result.longrepr.splitlines()
    shown = [line[:TRACEBACK_LINE_CHARS] for line in lines[:TRACEBACK_LINES]]
    if len(lines) > TRACEBACK_LINES:
        shown.append(f"... {len(lines) - TRACEBACK_LINES} more lines in the log")
    return f"{title}\n\n{fenced(chr(10).join(shown))}" if shown else title


def _earlier_failures(summary: RunSummary, verdict: ChangeVerdict) -> list[str]:
    """Tests failing in the change that this run did not fail: it did not run them."""
    failed_here = {r.node_id for r in summary.results if r.outcome.is_failure}
    earlier = [node_id for node_id in verdict.failed if node_id not in failed_here]
    if not earlier:
        return []
    return [f"### Failed in earlier runs of this change ({len(earlier)})", _names(earlier)]


def _flaky(summary: RunSummary) -> list[str]:
    if not summary.flaky:
        return []
    earlier = earlier_by_test(summary)
    finals = {result.node_id: result for result in summary.results}
    rows = ["| test | attempts |", "| --- | --- |"]
    for node_id in summary.flaky[:NAMES_SHOWN]:
        final = finals.get(node_id)
        attempts = [*earlier.get(node_id, []), *([final] if final else [])]
        said = "; ".join(_attempt(attempt) for attempt in attempts)
        rows.append(f"| {markdown_text(node_id)} | {said} |")
    more = len(summary.flaky) - NAMES_SHOWN
    tail = f"\n\nand {more} more" if more > 0 else ""
    return [f"### Flaky tests ({len(summary.flaky)}): failed, then passed", "\n".join(rows) + tail]


def _attempt(result: TestResult) -> str:
    place = result.machine or result.worker
    where = f" on {markdown_text(place)}" if place else ""
    return f"{result.attempt}: {result.outcome.value}{where} ({result.duration_s:.2f}s)"


def _slowest(summary: RunSummary, estimates_s: Mapping[str, float]) -> list[str]:
    timed = sorted(
        (r for r in summary.results if r.duration_s > 0), key=lambda r: r.duration_s, reverse=True
    )[:SLOWEST]
    if not timed:
        return []
    rows = ["| test | took | estimate |", "| --- | ---: | ---: |"]
    for result in timed:
        estimate = estimates_s.get(result.node_id)
        shown = f"{estimate:.2f}s" if estimate is not None else "-"
        rows.append(f"| {markdown_text(result.node_id)} | {result.duration_s:.2f}s | {shown} |")
    return [f"### Slowest {plural(len(timed), 'test')}", "\n".join(rows)]


def _names(node_ids: Sequence[str]) -> str:
    lines = [f"- {markdown_text(node_id)}" for node_id in node_ids[:NAMES_SHOWN]]
    if len(node_ids) > NAMES_SHOWN:
        lines.append(f"- and {len(node_ids) - NAMES_SHOWN} more")
    return "\n".join(lines)


__all__ = ["Links", "error_summary", "fenced", "markdown_text", "step_summary"]
