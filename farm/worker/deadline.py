"""Per-test time limits, enforced from outside the test process.

The runner (:mod:`farm.worker.runner`) times the test in flight from the moment the
plugin's ``O`` line (for the first test) or the previous test's ``R`` line arrives,
so setup counts, as with pytest-timeout. The limit is the run's ``test_timeout_s``
unless the test carries a ``timeout`` marker (pytest-timeout's spelling), which the
plugin reports in its ``T`` line. A limit of 0 or less means none; a marker of 0
(pytest-timeout's "no timeout") falls back to the run's limit, so that no test can
hold a worker forever.

A test past its limit is stopped in three steps:

1. ``STACK_SIGNAL``: faulthandler's handler in the test process, which runs in C,
   dumps every thread's stack into the process's log, even while the test is stuck
   in C code that never returns to the interpreter.
2. ``OUTPUT_SIGNAL``: a Python-level handler writes what the test printed so far on
   the report pipe (a ``P`` line) and parks the main thread, so that the test does
   nothing more. It runs only once the interpreter has control again; standard
   signals are delivered lowest number first, so the stack is written before it.
3. SIGKILL to the process group, when that line arrives or ``STOP_GRACE_S`` after
   the signals, whichever comes first.

The test is reported ``timeout``; the rest of its shard runs in a fresh process.
This module is imported on both sides of the pipe: it holds nothing but stdlib.
"""

from __future__ import annotations

import math
import signal
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pytest  # for the type only: the runner imports this module too

STACK_SIGNAL = signal.SIGUSR1
OUTPUT_SIGNAL = signal.SIGUSR2
STOP_GRACE_S = 1.0


def truncate(text: str, limit_bytes: int) -> str:
    """Cut ``text`` to about ``limit_bytes`` of UTF-8, saying how much was cut."""
    data = text.encode("utf-8", "surrogateescape")
    if len(data) <= limit_bytes:
        return text
    kept = data[:limit_bytes].decode("utf-8", "ignore")
    return f"{kept}\n[farm: truncated {len(data) - limit_bytes} of {len(data)} bytes]"


def limit_s(
    marker_s: Mapping[int, float], index: int, default_s: float
) -> tuple[float, bool] | None:
    """The limit of the ``index``-th test and whether its marker set it; None: no limit."""
    if index in marker_s:
        return marker_s[index], True
    return (default_s, False) if default_s > 0 else None


@dataclass
class Overrun:
    """A test the runner is stopping, or has stopped, for running past its limit."""

    node_id: str
    index: int  # in its process's order
    limit_s: float
    from_marker: bool
    ran_s: float  # from its start to the runner's decision
    signalled_at: float  # the runner's clock when it sent the signals
    log_offset: int  # where the stack dump starts in the process's log
    answered: bool = False  # the output line came back
    output: str | None = None  # what the test printed, if the process could tell
    stack: str = ""

    def kill_at(self) -> float:
        """When the runner stops waiting for the output line."""
        return self.signalled_at + STOP_GRACE_S

    def longrepr(self) -> str:
        """Why it failed, then the stacks: the threads in the test's module first, since
        faulthandler lists the newest thread first and truncation keeps the head."""
        source = "from its timeout marker" if self.from_marker else "from the run"
        head = f"timed out after {self.ran_s:.1f}s (limit {self.limit_s:g}s {source})"
        module = self.node_id.split("::", 1)[0]
        threads = [block for block in self.stack.strip().split("\n\n") if block]
        threads.sort(key=lambda block: module not in block)
        stack = "\n\n".join(threads) or "[farm: no stack: the process wrote none before it died]"
        return f"{head}\n\n{stack}"

    def output_text(self, captured: str | None, log_tail: str, limit_bytes: int) -> str:
        """What the test printed: from its answer (the plugin truncated it already),
        else from pytest's capture files, else a note and the end of the log."""
        if self.answered and self.output is not None:
            return self.output
        if not self.answered and captured is not None:
            return truncate(captured, limit_bytes)
        why = "not captured" if self.answered else "the process did not answer"
        note = f"[farm: the test's output is unavailable ({why}); the log's end:]\n"
        return note + truncate(log_tail, limit_bytes)


@dataclass
class Stopwatch:
    """Times the in-flight test of one test process against its limit."""

    default_s: float  # the run's limit; 0 or less: none
    marker_s: dict[int, float] = field(default_factory=dict)  # from markers, by index
    since: float | None = None  # when the in-flight test started, on the runner's clock
    overrun: Overrun | None = None

    def deadline(self, index: int | None) -> float | None:
        """When the ``index``-th test, in flight, runs out of time; None: never."""
        limit = None if index is None else limit_s(self.marker_s, index, self.default_s)
        if limit is None or self.since is None:
            return None
        return self.since + limit[0]

    def wake_at(self, index: int | None) -> float | None:
        """The next time the runner must look: a deadline, or the end of the grace."""
        return self.overrun.kill_at() if self.overrun else self.deadline(index)

    def done(self, now: float) -> bool:
        """A stop is under way and the runner is to kill the process now."""
        return self.overrun is not None and (self.overrun.answered or now >= self.overrun.kill_at())

    def stop(self, node_id: str, index: int, now: float, log_offset: int) -> Overrun:
        limit_s_, from_marker = limit_s(self.marker_s, index, self.default_s) or (0.0, False)
        since = self.since if self.since is not None else now
        self.overrun = Overrun(node_id, index, limit_s_, from_marker, now - since, now, log_offset)
        return self.overrun

    def answer(self, data: Mapping[str, object]) -> None:
        """The test process's ``P`` line: its output, if about the test being stopped."""
        if self.overrun is not None:
            self.overrun.answered = True
            output = data.get("output")
            if data.get("index") == self.overrun.index and isinstance(output, str):
                self.overrun.output = output


def marker_timeout_s(item: pytest.Item) -> float | None:
    """The item's ``timeout`` marker in seconds; None without a usable positive one."""
    marker = item.get_closest_marker("timeout")
    if marker is None:
        return None
    value: Any = marker.args[0] if marker.args else marker.kwargs.get("timeout")
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    return seconds if seconds > 0 and math.isfinite(seconds) else None
