"""What a person sees in the terminal after a run: failures, slowest tests, the verdict.

Live progress during the run is :mod:`farm.report.progress`. Nothing here reads the
terminal size: the caller passes ``width`` (columns).

Test output is untrusted text. Before it reaches the terminal, every control
character but newline and tab (and Unicode bidi overrides, which can make shown
text differ from the real one) is replaced by a visible ``\\xNN``/``\\uNNNN``
escape, so a test cannot move the cursor, clear the screen or retitle the window.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from datetime import timedelta

from farm.core.domain import Outcome, RunSummary, TestResult, Verdict
from farm.report.findings import finding_sections, footer_lines

_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")

_RED, _GREEN, _YELLOW, _BOLD, _RESET = "\x1b[31m", "\x1b[32m", "\x1b[33m", "\x1b[1m", "\x1b[0m"

_VERDICT_COLOR = {
    Verdict.PASSED: _GREEN,
    Verdict.FLAKY: _YELLOW,
    Verdict.NO_TESTS: _YELLOW,
    Verdict.FAILED: _RED,
    Verdict.ERROR: _RED,
    Verdict.INTERRUPTED: _RED,
}

# The word pytest's summary line uses for a result farm made itself (no tally): a
# timeout or crash is a failure to pytest's readers, and the failure section tells
# them apart.
_FALLBACK_WORD = {
    Outcome.FAILED: "failed",
    Outcome.TIMEOUT: "failed",
    Outcome.CRASHED: "failed",
    Outcome.PASSED: "passed",
    Outcome.SKIPPED: "skipped",
    Outcome.XFAILED: "xfailed",
    Outcome.XPASSED: "xpassed",
    Outcome.ERROR: "error",
}
# pytest's order of the summary line; categories plugins add follow in the order seen.
_SUMMARY_ORDER = (
    "failed", "passed", "skipped", "deselected", "xfailed", "xpassed", "warnings", "error",
    "subtests passed", "subtests failed", "subtests skipped",
)  # fmt: skip
# The short summary's lines by -r character, in pytest's words.
_SHORT_WORDS = {
    "f": (frozenset({Outcome.FAILED, Outcome.TIMEOUT, Outcome.CRASHED}), ""),
    "E": (frozenset({Outcome.ERROR}), "ERROR"),
    "s": (frozenset({Outcome.SKIPPED}), "SKIPPED"),
    "x": (frozenset({Outcome.XFAILED}), "XFAIL"),
    "X": (frozenset({Outcome.XPASSED}), "XPASS"),
    "p": (frozenset({Outcome.PASSED}), "PASSED"),
}

# A long traceback's start locates the test and its end holds the error, so trimming
# keeps a quarter of the budget from the head and the rest from the tail.
_MAX_TRACEBACK_LINES = 200
_MAX_LINE_CHARS = 1000
_MAX_LOST_NAMED = 50


def terminal_safe(text: str) -> str:
    """``text`` with control characters other than ``\\n`` and ``\\t`` made visible."""
    return _UNSAFE.sub(_escape_char, text.replace("\r\n", "\n"))


def _escape_char(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def format_duration(seconds: float) -> str:
    """pytest's way of writing a run's length: ``24.10s``, ``124.10s (0:02:04)``."""
    text = f"{seconds:.2f}s"
    if seconds >= 60:
        text += f" ({timedelta(seconds=int(seconds))})"
    return text


def summary_counts(summary: RunSummary) -> str:
    """The counts part of the last line, as pytest would print it for the same run.

    ``3 failed, 1997 passed, 2 skipped``. Each result adds its tally (pytest's own
    category of each of its reports: a failure and a teardown error are both
    counted, as are subtests); a result farm made itself counts once, by outcome.
    Zero counts are left out, ``error`` and ``warning`` take pytest's plurals, and
    tests without a result end the list as ``N lost``, and tests that passed on a
    retry as ``N flaky`` (so a run without flaky tests reads exactly as pytest's).
    ``no tests ran`` when there is nothing to count.
    """
    counts: Counter[str] = Counter()
    for result in summary.results:
        if result.tally:
            counts.update(dict(result.tally))
        else:
            counts[_FALLBACK_WORD[result.outcome]] += 1
    counts["deselected"] += summary.deselected
    counts["warnings"] += summary.collect_warnings
    extra = [key for key in counts if key not in _SUMMARY_ORDER]
    parts = [_counted(counts[key], key) for key in (*_SUMMARY_ORDER, *extra) if counts[key] > 0]
    if summary.missing:
        parts.append(f"{len(summary.missing)} lost")
    if summary.flaky:
        parts.append(f"{len(summary.flaky)} flaky")
    return ", ".join(parts) if parts else "no tests ran"


def _counted(n: int, key: str) -> str:
    """``n`` and pytest's word for ``key``: only error and warning take a plural."""
    if key in ("error", "warnings"):
        noun = key.rstrip("s")
        return f"{n} {noun}s" if n != 1 else f"{n} {noun}"
    return f"{n} {key}"


def format_summary(
    summary: RunSummary,
    *,
    estimates: Mapping[str, float],
    slowest: int = 10,
    color: bool,
    width: int = 80,
    max_output_lines: int = 40,
) -> str:
    """The end-of-run report: failures, lost tests, slowest tests, pytest's short
    summary, what farm found beyond pytest (flaky tests, quarantined failures, new
    flaky tests, the retry budget, suspect machines: :mod:`farm.report.findings`),
    then one summary line.

    ``estimates`` maps node id to the plan's estimate, shown beside the actual
    duration of the slowest tests. Captured output is cut to ``max_output_lines``
    per test (tracebacks to a larger budget) with a note saying how much was cut.
    The last line reads like pytest's, e.g. ``==== 3 failed, 1997 passed in 24.10s
    (plan estimate 22.80s, 16 workers), verdict FAILED ====``; with ``color`` it is
    colored as a whole, so the plain ``3 failed, 1997 passed`` stays contiguous.
    """
    paint = _Paint(color)
    lines: list[str] = []

    failures = [r for r in summary.results if r.outcome.is_failure]
    if failures:
        lines.append(paint(_rule("FAILURES", "=", width), _RED + _BOLD))
        for result in failures:
            lines.extend(_failure_lines(result, paint, width, max_output_lines))

    if summary.missing:
        lines.append(paint(_rule("LOST TESTS", "=", width), _RED + _BOLD))
        lines.append(
            f"no result for {_plural(len(summary.missing), 'collected test')}: "
            "their worker was lost or the run ended first"
        )
        lines.extend(f"  {terminal_safe(n)}" for n in summary.missing[:_MAX_LOST_NAMED])
        if len(summary.missing) > _MAX_LOST_NAMED:
            lines.append(f"  ... and {len(summary.missing) - _MAX_LOST_NAMED} more")

    timed = sorted(
        (r for r in summary.results if r.duration_s > 0),
        key=lambda r: r.duration_s,
        reverse=True,
    )[: max(slowest, 0)]
    if timed:
        lines.append(_rule(f"slowest {_plural(len(timed), 'test')}", "=", width))
        lines.append(f"{'actual':>10}  {'estimate':>10}  test")
        for result in timed:
            estimate = estimates.get(result.node_id)
            shown = f"{estimate:.2f}s" if estimate is not None else "-"
            lines.append(
                f"{result.duration_s:>9.2f}s  {shown:>10}  {terminal_safe(result.node_id)}"
            )

    short = _short_summary(summary, width)
    if short:
        # pytest's one line per result the -r characters ask for, just above the
        # verdict: what a CI log shows when the long sections scroll away.
        lines.append(_rule("short test summary info", "=", width))
        lines.extend(short)
    if summary.collection_errors:
        interrupted = (
            f"Interrupted: {_plural(summary.collection_errors, 'error')} during collection"
        )
        lines.append(_rule(interrupted, "!", width))
    if summary.stopped_after:
        lines.append(_rule(f"stopping after {summary.stopped_after} failures", "!", width))

    for section in finding_sections(summary):
        if section.title:
            lines.append(paint(_rule(terminal_safe(section.title), "=", width), _YELLOW + _BOLD))
            lines.extend(terminal_safe(line) for line in section.lines)
        else:
            lines.extend(paint(terminal_safe(line), _YELLOW) for line in section.lines)

    machines = _machines_line(summary)
    if machines:
        lines.append(machines)
    lines.extend(terminal_safe(line) for line in footer_lines(summary))

    if summary.message:
        lines.append(paint(f"{summary.verdict.value}: {terminal_safe(summary.message)}", _BOLD))

    last = (
        f"{summary_counts(summary)} in {format_duration(summary.makespan_s)} "
        f"(plan estimate {format_duration(summary.estimated_makespan_s)}, "
        f"{summary.workers} workers), verdict {summary.verdict.value.upper()}"
    )
    lines.append(paint(_rule(last, "=", width), _VERDICT_COLOR[summary.verdict]))
    return "\n".join(lines)


def _machines_line(summary: RunSummary) -> str:
    """Which machines ran the run, and the snapshot they ran: only for a farm elsewhere."""
    if summary.code is None:
        return ""
    by_machine: dict[str, int] = {}
    for shard in summary.shards:
        if shard.machine:
            by_machine[shard.machine] = by_machine.get(shard.machine, 0) + shard.tests
    ran = ", ".join(f"{terminal_safe(m)} ({n})" for m, n in sorted(by_machine.items()))
    code = summary.code
    sent = f"uploaded {code.uploaded_bytes / 1024:.0f} KiB" if code.uploaded_bytes else "cached"
    return (
        f"snapshot {code.digest[:12]} ({code.size_bytes / 1024:.0f} KiB, {sent}); "
        f"tests by machine: {ran or 'none'}"
    )


def _failure_lines(
    result: TestResult, paint: _Paint, width: int, max_output_lines: int
) -> list[str]:
    node_id = terminal_safe(result.node_id)
    where = f" on worker {terminal_safe(result.worker)}" if result.worker else ""
    lines = [
        paint(_rule(node_id, "_", width), _RED + _BOLD),
        f"{result.outcome.value}{where} (shard {result.shard_id}, attempt {result.attempt}) "
        f"after {result.duration_s:.2f}s",
    ]
    if result.longrepr:
        lines.extend(_trim(terminal_safe(result.longrepr), _MAX_TRACEBACK_LINES, "traceback"))
    if result.output:
        lines.append(_rule("captured output", "-", width))
        lines.extend(_trim(terminal_safe(result.output), max_output_lines, "output"))
    return lines


def _short_summary(summary: RunSummary, width: int) -> list[str]:
    """The lines of pytest's short test summary for the run's ``-r`` characters
    (``fE`` unless the command line or the suite's ``addopts`` say otherwise)."""
    lines: list[str] = []
    for char in dict.fromkeys(summary.options.reportchars):
        outcomes, word = _SHORT_WORDS.get(char, (frozenset(), ""))
        for result in summary.results:
            if result.outcome in outcomes:
                lines.append(_short_line(result, width, word or result.outcome.value.upper()))
    return lines


def _short_line(result: TestResult, width: int, word: str) -> str:
    """``FAILED node_id - last line of the traceback``, cut to ``width`` like pytest's."""
    line = f"{word} {terminal_safe(result.node_id)}"
    reasons = [r.strip() for r in terminal_safe(result.longrepr).splitlines() if r.strip()]
    if reasons:
        room = width - len(line) - 3
        if room >= 10:
            reason = reasons[-1] if len(reasons[-1]) <= room else reasons[-1][: room - 3] + "..."
            line += f" - {reason}"
    return line


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _trim(text: str, max_lines: int, what: str) -> list[str]:
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


def _rule(title: str, fill: str, width: int) -> str:
    """``title`` centred in a line of ``fill`` characters, as pytest's section rules."""
    room = width - len(title) - 2
    if room < 2:
        return f"{fill} {title} {fill}"
    left = room // 2
    return f"{fill * left} {title} {fill * (room - left)}"


class _Paint:
    """Wraps text in an ANSI style, or returns it unchanged when color is off."""

    def __init__(self, enabled: bool) -> None:
        self._enabled = enabled

    def __call__(self, text: str, style: str) -> str:
        return f"{style}{text}{_RESET}" if self._enabled else text


__all__ = ["format_duration", "format_summary", "summary_counts", "terminal_safe"]
