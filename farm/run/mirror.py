"""The commit a server-triggered run tests, fetched by the conductor itself.

A *mirror* is a bare repository kept per repository URL under
``<cache_dir>/mirrors/<key>/``, where the key is the first 16 hex digits of the
sha256 of the URL as git is given it (never the URL itself in a path). A
*checkout* is a local clone of one commit from a mirror in a new folder: a work
tree with a ``.git`` whose detached ``HEAD`` is the commit and whose ``origin`` is
the repository's URL without credentials, so ``farm run``'s reading of the change
from git and its packing of the git work tree work there unchanged. The clone
hard-links the mirror's object files (copies them across file systems): it shares
no state with the mirror afterwards and is removed with its folder.

Credentials (a token, or the user info of an https URL) reach git only through its
environment, as an ``Authorization`` header scoped to the URL's host: never its
argv (``/proc/<pid>/cmdline`` is world-readable), the mirror's config or the
checkout. The https URL git is given, and every message, holds no user info.

Two conductors may fetch one repository at once: everything that writes a
mirror, and the clone from it, runs under a file lock per mirror (``flock``), and
git's own housekeeping after a fetch runs in the foreground, inside the lock.
Commits fetched for a checkout stay reachable (``refs/farm/<sha>``), so that
housekeeping never drops them. Mirrors are never evicted; submodules and Git LFS
content are not fetched (LFS files stay pointers).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from farm.core import defaults
from farm.core.errors import CommitNotFound, InfrastructureError
from farm.core.trigger import FULL_SHA
from farm.run.git_remote import (
    Remote,
    commit_sha,
    parse_remote,
    run_git,
    said,
    verb,
)

_KEY_HEX = 16
_LOCK_POLL_S = (
    0.05  # What a mirror fetches when the server will not send a commit asked for by sha:
)
# branches, tags, and the heads of GitHub's pull and GitLab's merge requests.
_ALL_REFS = (
    "+refs/heads/*:refs/heads/*",
    "+refs/tags/*:refs/tags/*",
    "+refs/pull/*/head:refs/pull/*/head",
    "+refs/merge-requests/*/head:refs/merge-requests/*/head",
)
# Set in every mirror: housekeeping after a fetch runs before the fetch returns (in
# the lock), not in a background process that repacks while a clone links files.
_MIRROR_CONFIG = (("gc.autoDetach", "false"), ("maintenance.autoDetach", "false"))


def remote_heads(
    url: str,
    *,
    token: str = "",
    token_user: str = "",
    timeout_s: float = defaults.GIT_FETCH_TIMEOUT_S,
    environ: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The branches of the repository at ``url``: branch name -> commit sha."""
    remote = parse_remote(url, token=token, token_user=token_user)
    args = ["ls-remote", "--heads", "--", remote.url]
    env = os.environ if environ is None else environ
    code, out, err = run_git(args, remote, cwd=Path("/"), environ=env, timeout_s=timeout_s)
    if code != 0:
        problem = said(err, remote)
        raise InfrastructureError(f"cannot list the branches of {remote.name}: {problem}")
    heads: dict[str, str] = {}
    for line in out.splitlines():
        sha, _, ref = line.partition("\t")
        if ref.startswith("refs/heads/") and FULL_SHA.fullmatch(sha):
            heads[ref[len("refs/heads/") :]] = sha
    return heads


@dataclass(frozen=True)
class Checkout:
    """A work tree of commit ``sha`` at ``path``, inside ``folder``, which close removes."""

    path: Path
    sha: str
    repository: str  # host/path
    folder: Path

    def close(self) -> None:
        """Remove the checkout's folder (again: nothing)."""
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> Checkout:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class Mirrors:
    """The mirrors under ``<cache_dir>/mirrors``, and checkouts of commits from them.

    ``timeout_s`` bounds each git call over the network, ``local_timeout_s`` each
    one on local disk, ``lock_wait_s`` the wait for another process using a
    mirror. ``environ`` (default: the process's, when git runs) is the
    environment git runs in, less its ``GIT_*`` variables.
    """

    def __init__(
        self,
        cache_dir: Path,
        *,
        timeout_s: float = defaults.GIT_FETCH_TIMEOUT_S,
        local_timeout_s: float = defaults.GIT_LOCAL_TIMEOUT_S,
        lock_wait_s: float = defaults.MIRROR_LOCK_WAIT_S,
        clock: Callable[[], float] = time.monotonic,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.root = cache_dir.absolute() / "mirrors"  # git runs in it
        self._timeout_s = timeout_s
        self._local_timeout_s = local_timeout_s
        self._lock_wait_s = lock_wait_s
        self._clock = clock
        self._environ = environ

    def mirror_path(self, url: str) -> Path:
        """The mirror of ``url`` (which need not exist yet)."""
        return self.root / _key(parse_remote(url))

    def checkout(
        self, url: str, sha: str, *, token: str = "", token_user: str = "", dest_parent: Path,
        folder: Path | None = None,
    ) -> Checkout:  # fmt: skip
        """Check commit ``sha`` of ``url`` out into a new folder under ``dest_parent``,
        or into ``folder`` (made anew: what is there is removed; the caller owns it).

        Fetches into the mirror only when it lacks the commit. Raises UsageError for
        a bad URL or sha, CommitNotFound for a commit the repository does not have,
        InfrastructureError when git cannot reach it or fails.
        """
        sha = commit_sha(sha)
        remote = parse_remote(url, token=token, token_user=token_user)
        mirror = self.root / _key(remote)
        dest_parent.mkdir(parents=True, exist_ok=True)
        if folder is None:
            prefix = f"checkout-{sha[:12]}-"
            folder = Path(tempfile.mkdtemp(prefix=prefix, dir=dest_parent.absolute()))
        else:
            folder = folder.absolute()
            shutil.rmtree(folder, ignore_errors=True)  # what a dead conductor left
            folder.mkdir(parents=True, mode=0o700)
        path = folder / _folder_name(remote)
        try:
            with self._locked(mirror.with_name(mirror.name + ".lock"), remote):
                self._ensure_mirror(mirror, remote, sha)
                self._fetch(mirror, remote, sha)
                self._local(["clone", "--quiet", "--no-checkout", "--", str(mirror), str(path)])
            self._local(["-C", str(path), "config", "remote.origin.url", remote.url])
            self._local(["-C", str(path), "checkout", "--quiet", "--detach", sha])
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return Checkout(path=path, sha=sha, repository=remote.name, folder=folder)

    def _ensure_mirror(self, mirror: Path, remote: Remote, sha: str) -> None:
        if (mirror / "HEAD").is_file():
            return
        for leftover in self.root.glob(f".{mirror.name}-*"):  # of a process that died
            shutil.rmtree(leftover, ignore_errors=True)
        fresh = Path(tempfile.mkdtemp(prefix=f".{mirror.name}-", dir=self.root))
        sha256 = ["--object-format=sha256"] if len(sha) == 64 else []
        self._local(["init", "--quiet", "--bare", *sha256, str(fresh)])
        for key, value in (("remote.origin.url", remote.url), *_MIRROR_CONFIG):
            self._local(["--git-dir", str(fresh), "config", key, value])
        fresh.rename(mirror)

    def _fetch(self, mirror: Path, remote: Remote, sha: str) -> None:
        """Make sure ``mirror`` has commit ``sha``, fetching it if not."""
        if self._has_commit(mirror, sha):
            return
        fetch = ["--git-dir", str(mirror), "fetch", "--quiet", "--no-tags", "origin"]
        # Forges and git (protocol v2) send a reachable commit asked for by sha; a
        # server that will not gets asked for all its branches and requests.
        code, _, _ = self.run_git([*fetch, sha], remote)
        if code != 0:
            code, _, err = self.run_git([*fetch, *_ALL_REFS], remote)
            if code != 0:
                raise InfrastructureError(f"cannot fetch {remote.name}: {said(err, remote)}")
        if not self._has_commit(mirror, sha):
            raise CommitNotFound(f"commit {sha[:12]} is not in {remote.name}")
        self._local(["--git-dir", str(mirror), "update-ref", f"refs/farm/{sha}", sha])

    def _has_commit(self, mirror: Path, sha: str) -> bool:
        code, out, _ = self.run_git(["--git-dir", str(mirror), "cat-file", "-t", sha])
        return code == 0 and out.strip() == "commit"

    def _local(self, args: list[str]) -> None:
        code, _, err = self.run_git(args)
        if code != 0:
            raise InfrastructureError(f"git {verb(args)} failed: {said(err, None)}")

    def run_git(self, args: list[str], remote: Remote | None = None) -> tuple[int, str, str]:
        """``git ARGS``: over the network for a remote, else on local disk only."""
        return run_git(
            args,
            remote,
            cwd=self.root,
            environ=os.environ if self._environ is None else self._environ,
            timeout_s=self._local_timeout_s if remote is None else self._timeout_s,
        )

    @contextlib.contextmanager
    def _locked(self, lock_path: Path, remote: Remote) -> Iterator[None]:
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            deadline = self._clock() + self._lock_wait_s
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if self._clock() >= deadline:
                        raise InfrastructureError(
                            f"the mirror of {remote.name} stayed locked for "
                            f"{self._lock_wait_s:g} s: another fetch of it is stuck"
                        ) from None
                    time.sleep(_LOCK_POLL_S)
            yield
        finally:
            os.close(fd)  # which releases the lock


def _key(remote: Remote) -> str:
    return hashlib.sha256(remote.url.encode()).hexdigest()[:_KEY_HEX]


def _folder_name(remote: Remote) -> str:
    """The checkout's folder: the repository's last name, as a clone would call it."""
    last = remote.name.rstrip("/").rsplit("/", 1)[-1]
    name = re.sub(r"[^A-Za-z0-9._-]", "_", last).lstrip(".")
    return name or "repository"


__all__ = [
    "Checkout",
    "Mirrors",
    "remote_heads",
]
