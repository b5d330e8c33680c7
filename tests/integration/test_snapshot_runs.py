"""Runs on workers that do not share the submitter's disk: snapshots, environments, identity.

Each test starts real ``farm worker`` processes with a cache folder of their own
and submits with ``--broker`` from another folder, as a farm elsewhere is used.
The suites check for themselves that they run from a snapshot, not from the
submitter's folder, so a run that read the disk would fail its own tests.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import WorkerProcess, farm_env, run_farm

pytestmark = pytest.mark.integration

PYTEST_SITE = str(Path(pytest.__file__).resolve().parent.parent)


class Worker(WorkerProcess):
    """A two-slot ``farm worker`` with a cache and a home folder of its own."""

    def __init__(self, tmp: Path, name: str, env: dict[str, str], broker: str) -> None:
        self.name = name
        self.cache = tmp / f"cache-{name}"
        home = tmp / f"home-{name}"
        home.mkdir()
        super().__init__(
            tmp / f"worker-{name}.log", "--broker", broker, "-c", "2",
            "--cache", str(self.cache), "--name", name, cwd=home, env=env,
        )  # fmt: skip

    def stop(self) -> int:
        """SIGTERM, as a service manager stops it; its exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        return self.process.returncode


@pytest.fixture
def farm(
    tmp_path: Path, redis_url: str, key_prefix: str
) -> Iterator[tuple[dict[str, str], list[Worker]]]:
    env = farm_env(FARM_KEY_PREFIX=key_prefix, FARM_QUEUE=key_prefix + "q")
    workers = [Worker(tmp_path, "alpha", env, redis_url)]
    try:
        yield env, workers
    finally:
        for worker in workers:
            worker.kill()


def git(cwd: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
        cwd=cwd, check=True, capture_output=True,
    )  # fmt: skip


def write_suite(root: Path, *, passing: bool) -> None:
    """A suite whose tests fail if run from ``root`` itself, or if ``passing`` is False."""
    (root / "tests").mkdir(parents=True, exist_ok=True)
    (root / "pytest.ini").write_text("[pytest]\n")
    (root / "tests" / "test_where.py").write_text(
        "import os\n\n"
        f"SUBMITTER = {str(root)!r}\n\n"
        "def test_runs_from_a_snapshot():\n"
        "    assert not os.path.realpath(__file__).startswith(SUBMITTER)\n\n"
        "def test_ignored_files_stay_home():\n"
        "    here = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))\n"
        "    assert not os.path.exists(os.path.join(here, 'secret.txt'))\n\n"
        "def test_untracked_files_travel():\n"
        "    here = os.path.dirname(os.path.realpath(__file__))\n"
        "    assert os.path.exists(os.path.join(here, 'data_untracked.txt'))\n\n"
        + "".join(f"def test_value_{i}():\n    assert {passing}\n\n" for i in range(6))
    )


def submit(
    suite: Path, redis_url: str, env: dict[str, str], tmp: Path, *args: str
) -> tuple[subprocess.CompletedProcess[str], dict[str, object]]:
    report = tmp / "report.json"
    report.unlink(missing_ok=True)
    done = run_farm(
        "run", "--broker", redis_url, "-n", "2", "--state-dir", str(tmp / "state"),
        "--json", str(report), *args, cwd=suite, env=env,
    )  # fmt: skip
    data = json.loads(report.read_text()) if report.exists() else {}
    return done, data


def test_workers_run_the_snapshot_of_the_working_tree_and_fetch_it_once(
    tmp_path: Path, redis_url: str, farm: tuple[dict[str, str], list[Worker]]
) -> None:
    env, (worker,) = farm
    suite = tmp_path / "suite"
    write_suite(suite, passing=False)
    (suite / ".gitignore").write_text("secret.txt\n")
    git(suite, "init", "-q")
    git(suite, "add", ".")
    git(suite, "commit", "-qm", "failing")
    write_suite(suite, passing=True)  # uncommitted: what is on disk is what is tested
    (suite / "secret.txt").write_text("ignored")
    (suite / "tests" / "data_untracked.txt").write_text("untracked, not ignored")

    done, report = submit(suite, redis_url, env, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    tests = report["tests"]
    assert isinstance(tests, list) and len(tests) == 9
    assert {str(t["worker"]).split(":")[0] for t in tests} == {"alpha"}
    assert len(worker.events("snapshot.fetched")) == 1
    snapshot = report["snapshot"]
    assert isinstance(snapshot, dict) and snapshot["uploaded_bytes"] > 0
    shards = report["shards"]
    assert isinstance(shards, list) and shards
    assert {s["machine"] for s in shards} == {socket.gethostname()}
    assert all(str(s["worker"]).startswith("alpha:") and s["started_at"] for s in shards)
    assert "tests by machine:" in done.stdout

    again, report = submit(suite, redis_url, env, tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert len(worker.events("snapshot.fetched")) == 1  # the second run downloaded nothing
    assert report["snapshot"]["uploaded_bytes"] == 0  # type: ignore[index]
    assert report["snapshot"]["digest"] == snapshot["digest"]  # type: ignore[index]

    listed = run_farm("workers", "--broker", redis_url, "--json", cwd=tmp_path, env=env)
    assert listed.returncode == 0, listed.stderr
    entry = json.loads(listed.stdout.splitlines()[0])
    assert (entry["name"], entry["capacity"]) == ("alpha", 2)
    assert entry["pid"] == worker.process.pid

    assert worker.stop() == 0
    assert worker.events("worker.stopped")
    gone = run_farm("workers", "--broker", redis_url, "--json", cwd=tmp_path, env=env)
    assert gone.stdout.strip() == ""


def test_rev_tests_the_commit_not_the_disk(
    tmp_path: Path, redis_url: str, farm: tuple[dict[str, str], list[Worker]]
) -> None:
    env, _ = farm
    suite = tmp_path / "suite"
    write_suite(suite, passing=False)
    (suite / "tests" / "data_untracked.txt").write_text("committed here")
    git(suite, "init", "-q")
    git(suite, "add", ".")
    git(suite, "commit", "-qm", "failing")
    write_suite(suite, passing=True)

    done, report = submit(suite, redis_url, env, tmp_path, "--rev", "HEAD")
    assert done.returncode == 1, done.stdout + done.stderr
    failed = [t for t in report["tests"] if t["outcome"] == "failed"]  # type: ignore[attr-defined]
    assert len(failed) == 6

    bad = run_farm("run", "--broker", redis_url, "--rev", "no-such-rev", cwd=suite, env=env)
    assert bad.returncode != 0
    assert bad.stderr.startswith("farm: error:") and "no-such-rev" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_a_link_leaving_the_tree_fails_the_run_naming_it(
    tmp_path: Path, redis_url: str, farm: tuple[dict[str, str], list[Worker]]
) -> None:
    env, (worker,) = farm
    suite = tmp_path / "suite"
    write_suite(suite, passing=True)
    (suite / "tests" / "data_untracked.txt").write_text("")
    (suite / "escape").symlink_to("/etc")

    done, report = submit(suite, redis_url, env, tmp_path)
    assert done.returncode == 3, done.stdout + done.stderr
    assert report["verdict"] == "error"
    assert "escape" in done.stdout
    assert not (worker.cache / "trees" / "escape").exists()
    assert not any(p.name == "escape" for p in worker.cache.rglob("escape"))


def test_a_setup_command_builds_an_environment_once_per_key(
    tmp_path: Path, redis_url: str, farm: tuple[dict[str, str], list[Worker]]
) -> None:
    env, (worker,) = farm
    suite = tmp_path / "suite"
    write_suite(suite, passing=True)
    (suite / "tests" / "data_untracked.txt").write_text("")
    (suite / "requirements.txt").write_text("pytest\n")
    (suite / "tests" / "test_env.py").write_text(
        "import os, sys\n\n"
        "def test_runs_in_the_built_environment():\n"
        "    assert sys.prefix != sys.base_prefix\n"
        "    assert os.path.exists(os.path.join(sys.prefix, 'built-by-setup'))\n"
        "    assert 'FARM_BROKER_URL' not in os.environ\n"
    )
    # Offline stand-in for `pip install -r requirements.txt`: make the worker's pytest
    # importable in the new virtual environment, and leave a mark the tests look for.
    setup = (
        f"python -c \"import site; open(site.getsitepackages()[0] + '/host.pth', 'w')"
        f'.write(\'{PYTEST_SITE}\')" && touch "$VIRTUAL_ENV/built-by-setup"'
    )
    env = {**env, "FARM_SETUP_COMMAND": setup}
    done, _ = submit(suite, redis_url, env, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert len(worker.events("env.built")) == 1

    (suite / "tests" / "test_more.py").write_text("def test_new_code():\n    pass\n")
    again, _ = submit(suite, redis_url, env, tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert len(worker.events("env.built")) == 1  # new code, same dependencies

    (suite / "requirements.txt").write_text("pytest\npluggy\n")
    third, _ = submit(suite, redis_url, env, tmp_path)
    assert third.returncode == 0, third.stdout + third.stderr
    assert len(worker.events("env.built")) == 2

    failing = {**env, "FARM_SETUP_COMMAND": "echo cannot resolve dependencies >&2; exit 7"}
    broken, report = submit(suite, redis_url, failing, tmp_path)
    assert broken.returncode == 3, broken.stdout + broken.stderr
    assert report.get("verdict") == "error", broken.stdout + broken.stderr
    assert "exited with 7" in broken.stdout and "cannot resolve dependencies" in broken.stdout


def test_sigterm_lets_the_running_shard_finish_then_stops(
    tmp_path: Path, redis_url: str, farm: tuple[dict[str, str], list[Worker]]
) -> None:
    env, (worker,) = farm
    suite = tmp_path / "suite"
    (suite / "tests").mkdir(parents=True)
    (suite / "pytest.ini").write_text("[pytest]\n")
    (suite / "tests" / "test_slow.py").write_text(
        "import time\n\n"
        + "".join(f"def test_slow_{i}():\n    time.sleep(0.5)\n\n" for i in range(8))
    )
    report = tmp_path / "report.json"
    run = subprocess.Popen(
        [sys.executable, "-m", "farm", "run", "--broker", redis_url, "-n", "1",
         "--state-dir", str(tmp_path / "state"), "--json", str(report)],
        cwd=suite, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not worker.events("shard.start"):
            assert time.monotonic() < deadline, "the shard never started"
            time.sleep(0.1)
        time.sleep(1.0)  # in the middle of the shard
        worker.process.send_signal(signal.SIGTERM)
        out, _ = run.communicate(timeout=60)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 0, out
    outcomes = [t["outcome"] for t in json.loads(report.read_text())["tests"]]
    assert outcomes == ["passed"] * 8
    assert worker.process.wait(timeout=30) == 0
    assert worker.events("worker.stopped")
    assert worker.events("shard.end")[0]["message"] == ""
