"""pytest's ``-v`` line of a test: ``test_x.py::test_skip SKIPPED (nah)    [ 42%]``.

One line per report pytest gives a word (a test that fails and then errors in its
teardown has two: ``FAILED``, then ``ERROR``), with pytest's word for it, the reason
of a skip or xfail in parentheses (cut to the line unless ``-vv``) and the share of
the run's tests reported so far at the right edge (a module that skipped itself
has no line). The node id is relative to the folder pytest was started in. A result
farm made itself has its outcome for word: ``TIMEOUT``, ``CRASHED``.
"""

from __future__ import annotations

from farm.core.domain import TestResult
from farm.report.text import Where, terminal_safe, text_width, trimmed

_WORDS = {"xfailed": "XFAIL", "xpassed": "XPASS"}
_WITH_REASON = frozenset({"skipped", "xfailed", "xpassed"})
_SHOWN = frozenset({"failed", "error", "skipped", "xfailed", "xpassed", "passed"})


def words(result: TestResult) -> list[tuple[str, str | None]]:
    """Each ``(word, reason)`` pytest's ``-v`` prints for ``result``, in order."""
    detail = result.detail
    reports = [r for r in detail.reports if r.category in _SHOWN] if detail else []
    if any(r.when == "collect" for r in reports):
        return []  # a module that skipped itself: pytest reports no test of it
    if not reports:
        word = _WORDS.get(result.outcome.value, result.outcome.value.upper())
        reason = result.longrepr if result.outcome.value in _WITH_REASON else None
        return [(word, _raw_reason(result.outcome.value, reason))]
    found: list[tuple[str, str | None]] = []
    if dict(result.tally).get("passed") and not any(r.category == "passed" for r in reports):
        found.append(("PASSED", None))  # a passed call the detail did not need to carry
    for report in reports:
        reason = report.message if report.category in _WITH_REASON else None
        found.append((report.word, _raw_reason(report.category, reason)))
    return found


def verbose_lines(
    result: TestResult, percent: int, width: int, verbosity: int, where: Where
) -> list[str]:
    """pytest's ``-v`` lines of ``result``, ``percent`` of the run's tests reported."""
    node = terminal_safe(where.node_id(result.node_id))
    progress = f" [{percent:3d}%]"
    lines = []
    for word, reason in words(result):
        line = f"{node} {terminal_safe(word)}"
        if reason:
            reason = terminal_safe(reason)
            if verbosity >= 2:
                line += f" ({reason})"
            else:
                room = width - text_width(line) - len(" [100%]") - 1
                shown = trimmed(" ({})", reason, room)
                line += shown or ""
        lines.append(line + progress.rjust(width - text_width(line) - 1))
    return lines


def _raw_reason(category: str, reason: str | None) -> str | None:
    """The part of a skip or xfail reason the user gave (pytest's ``_get_raw_skip_reason``)."""
    if reason is None:
        return None
    if category in ("xfailed", "xpassed"):
        return reason.removeprefix("reason: ")
    if reason == "Skipped":
        return ""
    return reason.removeprefix("Skipped: ")


__all__ = ["verbose_lines", "words"]
