"""Signals that stop ``farm run`` as Ctrl-C does.

A CI job's timeout sends SIGTERM, a closed terminal SIGHUP. Within
:func:`interrupt_on_signals` they and SIGINT raise :class:`SignalInterrupt` in the
main thread: a KeyboardInterrupt, which the run handles as Ctrl-C (``_finish`` in
:mod:`farm.run.conduct`), so the run is recorded as interrupted and what it started is
stopped on the way out. The command then ends with :func:`interrupted`, one line
naming the signal and exit code 2.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator, Sequence

from farm.core.errors import Interrupted

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class SignalInterrupt(KeyboardInterrupt):
    """Raised in the main thread when a signal asks ``farm run`` to stop."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)


@contextlib.contextmanager
def interrupt_on_signals() -> Iterator[list[int]]:
    """Within: each of :data:`STOP_SIGNALS` raises :class:`SignalInterrupt`.

    Yields the signals received, in order; the previous handlers are back after.
    Each signal raises again: the run's children die with it anyway (farm.core.lifeline).
    """
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received  # only the main thread may set handlers (embedding callers)
        return

    def interrupt(signum: int, _frame: object) -> None:
        received.append(signum)
        raise SignalInterrupt(signum)

    previous = {signum: signal.signal(signum, interrupt) for signum in STOP_SIGNALS}
    try:
        yield received
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def interrupted(received: Sequence[int]) -> Interrupted:
    """The error that ends an interrupted command, naming the first signal received.

    Not a KeyboardInterrupt: click would print a blank line before it.
    """
    if not received:
        return Interrupted("interrupted")
    return Interrupted(f"interrupted by {signal.Signals(received[0]).name}")
