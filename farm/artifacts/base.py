"""What every artifact store shares: the errors, the protocol and the verified copy.

Snapshots are uploaded once by the submitter and fetched by digest on workers that
do not share its disk. Nothing a store hands back is trusted: every fetch hashes
the bytes as they arrive, stops as soon as more than the caller's limit arrived,
and renames the file into place only when the digest matches, so a damaged,
swapped or oversize artifact never reaches the unpacker. Every upload hashes the
file it sends too, so an artifact is never published under another file's digest.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Protocol

from farm.core.errors import InfrastructureError

CHUNK_BYTES = 1 << 20
_DIGEST = re.compile(r"[0-9a-f]{64}")


class ArtifactError(InfrastructureError):
    """Raised when an artifact store cannot store or hand back an artifact intact."""


class ArtifactMissing(ArtifactError):
    """Raised when a store does not hold the artifact asked for (never uploaded, or expired)."""


class ArtifactStore(Protocol):
    """Where code snapshots live between the submitter and the workers, by sha256."""

    location: str  # credential-free: safe in messages, tasks and the results store

    def has(self, digest: str) -> bool:
        """Whether the artifact is present and complete; refreshes its expiry if it has one."""
        ...

    def put(self, digest: str, path: Path) -> int:
        """Upload the file at ``path`` (whose sha256 is ``digest``) unless present; bytes sent."""
        ...

    def fetch(self, digest: str, dest: Path, *, max_bytes: int) -> int:
        """Write the artifact, verified, to ``dest`` (absent on any failure); bytes fetched."""
        ...


class ChunkedStore:
    """A store that hands an artifact back as chunks: :meth:`fetch` verifies and writes them.

    Subclasses yield the artifact's chunks from :meth:`_chunks`, lazily (see
    :func:`write_verified`); ``max_bytes`` lets one refuse an oversize artifact
    before reading it.
    """

    location: str

    def fetch(self, digest: str, dest: Path, *, max_bytes: int) -> int:
        return write_verified(
            self._chunks(digest, max_bytes),
            dest,
            digest=digest,
            max_bytes=max_bytes,
            location=self.location,
        )

    def _chunks(self, digest: str, max_bytes: int) -> Generator[bytes, None, None]:
        raise NotImplementedError


def one_line(text: object) -> str:
    """``text`` on one line: errors from servers and libraries may carry newlines."""
    return " ".join(str(text).split())


def check_digest(digest: object, location: str) -> str:
    """``digest`` if it is 64 lowercase hex digits, else ArtifactError: it becomes a key or path."""
    if not isinstance(digest, str) or not _DIGEST.fullmatch(digest):
        raise ArtifactError(f"artifact store {location}: not a sha256 digest: {digest!r}")
    return digest


def read_verified(path: Path, digest: str, location: str) -> Iterator[bytes]:
    """The chunks of ``path``; raises ArtifactError after the last one if its sha256 is not
    ``digest``, so an upload loop fails before it makes its copy visible."""
    sha = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            while chunk := f.read(CHUNK_BYTES):
                sha.update(chunk)
                yield chunk
    except OSError as e:
        raise ArtifactError(
            f"artifact store {location}: cannot read {path} to upload {digest}: {one_line(e)}"
        ) from e
    if sha.hexdigest() != digest:
        raise ArtifactError(
            f"artifact store {location}: refused to upload {path} as {digest}: "
            f"its sha256 is {sha.hexdigest()}"
        )


def write_verified(
    chunks: Generator[bytes, None, None],
    dest: Path,
    *,
    digest: str,
    max_bytes: int,
    location: str,
) -> int:
    """Write ``chunks`` to ``dest`` through a temporary sibling; the byte count.

    The store's generator does all its reading lazily, a missing artifact included,
    so that every failure, wherever it comes from, leaves ``dest`` absent: a stale
    or partial file must never be taken for the artifact.
    """
    sha = hashlib.sha256()
    size = 0
    tmp: str | None = None
    done = False
    try:
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
        except OSError as e:
            raise ArtifactError(
                f"artifact store {location}: cannot write {digest} to {dest}: {one_line(e)}"
            ) from e
        with os.fdopen(fd, "wb") as out:
            for chunk in chunks:
                size += len(chunk)
                if size > max_bytes:
                    raise ArtifactError(
                        f"artifact store {location}: refused {digest}: "
                        f"it is over the limit of {max_bytes} bytes"
                    )
                sha.update(chunk)
                try:
                    out.write(chunk)
                except OSError as e:
                    raise ArtifactError(
                        f"artifact store {location}: cannot write {digest} to {dest}: {one_line(e)}"
                    ) from e
        if sha.hexdigest() != digest:
            raise ArtifactError(
                f"artifact store {location}: {digest} arrived damaged "
                f"(sha256 {sha.hexdigest()}); refused"
            )
        try:
            os.replace(tmp, dest)
        except OSError as e:
            raise ArtifactError(
                f"artifact store {location}: cannot write {digest} to {dest}: {one_line(e)}"
            ) from e
        done = True
        return size
    finally:
        chunks.close()  # let the store release its stream when we stopped early
        if not done:
            for leftover in (tmp, dest):
                if leftover is not None:
                    with contextlib.suppress(OSError):
                        os.unlink(leftover)
