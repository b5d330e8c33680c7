"""pytest's sections of reports: ERRORS, FAILURES, XFAILURES, PASSES and XPASSES,
and farm's LOST TESTS.

A report the test process rendered (see :mod:`farm.core.pytest_report`) is laid out
as pytest lays it out: a rule of ``_`` with its head line, the report as ``--tb``
rendered it, then its captured output, each part under a rule of ``-`` (``--tb=line``
prints the report and its crash line, without a rule). A result farm made itself
(a timeout, a crash, a test its worker could not run) or one without that detail
keeps farm's entry: the node id, the worker, shard and attempt, the traceback and the
output, cut to a readable length. Under ``--tb=no`` pytest prints none of these
sections, and nor does farm.
"""

from __future__ import annotations

from collections.abc import Callable

from farm.core.domain import Outcome, RunSummary, TestResult
from farm.core.pytest_report import PytestReport
from farm.report.text import (
    BOLD,
    GREEN,
    RED,
    Paint,
    Where,
    lines_of,
    plural,
    rule,
    terminal_safe,
)

# A long traceback's start locates the test and its end holds the error, so trimming
# keeps a quarter of the budget from the head and the rest from the tail.
_MAX_TRACEBACK_LINES = 200
_MAX_LINE_CHARS = 1000
_MAX_LOST_NAMED = 50

_FAILURE_OUTCOMES = frozenset({Outcome.FAILED, Outcome.TIMEOUT, Outcome.CRASHED})


def shown(result: TestResult, category: str) -> list[PytestReport]:
    """The reports of ``result`` filed under ``category`` that its detail carries."""
    if result.detail is None:
        return []
    return [r for r in result.detail.reports if r.category == category]


def farm_made(result: TestResult, category: str) -> bool:
    """Whether ``result`` is a failure (``failed``) or error (``error``) without
    pytest's report of it: farm made it, or it came without its detail."""
    outcomes = _FAILURE_OUTCOMES if category == "failed" else frozenset({Outcome.ERROR})
    return result.outcome in outcomes and not shown(result, category)


class ReportSections:
    """Lays out the report sections of one run at one width."""

    def __init__(
        self, summary: RunSummary, paint: Paint, width: int, max_output_lines: int
    ) -> None:
        self.summary = summary
        self.paint = paint
        self.width = width
        self.max_output_lines = max_output_lines
        self.where = Where(summary.rootdir, summary.invocation_dir)
        options = summary.options
        self.tbstyle = options.tbstyle
        self.chars = options.reportchars

    def lines(self) -> list[str]:
        """ERRORS, FAILURES, XFAILURES (the pytest sections before its warnings)."""
        if self.tbstyle == "no":
            return []
        lines = self._section("ERRORS", "error", self._error_entry)
        lines += self._section("FAILURES", "failed", self._failure_entry)
        if self.summary.options.xfail_tb:
            lines += self._section("XFAILURES", "xfailed", self._failure_entry)
        return lines

    def passes(self) -> list[str]:
        """PASSES (``-rP``) and XPASSES (``-rX``): the output of tests that passed."""
        if self.tbstyle == "no":
            return []
        lines: list[str] = []
        for title, category, char in (("PASSES", "passed", "P"), ("XPASSES", "xpassed", "X")):
            if char not in self.chars or not self._counted(category):
                continue
            lines.append(rule(title, "=", self.width))
            for result in self.summary.results:
                for report in shown(result, category):
                    if report.sections:
                        head = terminal_safe(report.head_line)
                        lines.append(self.paint(rule(head, "_", self.width), GREEN + BOLD))
                    lines += self._captured(report.sections) + self._captured(report.teardown)
        return lines

    def lost(self) -> list[str]:
        """farm's LOST TESTS: collected tests that never got a result."""
        missing = self.summary.missing
        if not missing:
            return []
        lines = [
            self.paint(rule("LOST TESTS", "=", self.width), RED + BOLD),
            f"no result for {plural(len(missing), 'collected test')}: "
            "their worker was lost or the run ended first",
        ]
        lines += [f"  {terminal_safe(n)}" for n in missing[:_MAX_LOST_NAMED]]
        if len(missing) > _MAX_LOST_NAMED:
            lines.append(f"  ... and {len(missing) - _MAX_LOST_NAMED} more")
        return lines

    def _counted(self, category: str) -> bool:
        """Whether any result has a report pytest files under ``category``."""
        for result in self.summary.results:
            if dict(result.tally).get(category) or shown(result, category):
                return True
            if not result.tally and result.outcome.value == category:
                return True
        return False

    def _section(
        self, title: str, category: str, entry: Callable[[PytestReport], list[str]]
    ) -> list[str]:
        body: list[str] = []
        for result in self.summary.results:
            body += [line for report in shown(result, category) for line in entry(report)]
            if category != "xfailed" and farm_made(result, category):
                body += self._farm_entry(result)
        if not body:
            return []
        return [self.paint(rule(title, "=", self.width), RED + BOLD), *body]

    def _error_entry(self, report: PytestReport) -> list[str]:
        head = terminal_safe(report.head_line)
        if report.when == "collect":
            title = f"ERROR collecting {head}"
        else:
            title = f"ERROR at {report.when} of {head}"
        return [
            self.paint(rule(title, "_", self.width), RED + BOLD),
            *lines_of(terminal_safe(report.text)),
            *self._captured(report.sections),
        ]

    def _failure_entry(self, report: PytestReport) -> list[str]:
        text = lines_of(terminal_safe(report.text))
        if self.tbstyle == "line" and report.category == "failed":
            crash = self.where.place(report.crash) if report.crash else ""
            return [*text, *self._captured(report.sections), terminal_safe(crash)]
        head = terminal_safe(report.head_line)
        return [
            self.paint(rule(head, "_", self.width), RED + BOLD),
            *text,
            *self._captured(report.sections),
            *self._captured(report.teardown),
        ]

    def _captured(self, sections: tuple[tuple[str, str], ...]) -> list[str]:
        lines: list[str] = []
        for title, content in sections:
            lines.append(rule(terminal_safe(title), "-", self.width))
            lines += terminal_safe(content).removesuffix("\n").split("\n")
        return lines

    def _farm_entry(self, result: TestResult) -> list[str]:
        """farm's own entry of a result without pytest's report of it."""
        node_id = terminal_safe(result.node_id)
        where = f" on worker {terminal_safe(result.worker)}" if result.worker else ""
        lines = [
            self.paint(rule(node_id, "_", self.width), RED + BOLD),
            f"{result.outcome.value}{where} (shard {result.shard_id}, attempt {result.attempt}) "
            f"after {result.duration_s:.2f}s",
        ]
        if result.longrepr:
            lines += trim(terminal_safe(result.longrepr), _MAX_TRACEBACK_LINES, "traceback")
        if result.output:
            lines.append(rule("captured output", "-", self.width))
            lines += trim(terminal_safe(result.output), self.max_output_lines, "output")
        return lines


def trim(text: str, max_lines: int, what: str) -> list[str]:
    """``text`` as lines, at most ``max_lines`` of them plus one note of what was cut."""
    lines = [
        line
        if len(line) <= _MAX_LINE_CHARS
        else f"{line[:_MAX_LINE_CHARS]}... [{len(line) - _MAX_LINE_CHARS} characters cut]"
        for line in text.rstrip("\n").split("\n")
    ]
    if len(lines) <= max_lines:
        return lines
    head = max_lines // 4
    tail = max_lines - head
    cut = len(lines) - max_lines
    note = f"... [{cut} lines of {what} cut] ..."
    return [*lines[:head], note, *lines[len(lines) - tail :]]


__all__ = ["ReportSections", "farm_made", "shown", "trim"]
