"""Mirrors and checkouts of commits (farm.run.mirror) against real git repositories.

The "remote" is a bare repository in tmp_path that a work clone pushes to, reached
by its path or over git's smart HTTP (``git http-backend`` behind a small loopback
server that wants one ``Authorization`` header). A ``git`` first in the PATH git
runs with logs every command line, so tests can tell which git calls were made
and that no credential was in one.
"""

from __future__ import annotations

import base64
import fcntl
import os
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from helpers import git

from farm.artifacts.snapshot import git_toplevel
from farm.core.errors import CommitNotFound, InfrastructureError
from farm.run.change import change_from_git
from farm.run.mirror import Mirrors, remote_heads

pytestmark = pytest.mark.integration

TOKEN = "s3cret-token-4711"
# What no file and no command line may hold: the token, and the header made of it.
SECRETS = [TOKEN.encode(), base64.b64encode(f"x-access-token:{TOKEN}".encode())]


class Remote:
    """A bare repository at ``url`` and a work clone that commits and pushes to it."""

    def __init__(self, root: Path) -> None:
        self.bare = root / "shop.git"
        self.work = root / "work"
        root.mkdir()
        git(root, "init", "-q", "--bare", "-b", "main", str(self.bare))
        git(root, "init", "-q", "-b", "main", str(self.work))
        git(self.work, "remote", "add", "origin", str(self.bare))

    @property
    def url(self) -> str:
        return str(self.bare)

    def push(self, text: str, branch: str = "main") -> str:
        """Commit ``a.txt`` holding ``text`` on ``branch`` and push it; the sha."""
        git(self.work, "checkout", "-q", "-B", branch)
        (self.work / "a.txt").write_text(text)
        git(self.work, "add", "a.txt")
        git(self.work, "commit", "-q", "-m", text)
        git(self.work, "push", "-q", "--force", "origin", branch)
        return git(self.work, "rev-parse", "HEAD")


@pytest.fixture
def remote(tmp_path: Path) -> Remote:
    return Remote(tmp_path / "remote")


@pytest.fixture
def git_log(tmp_path: Path) -> Path:
    """The file the logging ``git`` appends its command lines to."""
    return tmp_path / "git-argv.log"


@pytest.fixture
def environ(tmp_path: Path, git_log: Path) -> dict[str, str]:
    """The environment for git: a logging ``git`` first in the PATH."""
    folder = tmp_path / "bin"
    folder.mkdir()
    wrapper = folder / "git"
    real = shutil.which("git")
    assert real is not None
    wrapper.write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> "{git_log}"\nexec "{real}" "$@"\n')
    wrapper.chmod(0o755)
    return {**os.environ, "PATH": f"{folder}{os.pathsep}{os.environ.get('PATH', '')}"}


@pytest.fixture
def mirrors(tmp_path: Path, environ: dict[str, str]) -> Mirrors:
    return Mirrors(tmp_path / "cache", environ=environ)


def head_of(path: Path) -> str:
    return git(path, "rev-parse", "HEAD")


def fetches(git_log: Path) -> list[str]:
    lines = git_log.read_text().splitlines() if git_log.exists() else []
    return [line for line in lines if " fetch " in f" {line} "]


def test_checks_out_a_branch_head_as_farm_run_reads_it(
    mirrors: Mirrors, remote: Remote, tmp_path: Path
) -> None:
    sha = remote.push("one")
    with mirrors.checkout(remote.url, sha, dest_parent=tmp_path / "checkouts") as checkout:
        assert (checkout.path / "a.txt").read_text() == "one"
        assert head_of(checkout.path) == sha
        assert checkout.path.name == "shop"
        assert git(checkout.path, "status", "--porcelain") == ""
        # farm run's change detection and snapshot packing see a git work tree.
        assert git_toplevel(checkout.path) == checkout.path.resolve()
        change = change_from_git(checkout.path, {"PATH": os.environ["PATH"]})
        assert change is not None
        assert (change.repository, change.commit_sha) == (remote.url.removesuffix(".git"), sha)
        assert git(checkout.path, "config", "remote.origin.url") == remote.url
        assert checkout.repository == change.repository
    assert not checkout.folder.exists()
    assert list((tmp_path / "checkouts").iterdir()) == []


def test_relative_folders_are_taken_from_where_the_process_is(
    remote: Remote, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sha = remote.push("one")
    monkeypatch.chdir(tmp_path)
    with Mirrors(Path("cache")).checkout(remote.url, sha, dest_parent=Path("out")) as checkout:
        assert checkout.folder.parent == tmp_path / "out"
        assert head_of(checkout.path) == sha
    assert Mirrors(tmp_path / "cache").mirror_path(remote.url).is_dir()


def test_an_older_commit_that_is_no_longer_a_head(
    mirrors: Mirrors, remote: Remote, tmp_path: Path
) -> None:
    old = remote.push("one")
    remote.push("two")
    with mirrors.checkout(remote.url, old, dest_parent=tmp_path) as checkout:
        assert (checkout.path / "a.txt").read_text() == "one"
        assert head_of(checkout.path) == old


def test_a_second_checkout_uses_the_mirror_without_fetching(
    mirrors: Mirrors, remote: Remote, tmp_path: Path, git_log: Path
) -> None:
    sha = remote.push("one")
    mirrors.checkout(remote.url, sha, dest_parent=tmp_path).close()
    assert len(fetches(git_log)) == 1
    mirror = mirrors.mirror_path(remote.url)
    assert mirror.parent == tmp_path / "cache" / "mirrors"
    assert len(mirror.name) == 16
    # The remote is gone: only the mirror can serve the commit now.
    remote.bare.rename(remote.bare.with_name("moved.git"))
    with mirrors.checkout(remote.url, sha, dest_parent=tmp_path) as checkout:
        assert head_of(checkout.path) == sha
    assert len(fetches(git_log)) == 1


def test_a_commit_pushed_later_is_fetched(
    mirrors: Mirrors, remote: Remote, tmp_path: Path, git_log: Path
) -> None:
    mirrors.checkout(remote.url, remote.push("one"), dest_parent=tmp_path).close()
    later = remote.push("two", branch="feature")
    with mirrors.checkout(remote.url, later, dest_parent=tmp_path) as checkout:
        assert (checkout.path / "a.txt").read_text() == "two"
    assert len(fetches(git_log)) == 2


def test_a_commit_the_repository_lacks(mirrors: Mirrors, remote: Remote, tmp_path: Path) -> None:
    remote.push("one")
    missing = "0123456789abcdef" * 2 + "01234567"
    with pytest.raises(CommitNotFound) as raised:
        mirrors.checkout(remote.url, missing, dest_parent=tmp_path / "checkouts")
    name = remote.url.removesuffix(".git")
    assert str(raised.value) == f"commit 0123456789ab is not in {name}"
    assert list((tmp_path / "checkouts").iterdir()) == []


def test_a_repository_that_cannot_be_reached(mirrors: Mirrors, tmp_path: Path) -> None:
    sha = "ab" * 20
    with pytest.raises(InfrastructureError, match=r"cannot fetch .*nowhere") as raised:
        mirrors.checkout(str(tmp_path / "nowhere.git"), sha, dest_parent=tmp_path / "out")
    assert "\n" not in str(raised.value)
    port = closed_port()
    with pytest.raises(InfrastructureError, match=rf"cannot fetch 127\.0\.0\.1:{port}/org/shop: "):
        mirrors.checkout(f"https://127.0.0.1:{port}/org/shop.git", sha, dest_parent=tmp_path)
    assert list((tmp_path / "out").iterdir()) == []


def test_concurrent_checkouts_of_one_repository(remote: Remote, tmp_path: Path) -> None:
    shas = [remote.push("one"), remote.push("two", branch="b"), remote.push("three")]
    start = threading.Barrier(4)

    def check_out(sha: str) -> str:
        start.wait()
        with Mirrors(tmp_path / "cache").checkout(
            remote.url, sha, dest_parent=tmp_path
        ) as checkout:
            return (checkout.path / "a.txt").read_text()

    with ThreadPoolExecutor(4) as pool:
        texts = list(pool.map(check_out, [*shas, shas[0]]))
    assert texts == ["one", "two", "three", "one"]
    assert [p.name for p in (tmp_path / "cache" / "mirrors").iterdir() if p.is_dir()] == [
        Mirrors(tmp_path / "cache").mirror_path(remote.url).name
    ]


def test_a_mirror_locked_too_long(remote: Remote, tmp_path: Path) -> None:
    sha = remote.push("one")
    now = [0.0]

    def clock() -> float:
        now[0] += 10.0
        return now[0]

    mirrors = Mirrors(tmp_path / "cache", lock_wait_s=30.0, clock=clock)
    lock = mirrors.mirror_path(remote.url).with_suffix(".lock")
    lock.parent.mkdir(parents=True)
    with lock.open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(InfrastructureError, match="stayed locked for 30 s"):
            mirrors.checkout(remote.url, sha, dest_parent=tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []


def test_remote_heads_lists_the_branches(remote: Remote) -> None:
    main = remote.push("one")
    feature = remote.push("two", branch="feature/x")
    assert remote_heads(remote.url) == {"main": main, "feature/x": feature}


def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


# Over HTTP, with credentials.


class GitHttp(BaseHTTPRequestHandler):
    """git's smart HTTP for the repositories under ``root``, for one header only."""

    root: Path
    expected: str
    seen: list[str]

    def do_GET(self) -> None:
        self.serve()

    def do_POST(self) -> None:
        self.serve()

    def log_message(self, format: str, *args: object) -> None:
        return None

    def serve(self) -> None:
        self.seen.append(self.headers.get("Authorization", ""))
        if self.headers.get("Authorization") != self.expected:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="shop"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = self.body()
        path, _, query = self.path.partition("?")
        env = {
            "PATH": os.environ.get("PATH", ""),
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_PROJECT_ROOT": str(self.root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "REQUEST_METHOD": self.command,
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "HTTP_CONTENT_ENCODING": self.headers.get("Content-Encoding", ""),
            "HTTP_GIT_PROTOCOL": self.headers.get("Git-Protocol", ""),
        }
        done = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True)
        head, _, payload = done.stdout.replace(b"\r\n", b"\n").partition(b"\n\n")
        status, headers = 200, []
        for line in head.decode().splitlines():
            key, _, value = line.partition(":")
            if key.lower() == "status":
                status = int(value.split()[0])
            else:
                headers.append((key, value.strip()))
        self.send_response(status)
        for key, value in headers:
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() != "chunked":
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))
        chunks = []
        while size := int(self.rfile.readline().split(b";")[0], 16):
            chunks.append(self.rfile.read(size))
            self.rfile.readline()
        self.rfile.readline()
        return b"".join(chunks)


@pytest.fixture
def served(remote: Remote) -> Iterator[tuple[str, list[str]]]:
    """(URL of the remote over HTTP, the Authorization header of each request)."""
    pair = base64.b64encode(f"x-access-token:{TOKEN}".encode()).decode()
    seen: list[str] = []
    handler = type(
        "Handler",
        (GitHttp,),
        {"root": remote.bare.parent, "expected": f"Basic {pair}", "seen": seen},
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/{remote.bare.name}", seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def files_holding(folder: Path, secrets: list[bytes]) -> list[Path]:
    return [
        path
        for path in folder.rglob("*")
        if path.is_file() and any(secret in path.read_bytes() for secret in secrets)
    ]


def test_a_token_reaches_the_server_and_nothing_else(
    mirrors: Mirrors,
    remote: Remote,
    served: tuple[str, list[str]],
    tmp_path: Path,
    git_log: Path,
) -> None:
    url, seen = served
    sha = remote.push("one")
    remote.push("two", branch="feature")
    with mirrors.checkout(url, sha, token=TOKEN, dest_parent=tmp_path / "out") as checkout:
        assert (checkout.path / "a.txt").read_text() == "one"
        assert git(checkout.path, "config", "remote.origin.url") == url
        assert files_holding(checkout.folder, SECRETS) == []
    assert set(remote_heads(url, token=TOKEN)) == {"main", "feature"}
    assert seen and all(header.startswith("Basic ") for header in seen)
    assert git_log.read_text()
    # Not in the mirror, the checkouts or the command lines git was given.
    assert files_holding(tmp_path, SECRETS) == []


def test_without_the_token_the_server_refuses(
    mirrors: Mirrors, remote: Remote, served: tuple[str, list[str]], tmp_path: Path
) -> None:
    url, seen = served
    sha = remote.push("one")
    with pytest.raises(InfrastructureError, match=r"cannot fetch 127\.0\.0\.1:") as raised:
        mirrors.checkout(url, sha, token="wrong-token", dest_parent=tmp_path)
    assert "wrong-token" not in str(raised.value)
    assert seen and all(header != "" for header in seen)
    with pytest.raises(InfrastructureError, match="cannot list the branches"):
        remote_heads(url)


def test_credentials_in_the_url_are_taken_out_of_it(
    mirrors: Mirrors,
    remote: Remote,
    served: tuple[str, list[str]],
    tmp_path: Path,
    git_log: Path,
) -> None:
    url, _ = served
    sha = remote.push("one")
    with_user = url.replace("http://", f"http://x-access-token:{TOKEN}@")
    with mirrors.checkout(with_user, sha, dest_parent=tmp_path / "out") as checkout:
        assert head_of(checkout.path) == sha
        assert git(checkout.path, "config", "remote.origin.url") == url
    assert mirrors.mirror_path(with_user) == mirrors.mirror_path(url)
    assert git_log.read_text()
    assert files_holding(tmp_path, SECRETS) == []


def test_a_server_that_sends_only_its_refs(
    remote: Remote, environ: dict[str, str], tmp_path: Path, git_log: Path
) -> None:
    """Protocol v0 refuses commits that are not a ref's tip: the mirror then fetches
    every branch and every pull request's head, among which the commit is."""
    home = tmp_path / "home"
    home.mkdir()
    (home / ".gitconfig").write_text("[protocol]\n\tversion = 0\n")
    old = remote.push("one")
    remote.push("two")
    pull = remote.push("three", branch="topic")
    git(remote.work, "push", "-q", "origin", f"{pull}:refs/pull/7/head", ":topic")
    mirrors = Mirrors(tmp_path / "cache", environ={**environ, "HOME": str(home)})
    for sha, text in ((old, "one"), (pull, "three")):
        with mirrors.checkout(remote.url, sha, dest_parent=tmp_path) as checkout:
            assert (checkout.path / "a.txt").read_text() == text
    by_sha, everything = fetches(git_log)  # and none for the second commit
    assert by_sha.endswith(f" origin {old}")
    assert "+refs/heads/*:refs/heads/*" in everything
    assert "+refs/pull/*/head:refs/pull/*/head" in everything
    with pytest.raises(CommitNotFound):
        mirrors.checkout(remote.url, "cd" * 20, dest_parent=tmp_path)
