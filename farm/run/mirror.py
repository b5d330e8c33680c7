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

import base64
import contextlib
import fcntl
import hashlib
import ipaddress
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from farm.core import defaults
from farm.core.errors import CommitNotFound, InfrastructureError, UsageError
from farm.core.repository_names import repository_name
from farm.core.urls import MASK, mask_url

_SHA = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")
_KEY_HEX = 16
_LOCK_POLL_S = 0.05
# The user name a forge expects beside a token in HTTP basic authentication, by a
# word of its host name; GitHub's (any other host) is the default.
_TOKEN_USERS = (("gitlab", "oauth2"), ("bitbucket", "x-token-auth"))
DEFAULT_TOKEN_USER = "x-access-token"
# What a mirror fetches when the server will not send a commit asked for by sha:
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


@dataclass(frozen=True)
class Remote:
    """A repository URL as git is given it, with its credentials kept apart.

    ``url`` has no user info (an https URL) or is an absolute path (a local
    repository); ``name`` is its ``host/path``; ``username`` and ``secret`` go
    into the ``Authorization`` header of requests to ``origin``
    (``scheme://host[:port]/``); ``hidden`` are the texts no message may show.
    """

    url: str
    name: str
    local: bool = False
    origin: str = ""
    username: str = field(default="", repr=False)
    secret: str = field(default="", repr=False)
    hidden: tuple[str, ...] = field(default=(), repr=False)

    def header(self) -> str:
        """The ``Authorization`` header for ``origin``, or "" without credentials."""
        return _basic_header(self.username, self.secret)

    def hide(self, text: str) -> str:
        """``text`` with every credential of this remote replaced by ``***``."""
        for value in self.hidden:
            text = text.replace(value, MASK)
        return text


def parse_remote(url: str, *, token: str = "", token_user: str = "") -> Remote:
    """The remote of ``url``: http(s) credentials taken out of it, or ``token`` used.

    ``token_user`` defaults to what the forge of the host expects (``oauth2`` on
    GitLab, ``x-access-token`` elsewhere). A token applies to http(s) URLs only;
    plain http carries credentials only to a loopback host. Raises UsageError for
    what is not a repository URL (empty, starting with ``-``, a remote-helper
    ``transport::address``, spaces or control characters).
    """
    text = url.strip()
    if (
        not text
        or text.startswith("-")
        or "::" in text.split("/", 1)[0]
        or any(ch.isspace() or ord(ch) < 32 for ch in text)
    ):
        raise UsageError(f"{_shown(text)!r} is not a repository URL")
    scheme = text.split("://", 1)[0].lower() if "://" in text else ""
    if scheme in ("http", "https"):
        return _http_remote(text, scheme, token, token_user)
    if scheme == "file":
        return Remote(url=text, name=repository_name(text), local=True)
    if scheme or re.match(r"^[^/]{2,}:", text):
        return Remote(url=text, name=repository_name(text))  # ssh, git: keys, not tokens
    path = str(Path(text).resolve())
    return Remote(url=path, name=repository_name(path), local=True)


def _http_remote(text: str, scheme: str, token: str, token_user: str) -> Remote:
    try:
        parts = urllib.parse.urlsplit(text)
        host = parts.hostname or ""
        parts.port  # noqa: B018  (raises ValueError for a port that is not a number)
    except ValueError as exc:
        raise UsageError(f"{_shown(text)!r} is not a repository URL ({exc})") from None
    if not host:
        raise UsageError(f"{_shown(text)!r} is not a repository URL (no host)")
    netloc = parts.netloc.rpartition("@")[2]
    clean = f"{scheme}://{netloc}{parts.path}"  # no query: forges put tokens there too
    hidden: list[str] = []
    if token:
        username = token_user or _token_user(host)
        secret = token
    else:
        username = urllib.parse.unquote(parts.username or "")
        secret = urllib.parse.unquote(parts.password or "")
        hidden += [parts.username or "", username]  # a user name alone may be a token
    name = repository_name(clean)
    header = _basic_header(username, secret)
    if header and scheme == "http" and not _loopback(host):
        raise UsageError(f"refusing to send credentials for {name} over plain http")
    hidden += [secret, parts.password or "", header.rpartition(" ")[2]]
    return Remote(
        url=clean,
        name=name,
        origin=f"{scheme}://{netloc}/",
        username=username,
        secret=secret,
        hidden=tuple(sorted({value for value in hidden if value}, key=len, reverse=True)),
    )


def _shown(text: str) -> str:
    """A URL that is not one, fit for a message: no user info, nor all of a long one."""
    head, sep, rest = text.partition("://")
    if sep:
        authority, slash, path = rest.partition("/")
        text = mask_url(f"{head}://{authority.rpartition('@')[2]}{slash}{path}")
    return text if len(text) <= 100 else text[:97] + "..."


def _basic_header(username: str, secret: str) -> str:
    if not (username or secret):
        return ""
    pair = base64.b64encode(f"{username}:{secret}".encode()).decode("ascii")
    return f"Authorization: Basic {pair}"


def _token_user(host: str) -> str:
    users = (user for word, user in _TOKEN_USERS if word in host.lower())
    return next(users, DEFAULT_TOKEN_USER)


def _loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def git_command(
    args: Sequence[str], remote: Remote | None, environ: Mapping[str, str]
) -> tuple[list[str], dict[str, str]]:
    """The argv and environment that run ``git ARGS`` for ``remote``.

    The environment is ``environ`` without its ``GIT_*`` variables, with no prompt
    and no credential helper (nothing asks for or keeps a password), no hooks, C
    messages, and protocols of user-given URLs limited to git's safe ones. The
    local protocol is allowed for local remotes and for no remote (a clone from a
    mirror); credentials become a header for the remote's origin, in the
    environment only.
    """
    env = {key: value for key, value in environ.items() if not key.startswith("GIT_")}
    env.update(GIT_TERMINAL_PROMPT="0", GIT_PROTOCOL_FROM_USER="0", GIT_LFS_SKIP_SMUDGE="1")
    env["LC_ALL"] = "C"  # git's messages, which errors quote, in English
    config = [("credential.helper", ""), ("core.hooksPath", os.devnull)]
    if remote is None or remote.local:
        config.append(("protocol.file.allow", "always"))
    if remote is not None and remote.header():
        config.append((f"http.{remote.origin}.extraHeader", remote.header()))
    env["GIT_CONFIG_COUNT"] = str(len(config))
    for index, (key, value) in enumerate(config):
        env[f"GIT_CONFIG_KEY_{index}"] = key
        env[f"GIT_CONFIG_VALUE_{index}"] = value
    return ["git", *args], env


def commit_sha(text: str) -> str:
    """``text`` as a full commit sha (40 or 64 hex digits, lower case), else UsageError."""
    sha = text.strip().lower()
    if not _SHA.match(sha):
        raise UsageError(f"{text.strip()[:80]!r} is not a full commit sha")
    return sha


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
    code, out, err = _git(args, remote, cwd=Path("/"), environ=env, timeout_s=timeout_s)
    if code != 0:
        said = _said(err, remote)
        raise InfrastructureError(f"cannot list the branches of {remote.name}: {said}")
    heads: dict[str, str] = {}
    for line in out.splitlines():
        sha, _, ref = line.partition("\t")
        if ref.startswith("refs/heads/") and _SHA.match(sha):
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
        self, url: str, sha: str, *, token: str = "", token_user: str = "", dest_parent: Path
    ) -> Checkout:
        """Check commit ``sha`` of ``url`` out into a new folder under ``dest_parent``.

        Fetches into the mirror only when it lacks the commit. Raises UsageError for
        a bad URL or sha, CommitNotFound for a commit the repository does not have,
        InfrastructureError when git cannot reach it or fails.
        """
        sha = commit_sha(sha)
        remote = parse_remote(url, token=token, token_user=token_user)
        mirror = self.root / _key(remote)
        dest_parent.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(prefix=f"checkout-{sha[:12]}-", dir=dest_parent.absolute()))
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
        code, _, _ = self._git([*fetch, sha], remote)
        if code != 0:
            code, _, err = self._git([*fetch, *_ALL_REFS], remote)
            if code != 0:
                raise InfrastructureError(f"cannot fetch {remote.name}: {_said(err, remote)}")
        if not self._has_commit(mirror, sha):
            raise CommitNotFound(f"commit {sha[:12]} is not in {remote.name}")
        self._local(["--git-dir", str(mirror), "update-ref", f"refs/farm/{sha}", sha])

    def _has_commit(self, mirror: Path, sha: str) -> bool:
        code, out, _ = self._git(["--git-dir", str(mirror), "cat-file", "-t", sha])
        return code == 0 and out.strip() == "commit"

    def _local(self, args: list[str]) -> None:
        code, _, err = self._git(args)
        if code != 0:
            raise InfrastructureError(f"git {_verb(args)} failed: {_said(err, None)}")

    def _git(self, args: list[str], remote: Remote | None = None) -> tuple[int, str, str]:
        """``git ARGS``: over the network for a remote, else on local disk only."""
        return _git(
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


def _verb(args: Sequence[str]) -> str:
    """The git command of ``args``, past the one global option (with its value) used."""
    return args[2] if args[0] in ("-C", "--git-dir") else args[0]


def _said(stderr: str, remote: Remote | None) -> str:
    """Git's last line of error output, credentials masked."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    text = lines[-1] if lines else "no error message"
    return remote.hide(text) if remote is not None else text


def _git(
    args: Sequence[str],
    remote: Remote | None,
    *,
    cwd: Path,
    environ: Mapping[str, str],
    timeout_s: float,
) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of ``git ARGS``; its process group killed past the
    timeout, which is an InfrastructureError."""
    argv, env = git_command(args, remote, environ)
    try:
        proc = subprocess.Popen(
            argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, start_new_session=True,  # no terminal to prompt on
        )  # fmt: skip
    except OSError as exc:
        raise InfrastructureError(f"cannot run git: {exc.strerror or exc}") from exc
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # git, and the transport it started
        proc.communicate()
        name = remote.name if remote is not None else "a mirror"
        raise InfrastructureError(
            f"git {_verb(args)} of {name} did not finish within {timeout_s:g} s"
        ) from None
    return proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")


__all__ = [
    "DEFAULT_TOKEN_USER",
    "Checkout",
    "Mirrors",
    "Remote",
    "commit_sha",
    "git_command",
    "parse_remote",
    "remote_heads",
]
