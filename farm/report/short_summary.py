"""pytest's short test summary info: one line per report the ``-r`` characters ask for.

The categories come in the order of the characters (``fE`` by default; ``-ra`` is
``sxXEf``, ``-rA`` ``PpsxXEf``), and within one category the tests in collection
order: farm has no single run order. Each line has pytest's shape:

- ``FAILED node - message`` and ``ERROR node - message``, the message the crash's
  (the first line, cut to the terminal's width, unless on CI or under ``-vv``);
- ``SKIPPED [N] path:line: reason``, skips folded by where they happened and why
  (``SKIPPED node - reason`` under ``--no-fold-skipped``);
- ``XFAIL node - reason`` (``XFAIL at setup of node`` when not in the call),
  ``XPASS node - reason``, ``PASSED node``.

Node ids and paths are relative to the folder pytest was started in. A result farm
made itself (a timeout, a crash) is ``TIMEOUT node - ...`` or ``CRASHED node - ...``
among the failures, with the last line of farm's text.
"""

from __future__ import annotations

from farm.core.domain import Outcome, RunSummary, TestResult
from farm.core.pytest_report import PytestReport
from farm.report.failures_text import farm_made, shown
from farm.report.text import Where, terminal_safe, text_width, trimmed


class ShortSummary:
    """The short summary of one run at one width."""

    def __init__(self, summary: RunSummary, width: int, *, ci: bool = False) -> None:
        self.summary = summary
        self.width = width
        options = summary.options
        # pytest prints the whole message on CI and under -vv, unless told not to.
        self.whole = (ci or options.verbose >= 2) and not options.force_short_summary
        self.where = Where(summary.rootdir, summary.invocation_dir)

    def lines(self) -> list[str]:
        """The section's lines, without its rule; empty when there are none."""
        lines: list[str] = []
        for char in dict.fromkeys(self.summary.options.reportchars):
            if char in "fE":
                lines += self._simple("failed" if char == "f" else "error")
            elif char == "s":
                lines += self._skipped()
            elif char in "xX":
                lines += self._expected("xfailed" if char == "x" else "xpassed")
            elif char == "p":
                lines += self._passed()
        return lines

    def _node(self, result: TestResult) -> str:
        return terminal_safe(self.where.node_id(result.node_id))

    def _with_message(self, line: str, message: str | None) -> str:
        if message is None:
            return line
        message = terminal_safe(message)
        if self.whole:
            return f"{line} - {message}"
        room = self.width - text_width(line)
        cut = trimmed(" - {}", message, room)
        return line + cut if cut is not None else line

    def _simple(self, category: str) -> list[str]:
        lines: list[str] = []
        for result in self.summary.results:
            for report in shown(result, category):
                line = f"{terminal_safe(report.word)} {self._node(result)}"
                lines.append(self._with_message(line, report.message))
            if farm_made(result, category):
                word = "ERROR" if category == "error" else _farm_word(result.outcome)
                lines.append(self._with_message(f"{word} {self._node(result)}", _last(result)))
        return lines

    def _skipped(self) -> list[str]:
        # pytest hears of modules that skipped themselves while collecting, first.
        skips = sorted(
            self._reports("skipped", Outcome.SKIPPED), key=lambda found: found[1].when != "collect"
        )
        if not self.summary.options.foldskipped:
            return [
                self._with_reason(f"{report.word} {self._node(result)}", report.message)
                for result, report in skips
            ]
        folded: dict[tuple[str, int | None, str], int] = {}
        word = ""
        for result, report in skips:
            word = word or report.word
            reason = (report.message or "").removeprefix("Skipped: ")
            if report.skip is not None:
                key = (self.where.relative(report.skip.path), report.skip.lineno, reason)
            else:
                key = (self.where.node_id(result.node_id), None, reason)
            folded[key] = folded.get(key, 0) + 1
        return [
            f"{word} [{n}] {terminal_safe(path)}{'' if line is None else f':{line}'}: "
            + terminal_safe(reason)
            for (path, line, reason), n in folded.items()
        ]

    def _expected(self, category: str) -> list[str]:
        outcome = Outcome.XFAILED if category == "xfailed" else Outcome.XPASSED
        lines = []
        for result, report in self._reports(category, outcome):
            if report.when in ("call", ""):
                line = f"{report.word} {self._node(result)}"
            else:
                line = f"{report.word} at {report.when} of {self._node(result)}"
            lines.append(self._with_reason(line, report.message))
        return lines

    def _passed(self) -> list[str]:
        lines = []
        for result in self.summary.results:
            reports = shown(result, "passed")
            if reports:
                lines += [f"{r.word} {self._node(result)}" for r in reports]
                continue
            count = dict(result.tally).get("passed", 0)
            if not result.tally and result.outcome is Outcome.PASSED:
                count = 1
            lines += [f"PASSED {self._node(result)}"] * count
        return lines

    def _reports(self, category: str, outcome: Outcome) -> list[tuple[TestResult, PytestReport]]:
        """Each report of ``category``, with its result; a result without pytest's
        report of it stands in for one, its text the reason."""
        found: list[tuple[TestResult, PytestReport]] = []
        for result in self.summary.results:
            reports = shown(result, category)
            if not reports and result.outcome is outcome:
                word = {"skipped": "SKIPPED", "xfailed": "XFAIL", "xpassed": "XPASS"}[category]
                reports = [PytestReport(category, "call", word, message=result.longrepr)]
            found += [(result, report) for report in reports]
        return found

    @staticmethod
    def _with_reason(line: str, reason: str | None) -> str:
        return f"{line} - {terminal_safe(reason)}" if reason else line


def _farm_word(outcome: Outcome) -> str:
    """The short summary's word for a failure farm made: pytest has none for them."""
    return "FAILED" if outcome is Outcome.FAILED else outcome.value.upper()


def _last(result: TestResult) -> str | None:
    """The last line of farm's text of a result: where its reason usually is."""
    lines = [line.strip() for line in result.longrepr.splitlines() if line.strip()]
    return lines[-1] if lines else None


__all__ = ["ShortSummary"]
