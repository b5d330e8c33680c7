"""What pytest's end-of-run sections would show of one test, made in the test process.

pytest prints its FAILURES, ERRORS, warnings summary, slowest durations and short
test summary from the reports it kept; the submitter has none of them. So the test
process renders each report as pytest's terminal reporter would, with the options
it was started with (the user's ``--tb``, ``--show-capture``, ``-r``), into a
:class:`farm.core.pytest_report.ResultDetail`, and sends only what those options
will show. The reporter's own code is followed line for line: ``_outrep_summary``
for a report's entry, ``_handle_teardown_sections`` for the teardown output after
it, ``_get_line_with_reprcrash_message`` for the short summary's message,
``_folded_skips`` for where a skip happened.

Paths into the suite's tree are sent relative to the rootdir (a worker running a
snapshot has the tree elsewhere than the submitter).
"""

from __future__ import annotations

import dataclasses
import io
import warnings
from pathlib import PurePath
from typing import Any

import pytest

from farm.core.pytest_report import Place, PytestReport, ResultDetail, Sections
from farm.worker.deadline import truncate

# The reports pytest's sections and short summary show, by their summary category.
_SHOWN = frozenset({"failed", "error", "skipped", "xfailed", "xpassed"})


class Shown:
    """Makes the detail of each test of one pytest session."""

    def __init__(self, config: pytest.Config, limit_bytes: int) -> None:
        option = config.option
        self.config = config
        self.limit_bytes = limit_bytes
        self.rootdir = str(config.rootpath)
        self.tbstyle = str(getattr(option, "tbstyle", "auto"))
        self.showcapture = str(getattr(option, "showcapture", "all"))
        self.xfail_tb = bool(getattr(option, "xfail_tb", False))
        self.durations = getattr(option, "durations", None) is not None
        self.reportchars = _reportchars(config)

    def detail(self, reports: list[tuple[pytest.TestReport, str, str]]) -> ResultDetail | None:
        """The detail of a test from its reports, each with its summary category and
        verbose word, in the order pytest made them; None when it has nothing to show."""
        teardown = self._teardown_sections([r for r, category, _ in reports if not category])
        shown = tuple(
            made
            for report, category, word in reports
            if (made := self._report(report, category, word, teardown)) is not None
        )
        durations = (
            tuple((r.when or "", float(r.duration)) for r, _, _ in reports)
            if self.durations
            else ()
        )
        if not shown and not durations:
            return None
        return ResultDetail(reports=shown, durations=durations)

    def collect_skip(self, report: pytest.CollectReport) -> ResultDetail:
        """The detail of a module that skipped itself while collected."""
        return ResultDetail(reports=(self._skipped(report, "collect", "SKIPPED"),))

    def with_warning(self, detail: ResultDetail | None, message: object) -> ResultDetail | None:
        """``detail`` with one more warning the test raised, when the summary shows it."""
        place = self.warning(message) if isinstance(message, warnings.WarningMessage) else None
        if place is None:
            return detail
        detail = detail or ResultDetail()
        return dataclasses.replace(detail, warnings=(*detail.warnings, place))

    def warning(self, message: warnings.WarningMessage) -> Place | None:
        """A warning a test raised, as pytest's warnings summary shows it; None when
        the summary is off (``--disable-warnings``, ``-p no:warnings``)."""
        if "w" not in self.reportchars:
            return None
        try:
            from _pytest.warnings import warning_record_to_str
        except ImportError:  # a pytest that moved it: counted, not shown
            return None
        text = self._cut(warning_record_to_str(message))
        prefix = f"{message.filename}:{message.lineno}: "
        if not text.startswith(prefix):
            return Place("", None, text)
        return Place(self._relative(message.filename), message.lineno, text[len(prefix) :])

    def _report(
        self, report: pytest.TestReport, category: str, word: str, teardown: Sections
    ) -> PytestReport | None:
        tb_shown = self.tbstyle != "no"
        if category == "skipped":
            return self._skipped(report, report.when or "", word)
        if category in ("failed", "error"):
            failed = category == "failed"
            return PytestReport(
                category, report.when or "", word, report.head_line or "",
                message=self._message(report),
                text=self._text(report) if tb_shown else "",
                sections=self._sections(report) if tb_shown else (),
                teardown=teardown if tb_shown and failed else (),
                crash=self._crash(report) if failed and self.tbstyle == "line" else None,
            )  # fmt: skip
        reason = str(getattr(report, "wasxfail", ""))
        if category == "xfailed":
            with_tb = tb_shown and self.xfail_tb
            return PytestReport(
                category, report.when or "", word, report.head_line or "",
                message=reason,
                text=self._text(report) if with_tb else "",
                sections=self._sections(report) if with_tb else (),
                teardown=teardown if with_tb else (),
            )  # fmt: skip
        if category in ("passed", "xpassed"):
            char = "P" if category == "passed" else "X"
            sections = self._sections(report) if tb_shown and char in self.reportchars else ()
            # pytest heads an entry only for a report with output of its own, and
            # prints the teardown's output after it either way.
            own = sections if report.sections else ()
            after = teardown if tb_shown and char in self.reportchars else ()
            if category == "passed" and not (own or after):
                return None  # the short summary's PASSED line needs nothing sent
            return PytestReport(
                category, report.when or "", word, report.head_line or "",
                message=reason if category == "xpassed" else None,
                sections=own, teardown=after,
            )  # fmt: skip
        return None  # a plugin's category: counted by its tally, shown by no section

    def _skipped(
        self, report: pytest.TestReport | pytest.CollectReport, when: str, word: str
    ) -> PytestReport:
        longrepr = report.longrepr
        if not (isinstance(longrepr, tuple) and len(longrepr) == 3):
            return PytestReport("skipped", when, word, message=str(longrepr))
        path, line, reason = longrepr
        keywords = getattr(report, "keywords", {})
        # pytest folds the skips of one skip mark in a file into one line without a
        # line number (a mark's line says nothing: it is where the test is).
        marked = when == "setup" and "skip" in keywords and "pytestmark" not in keywords
        lineno = None if marked or line is None else int(line)
        where = Place(self._relative(str(path)), lineno, str(reason))
        return PytestReport("skipped", when, word, message=str(reason), skip=where)

    def _message(self, report: pytest.TestReport) -> str | None:
        """What the short summary prints after the node id, as pytest finds it."""
        longrepr = report.longrepr
        if isinstance(longrepr, str):
            return self._cut(longrepr)
        crash = getattr(longrepr, "reprcrash", None)
        message = getattr(crash, "message", None)
        return None if message is None else self._cut(str(message))

    def _crash(self, report: pytest.TestReport) -> Place:
        """The line ``--tb=line`` prints of a failure: ``path:line: message``."""
        crash = getattr(report.longrepr, "reprcrash", None)
        if crash is None:
            return Place("", None, str(report.longrepr)[:50])
        message = str(crash.message)
        first = message.split("\n", 1)[0]
        return Place(self._relative(str(crash.path)), int(crash.lineno), self._cut(first))

    def _text(self, report: pytest.TestReport) -> str:
        """The report as pytest writes it in its section (``str()`` of it strips
        the leading indentation and blank line that pytest prints)."""
        try:
            from _pytest._io import TerminalWriter
        except ImportError:  # a pytest that moved it: the report as a string
            return self._cut(f"{report.longrepr}\n")
        out = io.StringIO()
        writer = TerminalWriter(file=out)
        writer.hasmarkup = False
        report.toterminal(writer)
        return self._cut(out.getvalue())

    def _sections(self, report: pytest.TestReport) -> Sections:
        """The captured output pytest prints after a report, as ``--show-capture`` says."""
        show = self.showcapture
        if show == "no":
            return ()
        return tuple(
            (title, self._cut(content))
            for title, content in report.sections
            if show == "all" or show in title
        )

    def _teardown_sections(self, passed: list[pytest.TestReport]) -> Sections:
        """The teardown output pytest prints after an entry of the test: of its
        teardown reports that passed (a failed one is an entry of its own)."""
        return tuple(
            section
            for report in passed
            if report.when == "teardown"
            for section in self._sections(report)
            if "teardown" in section[0]
        )

    def _relative(self, path: str) -> str:
        pure = PurePath(path)
        if pure.is_absolute():
            try:
                return pure.relative_to(self.rootdir).as_posix()
            except ValueError:
                return path
        return path

    def _cut(self, text: str) -> str:
        return truncate(text, self.limit_bytes)


def _reportchars(config: pytest.Config) -> str:
    """The ``-r`` characters pytest's terminal reporter acts on."""
    try:
        from _pytest.terminal import getreportopt
    except ImportError:  # a pytest that moved it: the option as given
        return str(config.getoption("reportchars", "fE"))
    return str(getreportopt(config))


def status_of(config: pytest.Config, report: Any) -> tuple[str, str]:
    """The summary key pytest's terminal reporter files ``report`` under, and its
    verbose word (``FAILED``, ``SUBFAILED(i=1)``)."""
    status = config.hook.pytest_report_teststatus(report=report, config=config)
    if not status:
        return "", ""
    word = status[2]
    if isinstance(word, tuple):  # (word, markup)
        word = word[0]
    return str(status[0]), str(word)


__all__ = ["Shown", "status_of"]
