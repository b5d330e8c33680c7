"""The test process's side of stopping a test over its time limit.

The runner stops such a test from outside (see :mod:`farm.worker.deadline` for the
three steps); here, in the test process, are the two handlers it signals:

- a faulthandler for :data:`~farm.worker.deadline.STACK_SIGNAL`, which writes every
  thread's stack to the process's original stderr (its log), for the runner to read;
- :meth:`InFlightTest.on_output_signal` for :data:`~farm.worker.deadline.OUTPUT_SIGNAL`,
  which writes what the test in flight printed so far (a ``P`` line of
  :mod:`farm.worker.pipe`) and then holds the process until the runner kills it.

It runs inside untrusted test code, with the plugin (:mod:`farm.worker.plugin`):
stdlib and pytest only.
"""

from __future__ import annotations

import contextlib
import faulthandler
import os
import signal
import time
from collections.abc import Callable, Iterator
from types import FrameType

import pytest

from farm.worker import pipe
from farm.worker.deadline import OUTPUT_SIGNAL, STACK_SIGNAL, truncate

_PARK_S = 60.0  # how long a test over its limit waits to be killed before it exits
_PARKED_EXIT_CODE = 70

# Taken at import, when ``-p`` loads the plugin (which imports this module): pytest
# has not yet pointed fd 2 at its capture file, so this is the process's log, where
# the stack dump belongs.
_STACK_FD: int | None = None
with contextlib.suppress(OSError):
    _STACK_FD = os.dup(2)


def _park() -> None:
    """Hold the main thread until the runner's SIGKILL; exit should it never come."""
    until = time.monotonic() + _PARK_S
    while time.monotonic() < until:
        time.sleep(0.5)
    os._exit(_PARKED_EXIT_CODE)


class InFlightTest:
    """The test in flight and its phase (a pytest plugin), and what the process sends
    of it when the runner signals that it is over its time limit.

    ``write`` writes one pipe line whole, inside :meth:`holding_signal`; ``index_of``
    gives a test's position in the shard's order (-1: none).
    """

    def __init__(
        self,
        config: pytest.Config,
        limit_bytes: int,
        write: Callable[[bytes], None],
        index_of: Callable[[str], int],
    ) -> None:
        self.config = config
        self.limit_bytes = limit_bytes
        self.write = write
        self.index_of = index_of
        self.item: pytest.Item | None = None  # the test in flight
        self.phase = "setup"
        self.writing = False
        self.output_wanted = False

    def install(self) -> None:
        """Answer the runner's two stop signals from now on."""
        if _STACK_FD is not None:
            faulthandler.register(STACK_SIGNAL, file=_STACK_FD, all_threads=True)
        signal.signal(OUTPUT_SIGNAL, self.on_output_signal)

    @contextlib.contextmanager
    def holding_signal(self) -> Iterator[None]:
        """Around the writing of one pipe line: the output signal waits for its end."""
        self.writing = True
        try:
            yield
        finally:
            self.writing = False
        if self.output_wanted:
            self._send_output()

    def on_output_signal(self, signum: int, frame: FrameType | None) -> None:
        """The runner wants the in-flight test's output: it is over its time limit."""
        if self.writing:
            # A signal handler runs between any two bytecodes: finish the line being
            # written first, or the two would interleave on the pipe.
            self.output_wanted = True
            return
        self._send_output()

    def _send_output(self) -> None:
        self.output_wanted = False
        item = self.item
        index = self.index_of(item.nodeid) if item is not None else -1
        self.write(pipe.encode_output(index, self._output_so_far(item)))
        _park()  # the runner kills the process on that line: the test must not go on

    def _output_so_far(self, item: pytest.Item | None) -> str | None:
        capman = self.config.pluginmanager.getplugin("capturemanager")
        if item is None or capman is None or not capman.is_globally_capturing():
            return None  # under -s, the output went to the log, which the runner has
        try:
            sections = [(when, key, text) for when, key, text in item._report_sections]
            out, err = capman.read_global_capture()
            sections += [(self.phase, "stdout", out), (self.phase, "stderr", err)]
            fixture = capman._capture_fixture
            if fixture is not None:
                out, err = fixture.readouterr()
                sections += [(self.phase, "stdout", out), (self.phase, "stderr", err)]
        except Exception:
            # The handler may have interrupted pytest's capture machinery itself.
            return None
        text = "".join(
            f"--- Captured {key} {when} ---\n{content}\n"
            for when, key, content in sections
            if content
        )
        return truncate(text, self.limit_bytes)

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        self.item, self.phase = item, "setup"

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_call(self, item: pytest.Item) -> None:
        self.phase = "call"

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_teardown(self, item: pytest.Item, nextitem: pytest.Item | None) -> None:
        self.phase = "teardown"
