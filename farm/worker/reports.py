"""One test's pytest reports, folded into the one result farm keeps of it.

pytest reports a test in phases: setup, call, teardown. A test with subtests
(unittest's ``self.subTest``, pytest's ``subtests`` fixture) adds a call report per
subtest before the test's own call report, and pytest 9 leaves that own report
*passed* when only subtests failed: the test still failed, and the session exits 1.
So every call report counts, not only the last.

pytest's summary line counts reports, not tests: a test that fails and then errors
in teardown is ``1 failed, 1 error``, a test with two failing subtests adds two to
``failed``. Each result therefore carries its *tally*: the summary category of
every report of the test, as pytest's own ``pytest_report_teststatus`` hook names
it (plugins included), plus the warnings it raised. The submitter adds the tallies
up and prints the line pytest would have printed.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import pytest

WARNINGS_CATEGORY = "warnings"  # pytest's own key for them in its summary


@dataclass
class TestReports:
    """The reports of one test so far, in the order pytest made them."""

    __test__ = False  # not a pytest test class

    started_at: float
    setup: pytest.TestReport | None = None
    calls: list[pytest.TestReport] = field(default_factory=list)  # subtests, then its own
    teardown: pytest.TestReport | None = None
    tally: Counter[str] = field(default_factory=Counter)
    # Every report with its summary key and verbose word, for pytest's sections.
    statuses: list[tuple[pytest.TestReport, str, str]] = field(default_factory=list)

    def add(self, report: pytest.TestReport, category: str, word: str = "") -> None:
        """Keep ``report``; ``category`` is its summary key ("" counts toward none),
        ``word`` its verbose word."""
        self.statuses.append((report, category, word))
        if report.when == "setup":
            self.setup = report
        elif report.when == "call":
            self.calls.append(report)
        else:
            self.teardown = report
        if category and getattr(report, "count_towards_summary", True):
            self.tally[category] += 1

    @property
    def all(self) -> list[pytest.TestReport]:
        return [r for r in (self.setup, *self.calls, self.teardown) if r is not None]

    def outcome(self) -> tuple[str, str]:
        """farm's outcome of the test and the text that explains it."""
        setup, teardown = self.setup, self.teardown
        if setup is not None and setup.failed:
            return "error", str(setup.longrepr)
        if setup is not None and setup.skipped:
            return skip_outcome(setup)
        own = self.calls[-1] if self.calls else None
        failed_subtests = [r for r in self.calls[:-1] if r.failed]
        if own is not None and own.failed:
            return "failed", _with_subtests(str(own.longrepr), failed_subtests)
        if failed_subtests:
            return "failed", _with_subtests("", failed_subtests)
        if own is not None:
            if own.skipped:
                return skip_outcome(own)
            if hasattr(own, "wasxfail"):
                return "xpassed", str(own.wasxfail)
        if teardown is not None and teardown.failed:
            return "error", str(teardown.longrepr)
        return "passed", ""

    def sections(self) -> str:
        """What the test printed or logged, phase by phase (subtests once each)."""
        seen: set[tuple[str, str]] = set()
        parts = []
        for report in self.all:
            for name, content in report.sections:
                if (name, content) not in seen:
                    seen.add((name, content))
                    parts.append(f"--- {name} ---\n{content}\n")
        return "".join(parts)


def _with_subtests(own: str, failed: list[pytest.TestReport]) -> str:
    """The test's own traceback, then each failed subtest's, each headed by its name."""
    texts = [own] if own else []
    for report in failed:
        describe = getattr(report, "_sub_test_description", None)
        name = describe() if callable(describe) else ""
        texts.append(f"SUBFAILED{name}\n{report.longrepr}")
    return "\n\n".join(texts)


def skip_outcome(report: pytest.TestReport | pytest.CollectReport) -> tuple[str, str]:
    """``skipped`` or ``xfailed``, with the reason pytest gave."""
    if hasattr(report, "wasxfail"):
        return "xfailed", str(report.wasxfail)
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return "skipped", str(longrepr[2])
    return "skipped", str(longrepr)


def category_of(config: pytest.Config, report: pytest.TestReport) -> str:
    """The summary key pytest's terminal reporter files ``report`` under."""
    status = config.hook.pytest_report_teststatus(report=report, config=config)
    return str(status[0]) if status else ""
