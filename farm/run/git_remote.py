"""Running git for a repository URL without leaking its credentials.

A :class:`Remote` is a URL as git is given it (no user info) with its credentials
kept apart; :func:`git_command` builds git's argv and environment, in which alone
the credentials travel, as an ``Authorization`` header scoped to the URL's host:
never git's argv (``/proc/<pid>/cmdline`` is world-readable), a config file or a
message. Every call drops the inherited ``GIT_*`` variables, prompts, credential
helpers and hooks, and is killed with its process group past its timeout.
"""

from __future__ import annotations

import base64
import contextlib
import ipaddress
import os
import re
import signal
import subprocess
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from farm.core.errors import InfrastructureError, UsageError
from farm.core.repository_names import repository_name
from farm.core.trigger import FULL_SHA
from farm.core.urls import MASK, mask_url

# The user name a forge expects beside a token in HTTP basic authentication, by a
# word of its host name; GitHub's (any other host) is the default.
_TOKEN_USERS = (("gitlab", "oauth2"), ("bitbucket", "x-token-auth"))
DEFAULT_TOKEN_USER = "x-access-token"


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
    if not FULL_SHA.fullmatch(sha):
        raise UsageError(f"{text.strip()[:80]!r} is not a full commit sha")
    return sha


def verb(args: Sequence[str]) -> str:
    """The git command of ``args``, past the one global option (with its value) used."""
    return args[2] if args[0] in ("-C", "--git-dir") else args[0]


def said(stderr: str, remote: Remote | None) -> str:
    """Git's last line of error output, credentials masked."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    text = lines[-1] if lines else "no error message"
    return remote.hide(text) if remote is not None else text


def run_git(
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
            f"git {verb(args)} of {name} did not finish within {timeout_s:g} s"
        ) from None
    return proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")


__all__ = [
    "DEFAULT_TOKEN_USER",
    "Remote",
    "commit_sha",
    "git_command",
    "parse_remote",
    "run_git",
    "said",
    "verb",
]
