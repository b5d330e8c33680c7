"""Stable folders for the checkouts of server-triggered runs.

``farm run``'s collection cache is keyed by the folder a run starts in, so a run in a
new temporary folder each time would always collect first. A triggered run's
checkout goes instead into a *slot*: ``<root>/<repository key>/<n>``, ``n`` the first
slot no other conductor holds (an ``flock`` on ``<n>.lock``, released when the run
ends, or by the kernel when its conductor dies). A repository tested by at most N
conductors at once keeps N folders, and the runs in each start from the collection
of the run before them, as a developer's repeated ``farm run`` in one clone does.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import itertools
from collections.abc import Iterator
from pathlib import Path

_KEY_HEX = 16


@contextlib.contextmanager
def checkout_slot(root: Path, repository: str) -> Iterator[Path]:
    """Hold the first free slot of ``repository`` under ``root``; yield its folder
    (which may hold a checkout of an earlier run, or not exist)."""
    base = root / hashlib.sha256(repository.encode()).hexdigest()[:_KEY_HEX]
    base.mkdir(parents=True, exist_ok=True)
    for number in itertools.count():
        lock = open(base / f"{number}.lock", "a")  # noqa: SIM115 - held for the slot's life
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            continue
        try:
            yield base / str(number)
        finally:
            lock.close()
        return


__all__ = ["checkout_slot"]
