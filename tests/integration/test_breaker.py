"""A worker that cannot run shards stops taking them; a run left without workers ends."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from helpers import WorkerProcess, farm_env, run_farm

pytestmark = pytest.mark.integration


def test_a_failing_worker_stops_and_the_run_ends_instead_of_hanging(
    tmp_path: Path, redis_url: str, key_prefix: str
) -> None:
    suite = tmp_path / "suite"
    (suite / "tests").mkdir(parents=True)
    (suite / "pytest.ini").write_text("[pytest]\n")
    for module in range(4):
        (suite / "tests" / f"test_m{module}.py").write_text("def test_a():\n    pass\n")
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the worker's cache should go")
    env = farm_env(
        FARM_KEY_PREFIX=key_prefix, FARM_QUEUE=key_prefix + "q", FARM_WORKER_MAX_FAILURES="2",
        FARM_STALL_TIMEOUT_S="3",
    )  # fmt: skip
    worker = WorkerProcess(
        tmp_path / "worker.log", "--broker", redis_url, "-c", "1",
        "--cache", str(blocker / "cache"), "--name", "broken", cwd=tmp_path, env=env,
    )  # fmt: skip
    try:
        started = time.monotonic()
        done = run_farm(
            "run", "--broker", redis_url, "-n", "4", "--state-dir", str(tmp_path / "state"),
            cwd=suite, env=env, timeout_s=90,
        )  # fmt: skip
        assert worker.process.wait(timeout=30) == 0  # it stopped by itself
    finally:
        worker.kill()
    assert done.returncode == 3, done.stdout + done.stderr
    assert "no live worker" in done.stdout and "still owed" in done.stdout
    assert time.monotonic() - started < 60
    opened = worker.events("worker.circuit_open")
    assert len(opened) == 1 and "2 shards in a row failed" in str(opened[0]["reason"])
    assert "not-a-folder" in str(opened[0]["reason"])
