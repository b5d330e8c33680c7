"""Every shard's coverage data of one run, merged into one data file as it arrives.

The session hands each :class:`~farm.core.messages.ShardCoverage` it accepted (under
the shard's current lease: see :mod:`farm.scheduler.coverage_debt`) to
:meth:`CoverageCombiner.add`, which merges it at once into a coverage.py data file
in a folder of the run's own, so the submitter's memory stays bounded however many
shards there are.

Merging is a union of line numbers (and of arcs, under ``--cov-branch``) per file,
with no counts: the data of a test that ran twice (a retry, a repeat of a new test,
a test a reissued shard ran again) adds nothing it did not already add, exactly
as the line ran once or ten times under pytest.

Paths: a worker measured files in the tree it ran the shard in. The paths under its
``root`` name the same files under the submitter's tree (a snapshot unpacks
elsewhere on another machine; local workers share the submitter's disk, where the
two roots are one). Paths outside it (installed packages) are kept as they are.

The data comes from test processes, which run the suite's code: it is loaded
through a guarded SQLite connection that can create tables and indexes and insert
rows, nothing else (no ``ATTACH``, so no file of the submitter's is touched), and
that database, dumped again, is what coverage.py reads.
"""

from __future__ import annotations

import base64
import binascii
import os
import shutil
import sqlite3
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from farm.core import defaults
from farm.core.messages import ShardCoverage

if TYPE_CHECKING:
    from coverage import CoverageData

_EXPANSION = 50  # a data dump deflates this much at most; more is refused
_ALLOWED = frozenset(
    {
        sqlite3.SQLITE_CREATE_TABLE,
        sqlite3.SQLITE_CREATE_INDEX,
        sqlite3.SQLITE_INSERT,
        sqlite3.SQLITE_UPDATE,  # of sqlite_master, as tables are made
        sqlite3.SQLITE_READ,
        sqlite3.SQLITE_SELECT,
        sqlite3.SQLITE_TRANSACTION,
    }
)


class UnreadableCoverage(ValueError):
    """Coverage data that cannot be read back safely."""


def path_mapper(worker_root: str, local_root: str) -> Callable[[str], str]:
    """Map a path under ``worker_root`` to the same place under ``local_root``;
    leave any other path as it is."""
    worker = worker_root.rstrip(os.sep)
    local = local_root.rstrip(os.sep)

    def mapped(path: str) -> str:
        if not worker or worker == local:
            return path
        if path == worker:
            return local
        if path.startswith(worker + os.sep):
            return local + path[len(worker) :]
        return path

    return mapped


def load_untrusted(blob: bytes, *, limit_bytes: int) -> CoverageData:
    """The coverage data ``blob`` (``CoverageData.dumps``), read without trusting it.

    Raises :class:`UnreadableCoverage` for anything but a dump of tables and rows
    that expands to at most ``_EXPANSION`` times ``limit_bytes``.
    """
    from coverage import CoverageData

    if blob[:1] != b"z":
        raise UnreadableCoverage("not coverage data")
    inflater = zlib.decompressobj()
    try:
        script = inflater.decompress(blob[1:], limit_bytes * _EXPANSION)
        text = script.decode("utf-8")
    except (zlib.error, UnicodeDecodeError) as e:
        raise UnreadableCoverage(f"corrupt coverage data: {e}") from None
    if inflater.unconsumed_tail:
        raise UnreadableCoverage("coverage data expands past its limit")
    connection = sqlite3.connect(":memory:")
    try:
        connection.set_authorizer(_tables_and_rows_only)
        connection.executescript(text)
        connection.set_authorizer(None)
        clean = "\n".join(connection.iterdump())
    except sqlite3.Error as e:
        raise UnreadableCoverage(f"coverage data refused: {e}") from None
    finally:
        connection.close()
    data = CoverageData(no_disk=True)
    data.loads(b"z" + zlib.compress(clean.encode("utf-8")))
    return data


def _tables_and_rows_only(action: int, *args: object) -> int:
    return sqlite3.SQLITE_OK if action in _ALLOWED else sqlite3.SQLITE_DENY


class CoverageCombiner:
    """One run's coverage data, merged on disk in ``folder`` (made here, removed by
    :meth:`close`); ``local_root`` is the submitter's tree, where workers' roots map."""

    def __init__(
        self,
        folder: Path,
        *,
        local_root: str,
        limit_bytes: int = defaults.COVERAGE_LIMIT_BYTES,
    ) -> None:
        from coverage import CoverageData

        self.folder = folder
        folder.mkdir(parents=True, exist_ok=False)
        self.local_root = os.path.realpath(local_root)
        self.limit_bytes = limit_bytes
        self.data = CoverageData(basename=str(folder / "run.coverage"))
        self.platforms: list[str] = []
        self._lost: list[str] = []

    @property
    def lost(self) -> str:
        """Why some data that arrived could not be merged ("" when all of it was)."""
        return "; ".join(self._lost)

    def add(self, event: ShardCoverage) -> None:
        """Merge the data of one shard; data that cannot be read is noted as lost."""
        from coverage.exceptions import CoverageException

        for platform in event.platforms:
            if platform not in self.platforms:
                self.platforms.append(platform)
        mapped = path_mapper(event.root, self.local_root)
        size_bytes = 0
        for part in event.parts:
            try:
                blob = base64.b64decode(part, validate=True)
                size_bytes += len(blob)
                if size_bytes > self.limit_bytes:
                    raise UnreadableCoverage(f"over the limit of {self.limit_bytes} bytes")
                self.data.update(load_untrusted(blob, limit_bytes=self.limit_bytes), mapped)
            except (binascii.Error, UnreadableCoverage, CoverageException, sqlite3.Error) as e:
                self._lost.append(f"shard {event.shard_id}: {e}")
                return

    def close(self) -> None:
        self.data.close()
        shutil.rmtree(self.folder, ignore_errors=True)
