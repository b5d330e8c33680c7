"""Artifacts in a folder every machine mounts (NFS, a shared volume), or a local one.

``<root>/<digest[:2]>/<digest>.tar.gz``: the two-letter level keeps folders small
when thousands of snapshots accumulate. An upload is written to a temporary file in
the artifact's own folder and renamed over it, so a reader on any machine sees the
whole file or none, and two submitters of the same digest both succeed. A folder
has no expiry of its own; :meth:`DirArtifacts.has` refreshes the file's mtime, so
an external clean-up by age (``find -mtime``) spares snapshots still in use.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Generator
from pathlib import Path

from farm.artifacts.base import (
    CHUNK_BYTES,
    ArtifactError,
    ArtifactMissing,
    ChunkedStore,
    check_digest,
    one_line,
    read_verified,
)

# A temporary file this old was left by a killed uploader: no upload takes a day.
_STALE_TMP_S = 24 * 3600


class DirArtifacts(ChunkedStore):
    """Artifacts under ``root``, which is made on the first upload, not on opening."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.location = str(root)

    def path_for(self, digest: str) -> Path:
        digest = check_digest(digest, self.location)
        return self.root / digest[:2] / f"{digest}.tar.gz"

    def has(self, digest: str) -> bool:
        path = self.path_for(digest)
        if not path.is_file():
            return False
        with contextlib.suppress(OSError):  # a read-only mount still serves the artifact
            os.utime(path)
        return True

    def put(self, digest: str, path: Path) -> int:
        target = self.path_for(digest)
        if self.has(digest):
            return 0
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{digest}.", suffix=".tmp", dir=target.parent)
        except OSError as e:
            raise ArtifactError(
                f"artifact store {self.location}: cannot store {digest}: {one_line(e)}"
            ) from e
        try:
            size = 0
            with os.fdopen(fd, "wb") as out:
                os.fchmod(out.fileno(), 0o644)  # workers may read as another user
                for chunk in read_verified(path, digest, self.location):
                    out.write(chunk)
                    size += len(chunk)
                out.flush()
                os.fsync(out.fileno())  # the rename must not publish data still in cache
            os.replace(tmp, target)
        except OSError as e:
            raise ArtifactError(
                f"artifact store {self.location}: cannot store {digest}: {one_line(e)}"
            ) from e
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)  # gone already after a successful rename
        self._sweep(target.parent)
        return size

    def _chunks(self, digest: str, max_bytes: int) -> Generator[bytes, None, None]:
        path = self.path_for(digest)
        try:
            f = open(path, "rb")  # noqa: SIM115 - closed below, also when the reader stops early
        except FileNotFoundError as e:
            raise ArtifactMissing(f"artifact store {self.location} has no {digest}") from e
        except OSError as e:
            raise ArtifactError(
                f"artifact store {self.location}: cannot read {digest}: {one_line(e)}"
            ) from e
        with f:
            while True:
                try:
                    chunk = f.read(CHUNK_BYTES)
                except OSError as e:
                    raise ArtifactError(
                        f"artifact store {self.location}: cannot read {digest}: {one_line(e)}"
                    ) from e
                if not chunk:
                    return
                yield chunk

    def _sweep(self, folder: Path) -> None:
        """Remove temporary files killed uploaders left in ``folder``."""
        cutoff = time.time() - _STALE_TMP_S
        with contextlib.suppress(OSError):
            for leftover in folder.glob(".*.tmp"):
                with contextlib.suppress(OSError):
                    if leftover.stat().st_mtime < cutoff:
                        leftover.unlink()
