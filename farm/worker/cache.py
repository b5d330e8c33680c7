"""A worker's cache of unpacked code snapshots, one folder per digest, evicted LRU.

``<root>/<digest>`` exists only complete: a tree is unpacked into a temporary
folder and renamed into place, so when two processes add the same digest one
rename wins and the other discards its copy. Sizes and use order live in
``<root>/index.json``, read and written under an exclusive ``flock`` on
``<root>/.lock``. Eviction does not know whether another process still runs tests
in a tree; the cache is sized so that a tree in use is never the oldest.

A tree is readable by everyone (``0755`` folders, ``0644`` files under the worker's
umask) and writable by the worker alone, so tests run as another user (see
:mod:`farm.worker.test_user`) read it but cannot change it for later runs. The lock
is the worker's alone: a test holding it would stall every slot.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from farm.artifacts.snapshot import SnapshotError, unpack

_DIGEST = re.compile(r"[0-9a-f]{64}")
_INDEX = "index.json"


def tree_size(path: Path) -> int:
    """The bytes of the files under ``path``, links not followed."""
    total = 0
    for dirpath, _dirnames, filenames in os.walk(path):
        for name in filenames:
            total += os.lstat(os.path.join(dirpath, name)).st_size
    return total


class SnapshotCache:
    """Unpacked snapshots under ``root``, at most ``max_bytes`` besides the newest."""

    def __init__(self, root: Path, *, max_bytes: int) -> None:
        self.root = root
        self.max_bytes = max_bytes
        root.mkdir(parents=True, exist_ok=True)

    def path_for(self, digest: str) -> Path | None:
        """The complete tree of ``digest``, marked as just used, or None when not cached."""
        path = self.root / _check(digest)
        with self._index() as index:
            if not path.is_dir():
                index["trees"].pop(digest, None)
                return None
            self._touch(index, digest, path)
        with contextlib.suppress(OSError):
            if path.stat().st_mode & 0o777 != 0o755:  # unpacked by a farm that left it private
                path.chmod(0o755)
        return path

    def add(self, digest: str, archive: Path, max_unpacked_bytes: int) -> Path:
        """Unpack ``archive`` (verified against ``digest``) into the cache and evict old trees."""
        path = self.root / _check(digest)
        if not path.is_dir():
            tmp = Path(tempfile.mkdtemp(prefix=".add-", dir=self.root))
            try:
                unpack(archive, tmp / "tree", expected_digest=digest, max_bytes=max_unpacked_bytes)
                (tmp / "tree").chmod(0o755)  # unpacked in a private folder, shared now
                with contextlib.suppress(OSError):  # another process renamed it first
                    os.rename(tmp / "tree", path)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
            if not path.is_dir():
                raise SnapshotError(f"cannot place snapshot {digest} in {self.root}")
        with self._index() as index:
            self._touch(index, digest, path)
            self._evict(index, keep=digest)
        return path

    def _touch(self, index: dict[str, Any], digest: str, path: Path) -> None:
        index["clock"] += 1
        entry = index["trees"].get(digest)
        if entry is None:
            entry = index["trees"][digest] = {"size": tree_size(path)}
        entry["used"] = index["clock"]

    def _evict(self, index: dict[str, Any], *, keep: str) -> None:
        trees: dict[str, dict[str, int]] = index["trees"]
        total = sum(t["size"] for t in trees.values())
        for digest in sorted(trees, key=lambda d: trees[d]["used"]):
            if total <= self.max_bytes:
                break
            if digest == keep:
                continue
            total -= trees.pop(digest)["size"]
            trash = Path(tempfile.mkdtemp(prefix=".evict-", dir=self.root))
            with contextlib.suppress(FileNotFoundError):
                os.rename(self.root / digest, trash / "tree")
            shutil.rmtree(trash, ignore_errors=True)

    @contextlib.contextmanager
    def _index(self) -> Iterator[dict[str, Any]]:
        """The index, locked for this process, written back when the block ends."""
        fd = os.open(self.root / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        with os.fdopen(fd, "r+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            index_path = self.root / _INDEX
            try:
                index: dict[str, Any] = json.loads(index_path.read_text())
                index["trees"] = {d: t for d, t in index["trees"].items() if _DIGEST.fullmatch(d)}
                index["clock"] = int(index["clock"])
            except (OSError, ValueError, KeyError, TypeError, AttributeError):
                index = {"clock": 0, "trees": {}}  # missing or damaged: rebuilt as trees are used
            yield index
            fd, tmp = tempfile.mkstemp(prefix=".index-", dir=self.root)
            with os.fdopen(fd, "w") as f:
                json.dump(index, f, sort_keys=True)
            os.replace(tmp, index_path)


def _check(digest: str) -> str:
    if not _DIGEST.fullmatch(digest):
        raise SnapshotError(f"not a snapshot digest: {digest!r}")
    return digest
