"""Per-test time limits, enforced from outside the test process.

The runner (:mod:`farm.worker.runner`) times the test in flight from the moment the
plugin's ``O`` line (for the first test) or the previous test's ``R`` line arrives,
so setup counts, as with pytest-timeout. A test's limit (:meth:`Stopwatch.limit`)
is, first that applies:

1. pytest-timeout's, when the plugin is active in the test process: its hooks tell
   the plugin when it starts and cancels a test's timer and with what limit (``A``
   lines: its marker, ``--timeout``, ``PYTEST_TIMEOUT``, the ini file, ``func_only``
   and the method all decided by pytest-timeout itself), and the limit counts from
   then. With its ``signal`` method pytest-timeout fails the test in the process
   ("Failed: Timeout (>1.0s) from pytest-timeout."), the report and the rest of the
   shard are pytest's, and farm steps in only ``grace_s`` later, for a test stuck in
   C code that never returns to the interpreter. Its ``thread`` method would end
   the whole pytest process (``os._exit``), so farm takes that timer over and
   stops the test itself at the limit.
2. Without pytest-timeout in the process: the test's ``timeout`` marker (the ``T``
   line), else pytest-timeout's limit as the submitter resolved it (``--timeout``,
   ``PYTEST_TIMEOUT``, ``timeout`` in the ini file), enforced from here.
3. The run's ``test_timeout_s``. A limit of 0 ("no timeout", from a marker or the
   options) means this one: no test can hold a worker forever.

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

The two signals are sent while the process is stopped (SIGSTOP, then SIGCONT), so
they are pending together when it runs again. Sent one after the other to a
running process, a runner preempted between the two sends let the stack signal
arrive alone: it cut a C sleep short and the test ran on, to its end, before the
output signal came.

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


RUN = "from the run"  # where a limit came from, as a timed-out test's report says
MARKER = "from its timeout marker"
PYTEST_TIMEOUT = "from pytest-timeout"


@dataclass(frozen=True)
class Limit:
    """A test's time limit: ``seconds`` from ``start`` (None: the test's own start),
    plus ``grace_s`` when pytest-timeout stops the test first, in the process."""

    seconds: float
    source: str
    start: float | None = None
    grace_s: float = 0.0


@dataclass
class Overrun:
    """A test the runner is stopping, or has stopped, for running past its limit."""

    node_id: str
    index: int  # in its process's order
    limit_s: float
    source: str  # where the limit came from: RUN, MARKER or PYTEST_TIMEOUT
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
        head = f"timed out after {self.ran_s:.1f}s (limit {self.limit_s:g}s {self.source})"
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
    # pytest-timeout's limit as the submitter resolved it, enforced from here while
    # the process has no pytest-timeout of its own; 0 or less: none.
    plugin_s: float = 0.0
    grace_s: float = 0.0  # how long farm leaves pytest-timeout to stop a test itself
    marker_s: dict[int, float] = field(default_factory=dict)  # from markers, by index
    # pytest-timeout is active in the process: its timers (``armed``) are the limits.
    timed_inside: bool = False
    armed: dict[int, Limit] = field(default_factory=dict)  # by index
    since: float | None = None  # when the in-flight test started, on the runner's clock
    overrun: Overrun | None = None

    def limit(self, index: int) -> Limit | None:
        """The ``index``-th test's limit; None: none."""
        if index in self.armed:
            return self.armed[index]
        marker_s = self.marker_s.get(index)
        if marker_s is not None and marker_s > 0:
            return Limit(marker_s, MARKER)
        if marker_s is None and self.plugin_s > 0 and not self.timed_inside:
            return Limit(self.plugin_s, PYTEST_TIMEOUT)
        return Limit(self.default_s, RUN) if self.default_s > 0 else None

    def arm(self, index: int, limit_s: float | None, in_process: bool, now: float) -> None:
        """pytest-timeout started (or, ``limit_s`` None, cancelled) a test's timer now."""
        if limit_s is None:
            self.armed.pop(index, None)
        else:
            grace_s = self.grace_s if in_process else 0.0
            self.armed[index] = Limit(limit_s, PYTEST_TIMEOUT, now, grace_s)

    def deadline(self, index: int | None) -> float | None:
        """When the ``index``-th test, in flight, runs out of time; None: never."""
        limit = None if index is None else self.limit(index)
        start = self.since if limit is None or limit.start is None else limit.start
        if limit is None or start is None:
            return None
        return start + limit.seconds + limit.grace_s

    def wake_at(self, index: int | None) -> float | None:
        """The next time the runner must look: a deadline, or the end of the grace."""
        return self.overrun.kill_at() if self.overrun else self.deadline(index)

    def done(self, now: float) -> bool:
        """A stop is under way and the runner is to kill the process now."""
        return self.overrun is not None and (self.overrun.answered or now >= self.overrun.kill_at())

    def stop(self, node_id: str, index: int, now: float, log_offset: int) -> Overrun:
        limit = self.limit(index) or Limit(0.0, RUN)
        since = self.since if self.since is not None else now
        self.overrun = Overrun(
            node_id, index, limit.seconds, limit.source, now - since, now, log_offset
        )
        return self.overrun

    def answer(self, data: Mapping[str, object]) -> None:
        """The test process's ``P`` line: its output, if about the test being stopped."""
        if self.overrun is not None:
            self.overrun.answered = True
            output = data.get("output")
            if data.get("index") == self.overrun.index and isinstance(output, str):
                self.overrun.output = output


def marker_timeout_s(item: pytest.Item) -> float | None:
    """The item's ``timeout`` marker in seconds (0 for pytest-timeout's "no timeout",
    as 0 or less is); None without a marker or a number in it."""
    marker = item.get_closest_marker("timeout")
    if marker is None:
        return None
    value: Any = marker.args[0] if marker.args else marker.kwargs.get("timeout")
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    return max(seconds, 0.0) if math.isfinite(seconds) else None
