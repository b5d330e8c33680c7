"""Tests run by a root worker as another user cannot read the worker's secrets.

A real ``farm worker`` started as root, with its broker URL and a secret-looking
variable in its environment, runs a snapshot of a suite whose one test (a *probe*)
reads ``/proc/<pid>/environ`` of every ancestor of its process and of every process
on the machine, looking for the secret, and reports what it found as its failure
message. Run as ``nobody`` it must find nothing; run as the worker's own user
(``--test-user self``) it finds the secret, so the probe can tell the two apart.

The test user must be able to run the worker's Python. Where that interpreter lives
in a folder closed to other users (a pyenv under ``/root``), the worker runs in a
mount namespace of its own where that folder is replaced by an open one holding
only the way to the interpreter; nothing changes outside that namespace.
"""

from __future__ import annotations

import json
import os
import pwd
import shlex
import shutil
import stat
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from helpers import farm_env, run_farm

import farm
from farm.core.domain import ExitCode
from farm.core.test_user import TestUser

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="switching users takes a worker run as root"),
]

NOBODY = TestUser.from_entry(pwd.getpwnam("nobody"))
PYTEST_SITE = str(Path(pytest.__file__).resolve().parent.parent)

PROBE = """\
import json, os, sys, tempfile

SECRET = {secret!r}.encode()


def _environ(pid):
    try:
        with open(f"/proc/{{pid}}/environ", "rb") as f:
            return f.read()
    except OSError as e:
        return type(e).__name__


def _parent(pid):
    with open(f"/proc/{{pid}}/stat", "rb") as f:
        return int(f.read().rsplit(b")", 1)[1].split()[1])


def _seen(got):
    if isinstance(got, str):
        return got  # the error that kept it closed
    return "secret" if SECRET in got else f"{{len(got)}} bytes"


def test_probe():
    ancestors = []
    pid = os.getppid()
    while pid > 1:
        ancestors.append(_seen(_environ(pid)))
        pid = _parent(pid)
    leaks = [
        int(entry) for entry in os.listdir("/proc")
        if entry.isdigit() and SECRET in (lambda got: got if isinstance(got, bytes) else b"")(
            _environ(entry)
        )
    ]
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        open(os.path.join(here, "written-by-test"), "w").close()
        tree_writable = True
    except PermissionError:
        tree_writable = False
    tmp = tempfile.gettempdir()
    open(os.path.join(tmp, "scratch"), "w").close()  # its own TMPDIR is writable
    setup_uid = None
    marker = os.path.join(sys.prefix, "setup-uid")
    if os.path.exists(marker):
        setup_uid = int(open(marker).read())
    found = {{
        "uid": os.getuid(), "gid": os.getgid(), "groups": os.getgroups(),
        "ancestors": ancestors, "leaks": leaks, "tree_writable": tree_writable,
        "home_is_tmp": os.environ.get("HOME") == tmp, "user": os.environ.get("USER"),
        "setup_uid": setup_uid, "venv_writable": os.access(sys.prefix, os.W_OK),
        "broker_in_env": any(k.startswith("FARM_") for k in os.environ),
    }}
    raise AssertionError("PROBE " + json.dumps(found))
"""


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A fresh folder every user can enter (pytest's tmp_path is root's alone)."""
    path = Path(tempfile.mkdtemp(prefix="farm-test-user-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _closed(folder: Path) -> bool:
    """Whether nobody may not enter ``folder`` (whatever the folders above it allow)."""
    info = folder.stat()
    if info.st_uid == NOBODY.uid:
        return not info.st_mode & stat.S_IXUSR
    if info.st_gid == NOBODY.gid:
        return not info.st_mode & stat.S_IXGRP
    return not info.st_mode & stat.S_IXOTH


def _blocked_folders() -> dict[Path, set[str]]:
    """Folders on the way to the worker's Python and packages that nobody cannot
    enter, each with the names under it that lead there."""
    needed = [
        Path(sys.executable),
        Path(sys.executable).resolve(),
        Path(sys.prefix),
        Path(sys.base_prefix).resolve(),
        Path(farm.__file__).resolve().parent,
        Path(PYTEST_SITE),
    ]
    blocked: dict[Path, set[str]] = {}
    for path in needed:
        for folder, below in zip(
            reversed(path.parents), (*reversed(path.parents[:-1]), path), strict=True
        ):
            if _closed(folder):
                blocked.setdefault(folder, set()).add(below.name)
    return blocked


def worker_argv(staging: Path) -> list[str]:
    """How to start ``farm worker`` so that nobody can run its Python and farm."""
    argv = [sys.executable, "-m", "farm", "worker"]
    blocked = _blocked_folders()
    if not blocked:
        return argv
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip(f"nobody cannot reach {sorted(blocked)} and unshare is missing")
    lines = ["set -e"]
    for i, (folder, names) in enumerate(sorted(blocked.items(), key=lambda b: len(b[0].parts))):
        keep = staging / str(i)
        keep.mkdir()
        lines.append(f"mount --bind {shlex.quote(str(folder))} {shlex.quote(str(keep))}")
        lines.append(f"mount -t tmpfs -o mode=755 farm-test {shlex.quote(str(folder))}")
        for name in sorted(names):
            inner, source = shlex.quote(str(folder / name)), shlex.quote(str(keep / name))
            make = "mkdir" if (folder / name).is_dir() else "touch"
            lines.append(f"{make} {inner} && mount --bind {source} {inner}")
    lines.append('exec "$@"')
    script = "\n".join(lines)
    return [unshare, "--mount", "--propagation", "private", "sh", "-c", script, "sh", *argv]


def run_probe(
    tmp_path: Path, open_dir: Path, redis_url: str, key_prefix: str, worker_args: Sequence[str],
    *, setup: str = "",
) -> dict[str, Any]:  # fmt: skip
    """Start a worker, run the probe on it from a snapshot, and return what it found."""
    secret = f"probe-secret-{uuid.uuid4().hex}"
    suite = tmp_path / "suite"
    (suite / "tests").mkdir(parents=True)
    (suite / "pytest.ini").write_text("[pytest]\n")
    (suite / "tests" / "test_probe.py").write_text(PROBE.format(secret=secret))
    env = farm_env(FARM_KEY_PREFIX=key_prefix, FARM_QUEUE=key_prefix + "q")
    worker_env = {
        **env,
        "FARM_BROKER_URL": redis_url,
        "FARM_PROBE_SECRET": secret,  # scrubbed from the tests' environment, as farm's are
        "TMPDIR": str(open_dir),
    }
    log_path = tmp_path / "worker.log"
    staging = tmp_path / "staging"
    staging.mkdir()
    argv = [*worker_argv(staging), "-c", "1", "--cache", str(open_dir / "cache"), *worker_args]
    with open(log_path, "wb") as log:
        worker = subprocess.Popen(
            argv, cwd=open_dir, env=worker_env, stdin=subprocess.DEVNULL, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        report = tmp_path / "report.json"
        submit_env = {**env, "FARM_SETUP_COMMAND": setup} if setup else env
        done = run_farm(
            "run", "--broker", redis_url, "--snapshot", "on", "-n", "1", "--retries", "0",
            "--state-dir", str(tmp_path / "state"), "--json", str(report),
            cwd=suite, env=submit_env,
        )  # fmt: skip
    finally:
        os.killpg(worker.pid, 9)
        worker.wait()
    logged = log_path.read_text(errors="replace")
    assert report.exists(), done.stdout + done.stderr + logged
    (test,) = json.loads(report.read_text())["tests"]
    longrepr = str(test["longrepr"])
    assert "PROBE " in longrepr, longrepr + logged
    # The last line that says it: pytest shows the raising line of the source first.
    found: dict[str, Any] = json.loads(longrepr.rsplit("PROBE ", 1)[1].splitlines()[0])
    return found


def test_tests_run_as_nobody_cannot_read_the_workers_environment(
    tmp_path: Path, open_dir: Path, redis_url: str, key_prefix: str
) -> None:
    # The setup command is the run's code too: it runs as nobody, and what it built
    # is the worker's afterwards. (An offline stand-in for pip: it makes the worker's
    # pytest importable in the new virtual environment.)
    setup = (
        f"python -c \"import site; open(site.getsitepackages()[0] + '/host.pth', 'w')"
        f'.write(\'{PYTEST_SITE}\')" && id -u > "$VIRTUAL_ENV/setup-uid"'
    )
    found = run_probe(
        tmp_path, open_dir, redis_url, key_prefix, ["--test-user", "nobody"], setup=setup
    )
    assert (found["uid"], found["gid"], found["groups"]) == (NOBODY.uid, NOBODY.gid, [])
    # The pool process, the worker and everything above them: closed.
    assert found["ancestors"][:2] == ["PermissionError", "PermissionError"]
    assert "secret" not in found["ancestors"]
    assert found["leaks"] == []
    assert not found["broker_in_env"]
    assert found["user"] == "nobody" and found["home_is_tmp"]
    assert not found["tree_writable"]  # the snapshot is the worker's
    assert found["setup_uid"] == NOBODY.uid
    assert not found["venv_writable"]  # built as nobody, the worker's once built


def test_tests_run_as_the_workers_own_user_can_read_its_environment(
    tmp_path: Path, open_dir: Path, redis_url: str, key_prefix: str
) -> None:
    found = run_probe(tmp_path, open_dir, redis_url, key_prefix, ["--test-user", "self"])
    assert found["uid"] == 0
    assert found["ancestors"][:2] == ["secret", "secret"]  # what the switch protects
    assert found["leaks"]
    assert found["tree_writable"]


def test_a_worker_refuses_what_would_expose_its_secrets(tmp_path: Path) -> None:
    def worker(*args: str) -> subprocess.CompletedProcess[str]:
        return run_farm("worker", "--cache", str(tmp_path / "cache"), *args, cwd=tmp_path)

    password = worker("--broker", "redis://:hunter2@127.0.0.1:1/0", "--test-user", "nobody")
    assert password.returncode == ExitCode.USAGE_ERROR, password.stderr
    assert "FARM_BROKER_URL" in password.stderr and "hunter2" not in password.stderr
    assert "Traceback" not in password.stderr and len(password.stderr.splitlines()) == 1

    unknown = worker("--broker", "redis://127.0.0.1:1/0", "--test-user", "no-such-farm-user")
    assert unknown.returncode == ExitCode.USAGE_ERROR, unknown.stderr
    assert "'no-such-farm-user' is not a user" in unknown.stderr


def test_collection_runs_the_suites_code_as_the_test_user(tmp_path: Path, open_dir: Path) -> None:
    suite = open_dir / "suite"
    suite.mkdir(mode=0o755)
    (suite / "test_who.py").write_text(
        "import os, tempfile\n\n"
        f"assert os.getuid() == {NOBODY.uid}, os.getuid()\n"
        "assert os.environ['HOME'] == tempfile.gettempdir()\n"
        "open(os.path.join(tempfile.gettempdir(), 'x'), 'w').close()\n\n"
        "def test_one():\n    pass\n"
    )
    os.chmod(suite / "test_who.py", 0o644)
    script = (
        "import pwd, sys\n"
        "from pathlib import Path\n"
        "from farm.core.test_user import TestUser\n"
        "from farm.scheduler.collect import collect\n"
        "user = TestUser.from_entry(pwd.getpwnam('nobody'))\n"
        "found = collect([], ['-p', 'no:cacheprovider'], cwd=Path(sys.argv[1]), test_user=user)\n"
        "print(list(found.node_ids))\n"
    )
    staging = tmp_path / "staging"
    staging.mkdir()
    argv = worker_argv(staging)
    argv[argv.index("-m") :] = ["-c", script, str(suite)]
    done = subprocess.run(
        argv, cwd=open_dir, env={**farm_env(), "TMPDIR": str(open_dir)},
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == "['test_who.py::test_one']"
