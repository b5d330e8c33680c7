"""Live progress of a run in the terminal, or in a CI log.

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

pytest's ``-v`` replaces the progress with pytest's own line per test as its result
arrives (:mod:`farm.report.test_lines`); ``-q`` leaves only the line redrawn on a
terminal (a CI log gets no progress lines), ``-qq`` not even that.
"""

from __future__ import annotations

import math
from typing import TextIO

from farm.core import defaults
from farm.core.domain import Outcome, TestResult
from farm.report.test_lines import verbose_lines
from farm.report.text import Where

_CLEAR_TO_END = "\x1b[K"


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
        interval_s: float = defaults.PROGRESS_INTERVAL_S,
        width: int = 80,
        started_at: float | None = None,
        verbosity: int = 0,
        where: Where | None = None,
    ) -> None:
        self._stream = stream
        self.total = total
        self._estimated_total_s = estimated_total_s
        self._workers = max(workers, 1)
        self._is_tty = is_tty
        self._interval_s = interval_s
        self._width = width
        self._started_at = started_at
        self._verbosity = verbosity  # pytest's -v minus -q
        self._where = where or Where()  # node ids as they are
        self._reported = 0  # tests with a -v line so far
        self.passed = 0
        self.failed = 0
        self.skipped = 0
        self.xfailed = 0
        self.xpassed = 0
        self._done_estimate_s = 0.0
        self._done_actual_s = 0.0
        self._last_plain_at: float | None = None
        self._last_plain_done = -1
        self._drawn = False
        self._closed = False

    @property
    def done(self) -> int:
        return self.passed + self.failed + self.skipped + self.xfailed + self.xpassed

    @property
    def remaining(self) -> int:
        return max(self.total - self.done, 0)

    def add(self, result: TestResult, estimate_s: float) -> None:
        """Count one finished test; ``estimate_s`` is what the plan expected it to take."""
        if result.outcome.is_failure:
            self.failed += 1
        elif result.outcome is Outcome.SKIPPED:
            self.skipped += 1
        elif result.outcome is Outcome.XFAILED:
            self.xfailed += 1
        elif result.outcome is Outcome.XPASSED:
            self.xpassed += 1
        else:
            self.passed += 1
        self._done_estimate_s += max(estimate_s, 0.0)
        self._done_actual_s += max(result.duration_s, 0.0)
        if self._verbosity > 0 and not self._closed:
            self._print_verbose(result)

    def _print_verbose(self, result: TestResult) -> None:
        """pytest's -v lines of ``result``, with the share of tests reported so far."""
        percent = 100 * (self._reported + 1) // max(self.total, self._reported + 1, 1)
        lines = verbose_lines(result, percent, self._width, self._verbosity, self._where)
        if lines:
            self._reported += 1
            self._stream.write("".join(line + "\n" for line in lines))
            self._stream.flush()

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
        if self._closed or not self._shows_progress:
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
        if now is not None and self._shows_progress:
            if self._started_at is None:
                self._started_at = now
            if self._is_tty:
                self._draw(now)
            elif self.done != self._last_plain_done:
                self._print_plain(now)
        if (self._is_tty and self._drawn) or self._reported:
            # After pytest's -v lines, pytest's blank line before its sections.
            self._stream.write("\n")
            self._stream.flush()
        self._closed = True

    @property
    def _shows_progress(self) -> bool:
        """Whether farm's progress is drawn: not under -v (pytest's lines instead),
        nor in a log under -q, nor at all under -qq."""
        if self._verbosity > 0 or self._verbosity < -1:
            return False
        return self._verbosity == 0 or self._is_tty

    def _elapsed_s(self, now: float) -> float:
        return now - (self._started_at if self._started_at is not None else now)

    def _counts(self) -> str:
        counts = [("passed", self.passed), ("failed", self.failed), ("skipped", self.skipped)]
        # Rarer outcomes appear once one happens, so the usual line keeps its width.
        counts += [
            (word, n) for word, n in (("xfailed", self.xfailed), ("xpassed", self.xpassed)) if n
        ]
        counts.append(("remaining", self.remaining))
        return " ".join(f"{word} {n}" for word, n in counts)

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


__all__ = ["Progress"]
