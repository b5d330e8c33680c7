"""Test environments built by a run's setup command, cached by what they depend on.

A run may name a setup command (``pip install -e .[test]``, say) and the files its
result depends on (``pyproject.toml``, ``requirements*.txt``, lock files). The
*environment key* is the sha256 of the worker's Python, the command, and the names
and contents of those files in the snapshot: two snapshots that differ only in
code share an environment, a changed lock file gets a new one.

An environment is a virtual environment under ``<root>/<key>``, built at most once
per key on a worker: pool processes that need the same key wait on a file lock,
and the ``ready`` marker is written last, so a build that failed or was killed is
started over. The setup command runs in the snapshot's tree with the virtual
environment activated and the worker's farm and Celery settings removed from its
environment. farm's own test-process plugin is not installed into it (nor farm's
dependencies): the environment holds a folder with one link, ``farm``, to this
worker's package, which the test process puts first on its ``sys.path`` (see
:mod:`farm.core.pytest_command`).

The environment is built from the first snapshot that needs it, so an editable
install of the project points at that tree; tests of a later snapshot import the
project from their own tree because its root (and its ``src/`` folder, if any) is
put first on ``PYTHONPATH``.

The setup command is the run's code, as untrusted as its tests: with a test user
(:mod:`farm.core.test_user`) it runs as that user, in a copy of the snapshot
(``<root>/<key>/tree``, where it may write its build files) and with the virtual
environment given to that user; once built, the environment is the worker's
again, so that no test can change it for the runs that reuse it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
import venv
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import farm
from farm.core.errors import InfrastructureError
from farm.core.logs import event
from farm.core.test_user import TestUser, popen_identity, private_dir, user_env
from farm.worker.test_user import chown_tree

log = logging.getLogger(__name__)

_TAIL_BYTES = 4096
_READY = "ready"
_FARM_LINK = "farm-link"
# Changes when what a built environment holds changes, so no worker reuses an older one.
_LAYOUT = "2"


class SetupError(InfrastructureError):
    """Raised when a run's environment cannot be built on this worker."""


@dataclass(frozen=True)
class Environment:
    """A built environment: its interpreter, and what the tests' environment adds."""

    python: str
    env: dict[str, str]
    farm_path: str  # a folder that holds only a link to farm's package


def env_key(tree: Path, setup_command: str, patterns: Sequence[str]) -> str:
    """The key of the environment ``setup_command`` builds for the snapshot at ``tree``."""
    digest = hashlib.sha256()
    for part in (_LAYOUT, sys.version, sys.platform, setup_command):
        digest.update(part.encode() + b"\0")
    files = sorted({p for pattern in patterns for p in tree.glob(pattern) if p.is_file()})
    for path in files:
        digest.update(path.relative_to(tree).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


class Environments:
    """The environments cached under ``root``."""

    def __init__(
        self,
        root: Path,
        *,
        base_env: Mapping[str, str],
        timeout_s: float,
        user: TestUser | None = None,
    ) -> None:
        self.root = root
        self.base_env = dict(base_env)
        self.timeout_s = timeout_s
        self.user = user  # who setup commands run as; None: the worker's own user

    def prepare(self, tree: Path, setup_command: str, patterns: Sequence[str]) -> Environment:
        """The environment for ``tree``, built now unless a ready one exists."""
        key = env_key(tree, setup_command, patterns)
        home = self.root / key
        with self._locked(key):
            if not (home / _READY).is_file():
                self._build(home, tree, setup_command)
        venv_dir = home / "venv"
        return Environment(
            str(venv_dir / "bin" / "python"), self._activated(venv_dir), str(home / _FARM_LINK)
        )

    def _activated(self, venv_dir: Path) -> dict[str, str]:
        """What activating the virtual environment ``venv_dir`` sets."""
        path = self.base_env.get("PATH", os.defpath)
        return {"VIRTUAL_ENV": str(venv_dir), "PATH": f"{venv_dir / 'bin'}:{path}"}

    def _build(self, home: Path, tree: Path, setup_command: str) -> None:
        started = time.monotonic()
        shutil.rmtree(home, ignore_errors=True)  # what a failed or killed build left
        home.mkdir(parents=True)
        venv_dir = home / "venv"
        try:
            venv.EnvBuilder(with_pip=True, clear=True).create(venv_dir)
        except (OSError, subprocess.CalledProcessError) as e:
            raise SetupError(f"cannot create a virtual environment in {venv_dir}: {e}") from e
        python = venv_dir / "bin" / "python"
        link_dir = home / _FARM_LINK
        link_dir.mkdir()
        (link_dir / "farm").symlink_to(Path(farm.__file__ or "").resolve().parent)
        env = {
            **self.base_env,
            **self._activated(venv_dir),
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        }
        env.pop("PYTHONHOME", None)
        log_path = home / "setup.log"
        workdir, own_dir = tree, ""
        try:
            if self.user is not None:
                workdir = home / "tree"
                shutil.copytree(tree, workdir, symlinks=True)
                for owned in (venv_dir, workdir):
                    chown_tree(owned, self.user.uid, self.user.gid)
                own_dir = private_dir(self.user, prefix="farm-setup-")
                env.update(user_env(self.user, own_dir))
            code = self._run(["/bin/sh", "-c", setup_command], workdir, env, log_path)
            if code != 0:
                how = "timed out" if code is None else f"exited with {code}"
                raise SetupError(
                    f"setup command {setup_command!r} {how}: {_last_line(log_path)} "
                    f"(full output in {log_path} on {os.uname().nodename})"
                )
            check = subprocess.run(
                [str(python), "-c", "import pytest"], env=env, capture_output=True, check=False,
                **popen_identity(self.user),
            )  # fmt: skip
            if check.returncode != 0:
                raise SetupError(f"setup command {setup_command!r} did not install pytest")
            if self.user is not None:
                chown_tree(home, os.geteuid(), os.getegid())
        finally:
            if own_dir:
                shutil.rmtree(own_dir, ignore_errors=True)
        seconds = round(time.monotonic() - started, 2)
        (home / _READY).write_text(json.dumps({"command": setup_command, "build_s": seconds}))
        event(log, "env.built", key=home.name, seconds=seconds)

    def _run(self, argv: list[str], cwd: Path, env: dict[str, str], log_path: Path) -> int | None:
        """Run ``argv``; its exit code, or None when it ran past ``timeout_s`` (killed)."""
        with open(log_path, "wb") as out:
            process = subprocess.Popen(
                argv,
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # so a timeout kills what it started, too
                **popen_identity(self.user),
            )
            try:
                return process.wait(timeout=self.timeout_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
                return None

    @contextlib.contextmanager
    def _locked(self, key: str) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        # The worker's alone: a test holding it would stall every build of the key.
        fd = os.open(self.root / f".{key}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        with os.fdopen(fd, "r+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield


def code_path(tree: Path) -> str:
    """The ``PYTHONPATH`` entry that makes a snapshot's own code win over the copy (or
    editable link) the environment was built with: ``src/`` if there is one."""
    return str(tree / "src") if (tree / "src").is_dir() else str(tree)


def _last_line(path: Path) -> str:
    with open(path, "rb") as f:
        f.seek(max(0, path.stat().st_size - _TAIL_BYTES))
        lines = f.read().decode("utf-8", "replace").strip().splitlines()
    return lines[-1] if lines else "no output"
