"""Publishing the code a run tests: pack the tree once, upload it once, name it by digest.

The submitter packs its project (see :mod:`farm.artifacts.snapshot`) and puts the archive in
the artifact store (see :mod:`farm.artifacts`) unless an earlier run already did:
the digest names the content, so an unchanged tree is neither uploaded nor
fetched again. The tree packed is the git work tree holding the suite (its tracked
and untracked-not-ignored files, or commit ``rev``), or else the suite's pytest
rootdir. Shards then name their rootdir and ini file relative to that tree.

For ``--rev``, the submitter also unpacks the commit into ``<state_dir>/checkouts``
and collects the suite there: the commit's tests, not the working tree's.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import redis

from farm.artifacts import ArtifactStore, open_artifacts
from farm.artifacts.snapshot import git_toplevel, pack, unpack
from farm.core.domain import CodeInfo
from farm.core.errors import UsageError
from farm.core.settings import Settings, make_state_dir

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CodeRef:
    """A published snapshot: ``root`` is the folder it holds, on the submitter."""

    digest: str
    location: str
    root: Path
    local_root: Path  # where the submitter sees the packed files: root, or a checkout
    size_bytes: int
    uploaded_bytes: int
    pack_s: float
    upload_s: float
    archive: Path  # the submitter's copy, kept for the run: see republish

    def info(self) -> CodeInfo:
        """What the reports say of the snapshot."""
        return CodeInfo(
            self.digest, self.size_bytes, self.uploaded_bytes, self.pack_s, self.upload_s
        )


def snapshot_root(cwd: Path, rootdir: Path | None) -> Path:
    """What to pack: the git work tree of ``cwd``, else the suite's rootdir."""
    top = git_toplevel(cwd)
    if top is not None:
        return top
    if rootdir is None:
        raise UsageError(f"--rev needs a git work tree; {cwd} is not in one")
    return rootdir.resolve()


def publish(
    root: Path, *, settings: Settings, client: redis.Redis, rev: str | None = None
) -> CodeRef:
    """Pack ``root`` (or its commit ``rev``) and make sure the artifact store has it."""
    started = time.monotonic()
    scratch = make_state_dir(settings.state_dir) / "snapshots"
    snapshot = pack(root, scratch, rev=rev, state_dir_name=settings.state_dir.name)
    done = False
    try:
        packed_s = time.monotonic() - started
        if snapshot.size_bytes > settings.snapshot_max_bytes:
            raise UsageError(
                f"the snapshot of {root} is {snapshot.size_bytes >> 20} MiB packed, over "
                f"snapshot_max_bytes ({settings.snapshot_max_bytes >> 20} MiB); "
                "ignore large files in .gitignore or raise the limit"
            )
        store = _artifacts(settings, client)
        uploaded = 0 if store.has(snapshot.digest) else store.put(snapshot.digest, snapshot.path)
        if rev is not None:
            _checkout(settings, snapshot.path, snapshot.digest)
        done = True
    finally:
        if not done:
            with contextlib.suppress(OSError):
                snapshot.path.unlink()
    return CodeRef(
        digest=snapshot.digest,
        location=store.location,
        root=root.resolve(),
        local_root=checkout_dir(settings, snapshot.digest) if rev is not None else root.resolve(),
        size_bytes=snapshot.size_bytes,
        uploaded_bytes=uploaded,
        pack_s=packed_s,
        upload_s=time.monotonic() - started - packed_s,
        archive=snapshot.path,
    )


def republish(code: CodeRef, *, settings: Settings, client: redis.Redis) -> None:
    """Put the run's archive back in a store that lost it (Redis restarted empty)."""
    store = _artifacts(settings, client)
    if not store.has(code.digest):
        store.put(code.digest, code.archive)


def _artifacts(settings: Settings, client: redis.Redis) -> ArtifactStore:
    return open_artifacts(
        settings.artifacts,
        redis_client=client,
        key_prefix=settings.key_prefix,
        ttl_s=settings.run_ttl_s,
    )


def discard(code: CodeRef) -> None:
    """Remove the submitter's copy of the archive once the run is over."""
    with contextlib.suppress(OSError):
        code.archive.unlink()


def checkout_dir(settings: Settings, digest: str) -> Path:
    return (settings.state_dir / "checkouts" / digest).resolve()


def _checkout(settings: Settings, archive: Path, digest: str) -> None:
    dest = checkout_dir(settings, digest)
    if dest.is_dir():
        return
    # Old checkouts are of other commits; one is enough to keep the folder small.
    for old in dest.parent.glob("*") if dest.parent.is_dir() else ():
        shutil.rmtree(old, ignore_errors=True)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent) as tmp:
        tree = Path(tmp) / "tree"
        unpack(archive, tree, expected_digest=digest, max_bytes=settings.snapshot_max_bytes)
        tree.rename(dest)


def relative_to_code(code: CodeRef, path: str, what: str) -> str:
    """``path`` (a rootdir or ini file on the submitter) relative to the packed tree."""
    if not path:
        return ""
    try:
        return Path(path).resolve().relative_to(code.local_root).as_posix()
    except ValueError:
        raise UsageError(
            f"the suite's {what} {path} lies outside the snapshot of {code.local_root}; "
            "run farm from inside the project"
        ) from None
