"""What a person sees in the terminal: live progress during a run, a summary after it.

Nothing here reads a clock or the terminal size: the caller passes ``now`` (any
monotonic seconds) and ``width`` (columns), so the output is a pure function of its
inputs and tests move a fake clock instead of sleeping.

Terms:

*work*
    Seconds of test time. *Estimated work* is the sum of the plan's estimates,
    *actual work* the sum of reported durations.
*speed*
    Actual over estimated work of the tests finished so far: 1.2 means tests run 20%
    slower than history says. It scales the estimate of the work still to do.
*ETA*
    Estimated remaining work, times speed, divided by the number of workers.

Test output is untrusted text. Before it reaches the terminal, every control
character but newline and tab (and Unicode bidi overrides, which can make shown
text differ from the real one) is replaced by a visible ``\\xNN``/``\\uNNNN``
escape, so a test cannot move the cursor, clear the screen or retitle the window.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import timedelta
from typing import TextIO

from farm.domain import Outcome, RunSummary, TestResult, Verdict

_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")

_RED, _GREEN, _YELLOW, _BOLD, _RESET = "\x1b[31m", "\x1b[32m", "\x1b[33m", "\x1b[1m", "\x1b[0m"
_CLEAR_TO_END = "\x1b[K"

_VERDICT_COLOR = {
    Verdict.PASSED: _GREEN,
    Verdict.FLAKY: _YELLOW,
    Verdict.NO_TESTS: _YELLOW,
    Verdict.FAILED: _RED,
    Verdict.ERROR: _RED,
    Verdict.INTERRUPTED: _RED,
}

# pytest's summary words and their order, with farm's outcomes folded in: a timeout or
# crash is a failure to pytest's readers, and the failure section tells them apart.
_SUMMARY_WORDS: tuple[tuple[str, frozenset[Outcome]], ...] = (
    ("failed", frozenset({Outcome.FAILED, Outcome.TIMEOUT, Outcome.CRASHED})),
    ("passed", frozenset({Outcome.PASSED})),
    ("skipped", frozenset({Outcome.SKIPPED})),
    ("xfailed", frozenset({Outcome.XFAILED})),
    ("xpassed", frozenset({Outcome.XPASSED})),
    ("error", frozenset({Outcome.ERROR})),
)

_SKIPPED_LIKE = frozenset({Outcome.SKIPPED, Outcome.XFAILED})

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


class Progress:
    """Live progress of one run, drawn on a stream.

    On a terminal (``is_tty``) one line is redrawn in place on every :meth:`render`;
    elsewhere (CI logs) a plain line is printed at most every ``interval_s``, so a
    long run leaves a readable log rather than one line per test. ``total`` is the
    number of tests the run owes, ``estimated_total_s`` the sum of their estimates.
    ``started_at`` is on the same clock as ``now``; by default the first render.
    """

    def __init__(
        self,
        stream: TextIO,
        total: int,
        estimated_total_s: float,
        workers: int,
        is_tty: bool,
        *,
        interval_s: float = 5.0,
        width: int = 80,
        started_at: float | None = None,
    ) -> None:
        self._stream = stream
        self.total = total
        self._estimated_total_s = estimated_total_s
        self._workers = max(workers, 1)
        self._is_tty = is_tty
        self._interval_s = interval_s
        self._width = width
        self._started_at = started_at
        self.passed = 0
        self.failed = 0
        self.skipped = 0
        self._done_estimate_s = 0.0
        self._done_actual_s = 0.0
        self._last_plain_at: float | None = None
        self._last_plain_done = -1
        self._drawn = False
        self._closed = False

    @property
    def done(self) -> int:
        return self.passed + self.failed + self.skipped

    @property
    def remaining(self) -> int:
        return max(self.total - self.done, 0)

    def add(self, result: TestResult, estimate_s: float) -> None:
        """Count one finished test; ``estimate_s`` is what the plan expected it to take."""
        if result.outcome.is_failure:
            self.failed += 1
        elif result.outcome in _SKIPPED_LIKE:
            self.skipped += 1
        else:
            self.passed += 1
        self._done_estimate_s += max(estimate_s, 0.0)
        self._done_actual_s += max(result.duration_s, 0.0)

    def speed(self) -> float:
        """Actual over estimated work finished so far; 1.0 until there is any."""
        if self._done_estimate_s <= 0 or self._done_actual_s <= 0:
            return 1.0
        return self._done_actual_s / self._done_estimate_s

    def eta_s(self) -> float:
        """Seconds until the last test is expected to finish."""
        if self.remaining == 0:
            return 0.0
        remaining_work_s = max(self._estimated_total_s - self._done_estimate_s, 0.0)
        return remaining_work_s * self.speed() / self._workers

    def render(self, now: float) -> None:
        """Draw the current state (TTY), or print it if ``interval_s`` has passed (plain)."""
        if self._closed:
            return
        if self._started_at is None:
            self._started_at = now
        if self._is_tty:
            self._draw(now)
        elif self._last_plain_at is None or now - self._last_plain_at >= self._interval_s:
            self._print_plain(now)

    def close(self, now: float | None = None) -> None:
        """End the progress display; with ``now``, show the final state first."""
        if self._closed:
            return
        if now is not None:
            if self._started_at is None:
                self._started_at = now
            if self._is_tty:
                self._draw(now)
            elif self.done != self._last_plain_done:
                self._print_plain(now)
        if self._is_tty and self._drawn:
            self._stream.write("\n")
            self._stream.flush()
        self._closed = True

    def _elapsed_s(self, now: float) -> float:
        return now - (self._started_at if self._started_at is not None else now)

    def _counts(self) -> str:
        return (
            f"passed {self.passed} failed {self.failed} skipped {self.skipped} "
            f"remaining {self.remaining}"
        )

    def _draw(self, now: float) -> None:
        # The last column is left empty: some terminals wrap when it is written.
        columns = max(self._width - 1, 1)
        percent = 100 if self.total == 0 else 100 * self.done // self.total
        counts = self._counts()
        eta = f"ETA {_clock(self.eta_s())}"
        # Narrow terminals lose the elapsed time, then the percentage, before the counts.
        for text in (
            f"{percent:3d}% {counts} {_clock(self._elapsed_s(now))} elapsed, {eta}",
            f"{percent:3d}% {counts} {eta}",
            f"{counts} {eta}",
        ):
            if len(text) <= columns:
                break
        bar_room = columns - len(text) - 3
        if bar_room >= 5:
            bar_width = min(bar_room, 40)
            filled = bar_width * percent // 100
            text = "[" + "#" * filled + "-" * (bar_width - filled) + "] " + text
        self._stream.write("\r" + text[:columns] + _CLEAR_TO_END)
        self._stream.flush()
        self._drawn = True

    def _print_plain(self, now: float) -> None:
        self._stream.write(
            f"farm: {self.done}/{self.total} done, {self._counts()}, "
            f"{_clock(self._elapsed_s(now))} elapsed, ETA {_clock(self.eta_s())}\n"
        )
        self._stream.flush()
        self._last_plain_at = now
        self._last_plain_done = self.done


def _clock(seconds: float) -> str:
    """A short human duration for progress lines: ``12s``, ``4m05s``, ``1h02m``."""
    if not math.isfinite(seconds) or seconds < 0:
        return "?"
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def summary_counts(summary: RunSummary) -> str:
    """The counts part of the last line, in pytest's words and order.

    ``3 failed, 1997 passed, 2 skipped``; zero counts are left out as pytest does,
    ``error`` takes pytest's plural, and tests without a result end the list as
    ``N lost``. ``no tests ran`` when there is nothing to count.
    """
    parts: list[str] = []
    for word, outcomes in _SUMMARY_WORDS:
        n = sum(1 for r in summary.results if r.outcome in outcomes)
        if n:
            parts.append(f"{n} {word}s" if word == "error" and n != 1 else f"{n} {word}")
    if summary.missing:
        parts.append(f"{len(summary.missing)} lost")
    return ", ".join(parts) if parts else "no tests ran"


def format_summary(
    summary: RunSummary,
    *,
    estimates: Mapping[str, float],
    slowest: int = 10,
    color: bool,
    width: int = 80,
    max_output_lines: int = 40,
) -> str:
    """The end-of-run report: failures, lost tests, slowest tests, then one summary line.

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

    if failures:
        # pytest's one line per failure just above the verdict: what a CI log shows
        # when the long sections scroll away.
        lines.append(_rule("short test summary info", "=", width))
        lines.extend(_short_line(r, width) for r in failures)

    hosts = _hosts_line(summary)
    if hosts:
        lines.append(hosts)

    if summary.message:
        lines.append(paint(f"{summary.verdict.value}: {terminal_safe(summary.message)}", _BOLD))

    last = (
        f"{summary_counts(summary)} in {format_duration(summary.makespan_s)} "
        f"(plan estimate {format_duration(summary.estimated_makespan_s)}, "
        f"{summary.workers} workers), verdict {summary.verdict.value.upper()}"
    )
    lines.append(paint(_rule(last, "=", width), _VERDICT_COLOR[summary.verdict]))
    return "\n".join(lines)


def _hosts_line(summary: RunSummary) -> str:
    """Which machines ran the run, and the snapshot they ran: only for a farm elsewhere."""
    if summary.code is None:
        return ""
    by_host: dict[str, int] = {}
    for shard in summary.shards:
        if shard.host:
            by_host[shard.host] = by_host.get(shard.host, 0) + shard.tests
    ran = ", ".join(f"{terminal_safe(h)} ({n})" for h, n in sorted(by_host.items()))
    code = summary.code
    sent = f"uploaded {code.uploaded_bytes / 1024:.0f} KiB" if code.uploaded_bytes else "cached"
    return (
        f"snapshot {code.digest[:12]} ({code.size_bytes / 1024:.0f} KiB, {sent}); "
        f"tests by host: {ran or 'none'}"
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


def _short_line(result: TestResult, width: int) -> str:
    """``FAILED node_id - last line of the traceback``, cut to ``width`` like pytest's."""
    line = f"{result.outcome.value.upper()} {terminal_safe(result.node_id)}"
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


__all__ = ["Progress", "format_duration", "format_summary", "summary_counts", "terminal_safe"]
