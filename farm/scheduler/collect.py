"""Collection: pytest's own ``--collect-only`` of the given paths, in a subprocess.

A collection error (syntax error, import error) raises :class:`CollectionError`
with pytest's text; an option pytest rejects raises :class:`UsageError`; an
empty selection raises :class:`NoTestsCollected`. Never a silent pass.

:func:`discover` is the cheap half: the test files pytest would collect, found
without importing them (see :mod:`farm.scheduler.collect_plugin`).

Both run the suite's code (its conftest files, its plugins): given a test user
(:mod:`farm.core.test_user`), pytest runs as that user, with a private folder of
its own as ``HOME`` and ``TMPDIR``, removed afterwards. The project's folder must
then be readable by that user.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from farm.core.domain import Collection, CollectWarning
from farm.core.errors import CollectionError, InfrastructureError, NoTestsCollected, UsageError
from farm.core.lifeline import die_with_parent
from farm.core.pytest_command import pytest_command
from farm.core.pytest_options import PytestOptions
from farm.core.seeds import SEED_OPTION
from farm.core.test_user import TestUser, popen_identity, private_dir, user_env

_INTERNAL_ERROR_EXIT = 3  # pytest's exit code when a hook or plugin raised
_USAGE_EXIT = 4


def collect(
    paths: Sequence[str],
    pytest_args: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str] | None = None,
    python: str = sys.executable,
    require_tests: bool = True,
    seed: int | None = None,
    test_user: TestUser | None = None,
) -> Collection:
    """Every test pytest collects from ``paths``; raises if there is none, unless
    ``require_tests`` is off (some modules of a run owe nothing: no tests, or every
    test deselected, which still counts). ``seed`` is the run's, for the plugins that
    shuffle tests (see :mod:`farm.core.seeds`); ``test_user`` whom pytest runs as (None:
    this process's user)."""
    found = _run(
        paths, pytest_args, cwd=cwd, env=env, python=python, discover=False, seed=seed,
        test_user=test_user,
    )  # fmt: skip
    if require_tests and not found.node_ids:
        raise NoTestsCollected(f"no tests collected from {' '.join(paths) or '.'}")
    return found


def discover(
    paths: Sequence[str],
    pytest_args: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str] | None = None,
    python: str = sys.executable,
    seed: int | None = None,
    test_user: TestUser | None = None,
) -> Collection:
    """The test files pytest would collect from ``paths``, without importing them.

    The result's ``node_ids`` is empty; its ``modules`` name the files.
    """
    return _run(
        paths, pytest_args, cwd=cwd, env=env, python=python, discover=True, seed=seed,
        test_user=test_user,
    )  # fmt: skip


def _run(
    paths: Sequence[str],
    pytest_args: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str] | None,
    python: str,
    discover: bool,
    seed: int | None = None,
    test_user: TestUser | None = None,
) -> Collection:
    for path in paths:
        if not (cwd / path.split("::", 1)[0]).exists():
            raise UsageError(f"path does not exist: {path}")
    child_env = dict(os.environ if env is None else env)
    # An anonymous file (no name on disk) that the child writes through /dev/fd: a
    # farm run killed while collecting leaves nothing behind in the temporary folder.
    with tempfile.TemporaryFile() as out, contextlib.ExitStack() as cleanup:
        if test_user is not None:
            # Opening /dev/fd/N checks the file's owner: the child must own it.
            os.fchown(out.fileno(), test_user.uid, test_user.gid)
            own_dir = private_dir(test_user, prefix="farm-collect-")
            cleanup.callback(shutil.rmtree, own_dir, True)
            child_env.update(user_env(test_user, own_dir))
        command = [
            *pytest_command(python),
            "--collect-only",
            "-qq",  # collect_plugin's _verbosity takes these two back off the user's
            "-p",
            "farm.scheduler.collect_plugin",
            # One argument: pytest takes a separate value that names an existing path
            # for a path to test when it chooses the rootdir.
            f"--farm-collect-out=/dev/fd/{out.fileno()}",
            *(["--farm-discover"] if discover else []),
            *([f"{SEED_OPTION}={seed}"] if seed is not None else []),
            *pytest_args,
            *paths,
        ]
        completed = subprocess.run(
            command,
            # A collection that hangs on an import must not outlive a killed farm run.
            preexec_fn=die_with_parent(waits=True),
            pass_fds=(out.fileno(),),
            cwd=cwd,
            env=child_env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            check=False,
            **popen_identity(test_user),
        )
        text = (completed.stdout + completed.stderr).decode("utf-8", "replace")
        if completed.returncode == _INTERNAL_ERROR_EXIT:
            # pytest ends such a session with exit 3 and runs nothing; so does farm.
            raise InfrastructureError(
                f"pytest stopped with an internal error while collecting: {_internal(text)}"
            )
        out.seek(0)
        written = out.read()
        if completed.returncode == _USAGE_EXIT or not written:
            raise UsageError(f"pytest rejected the collection: {_first_error(text)}")
        data = json.loads(written.decode("utf-8"))
    if data["errors"]:
        failed = tuple((str(e["where"]), str(e["longrepr"])) for e in data["errors"])
        texts = [f"{where or '<session>'}:\n{longrepr}" for where, longrepr in failed]
        raise CollectionError(
            f"{len(failed)} collection error(s); first: {_headline(texts[0])}",
            "\n\n".join(texts),
            failed,
            skipped=tuple(
                (str(node_id), str(path), lineno if isinstance(lineno, int) else None, str(why))
                for node_id, path, lineno, why in data.get("skips", [])
            ),
            options=PytestOptions.from_facts(data["options"]),
            messages=tuple(
                None if e.get("message") is None else str(e["message"]) for e in data["errors"]
            ),
        )
    return Collection(
        data["rootdir"],
        data["inifile"],
        tuple(data["node_ids"]),
        tuple(data["modules"]),
        data["deselected"],
        data["warnings"],
        PytestOptions.from_facts(data["options"]),
        tuple(CollectWarning(str(w[0]), str(w[1])) for w in data.get("warnings_shown", [])),
    )


def _internal(text: str) -> str:
    """The last ``INTERNALERROR>`` line: the exception a hook or plugin raised."""
    lines = [line for line in text.splitlines() if line.startswith("INTERNALERROR>")]
    return lines[-1].removeprefix("INTERNALERROR>").strip() if lines else "no details"


def _first_error(text: str) -> str:
    """The line of pytest's output that says what was wrong, not its usage banner."""
    lines = text.splitlines()
    for line in lines:
        if ": error:" in line:
            return line.split(": error:", 1)[1].strip()
    for line in lines:
        if "error" in line.lower() and "usage:" not in line:
            return line.strip()
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1].strip() if lines else "no output"


def _headline(error: str) -> str:
    """``module: last line of the traceback`` from one collection error's text."""
    lines = [line for line in error.splitlines() if line.strip()]
    where = lines[0].rstrip(":") if lines else "?"
    cause = next((line for line in reversed(lines) if line.startswith("E ")), lines[-1])
    return f"{where}: {cause.lstrip('E').strip()}"


__all__ = ["Collection", "collect", "discover"]
