"""Helpers for tests that drive farm as a user does: a generated suite, a farm subprocess."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from farm.core.domain import Outcome, TestResult
from farm.core.messages import decode_event

if TYPE_CHECKING:
    from netns_hosts import Host

ROOT = Path(__file__).resolve().parent.parent
# What keeps pytest-randomly off in every pytest the tests start (see tests/conftest.py).
NO_RANDOMLY = "-p no:randomly"
# Plugins of the test environment no suite the tests start uses, which cost each
# pytest process that loads them 0.3 s (schemathesis, and hypothesis with it): the
# tests start thousands.
NO_IDLE_PLUGINS = "-p no:schemathesis -p no:hypothesispytest"
MAKE_SUITE = ROOT / "bench" / "make_suite.py"


def make_suite(out: Path, *args: str) -> dict[str, list[str]]:
    """Generate a synthetic suite with ../shared/bench/make_suite.py; returns expected.json."""
    subprocess.run(
        [sys.executable, str(MAKE_SUITE), str(out), *args], check=True, capture_output=True
    )
    data: dict[str, list[str]] = json.loads((out / "expected.json").read_text())
    return data


def farm_env(**extra: str) -> dict[str, str]:
    """The environment for a ``farm`` subprocess: the test's, less any FARM_ setting."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FARM_")}
    env.update(extra)
    return env


def run_farm(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout_s: float = 180
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "farm", *args],
        cwd=cwd,
        env=farm_env() if env is None else env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        stdin=subprocess.DEVNULL,
    )


class WorkerProcess:
    """``farm worker ARGS`` leading a session of its own, its output (JSON log lines)
    kept in ``log_path``; here, or on ``host`` unable to see the folders in ``hide``."""

    def __init__(
        self,
        log_path: Path,
        *args: str,
        cwd: Path,
        env: Mapping[str, str],
        host: Host | None = None,
        hide: Sequence[Path] = (),
    ) -> None:
        self.log_path = log_path
        argv = [sys.executable, "-m", "farm", "worker", *args]
        # Celery's pool makes a pymp-* folder in TMPDIR that a killed worker leaves:
        # the test's own folder, not the machine's /tmp, takes it.
        private_tmp = log_path.with_name(f"{log_path.name}.tmp")
        private_tmp.mkdir(exist_ok=True)
        # Tests run as the worker's user (root here) unless a test says otherwise: the
        # folders under pytest's tmp_path are closed to any other user.
        env = {"TMPDIR": str(private_tmp), "FARM_TEST_USER": "self", **env}
        with open(log_path, "wb") as log:
            if host is None:
                self.process: subprocess.Popen[bytes] = subprocess.Popen(
                    argv, cwd=cwd, env=dict(env), stdin=subprocess.DEVNULL, stdout=log,
                    stderr=subprocess.STDOUT, start_new_session=True,
                )  # fmt: skip
            else:
                self.process = host.popen(
                    argv, cwd=cwd, env=env, hide=hide, stdout=log, stderr=subprocess.STDOUT
                )

    def events(self, name: str) -> list[dict[str, Any]]:
        """The log records of event ``name`` so far, oldest first."""
        found = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if isinstance(record, dict) and record.get("event") == name:
                    found.append(record)
        return found

    def kill(self) -> None:
        """SIGKILL its whole process group (the main process and its pool), then reap it."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)


def make_result(
    node_id: str,
    outcome: Outcome = Outcome.PASSED,
    *,
    duration_s: float = 0.5,
    longrepr: str = "",
    output: str = "",
    worker: str = "w1",
    shard_id: int = 2,
) -> TestResult:
    """A test result with the fields tests rarely care about filled in."""
    return TestResult(
        run_id="r1",
        shard_id=shard_id,
        lease=1,
        node_id=node_id,
        outcome=outcome,
        duration_s=duration_s,
        worker=worker,
        longrepr=longrepr,
        output=output,
    )


GIT_AUTHOR = "dev@example.com"


def bare_env(**extra: str) -> dict[str, str]:
    """An environment with none of the CI variables of whatever runs the tests, and no
    user or system git configuration: what git and CI detection read, made plain."""
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", "/nonexistent"),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
    }
    env.update(extra)
    return env


def git(repo: Path, *args: str, env: Mapping[str, str] | None = None) -> str:
    """``git ARGS`` in ``repo`` as author ``GIT_AUTHOR``, with no user or system git
    configuration; its output, stripped."""
    isolated = {**(os.environ if env is None else env), "GIT_CONFIG_NOSYSTEM": "1"}
    isolated["GIT_CONFIG_GLOBAL"] = os.devnull
    done = subprocess.run(
        ["git", "-c", f"user.email={GIT_AUTHOR}", "-c", "user.name=Dev", *args],
        cwd=repo, env=isolated, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return done.stdout.strip()


class ResultsSink:
    """A shard runner's sink that keeps each test's last result, for tests that drive
    :class:`farm.worker.runner.ShardRunner` directly."""

    def __init__(self) -> None:
        self.results: dict[str, TestResult] = {}

    def send(self, payloads: Sequence[str | bytes]) -> None:
        for payload in payloads:
            event = decode_event(payload)
            if isinstance(event, TestResult):
                self.results[event.node_id] = event

    def cancelled(self) -> bool:
        return False
