"""The scheduler killed mid-run, then ``farm run --resume``: nothing lost, nothing twice."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import WorkerProcess, farm_env, run_farm

pytestmark = pytest.mark.integration


def stored(db: Path, query: str) -> list[tuple[object, ...]]:
    if not db.exists():
        return []
    with sqlite3.connect(db) as connection:
        try:
            return connection.execute(query).fetchall()
        except sqlite3.OperationalError:
            return []  # not migrated yet


def test_a_run_whose_scheduler_died_is_abandoned_then_resumed(
    tmp_path: Path, redis_url: str, key_prefix: str
) -> None:
    suite = tmp_path / "suite"
    (suite / "tests").mkdir(parents=True)
    (suite / "pytest.ini").write_text("[pytest]\n")
    for module in range(3):
        (suite / "tests" / f"test_m{module}.py").write_text(
            "import time\n\n"
            + "".join(f"def test_{i}():\n    time.sleep(0.3)\n\n" for i in range(8))
        )
    state = tmp_path / "state"
    db = state / "farm.db"
    env = farm_env(
        FARM_KEY_PREFIX=key_prefix, FARM_QUEUE=key_prefix + "q", FARM_RUN_DEADLINE_S="6",
        FARM_STATE_DIR=str(state),
    )  # fmt: skip
    worker = WorkerProcess(
        tmp_path / "worker.log", "--broker", redis_url, "-c", "2",
        "--cache", str(tmp_path / "cache"), cwd=tmp_path, env=env,
    )  # fmt: skip
    try:
        submitter = subprocess.Popen(
            [sys.executable, "-m", "farm", "run", "--broker", redis_url, "-n", "2"],
            cwd=suite, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while len(stored(db, "SELECT node_id FROM attempts")) < 5:
            assert time.monotonic() < deadline, "no results were stored"
            time.sleep(0.1)
        os.killpg(submitter.pid, signal.SIGKILL)  # the supervising process dies
        submitter.wait()
        ((run_id,),) = stored(db, "SELECT id FROM runs")

        early = run_farm("run", "--broker", redis_url, "--resume", str(run_id), cwd=suite, env=env)
        assert early.returncode == 4, early.stdout + early.stderr
        assert "still running" in early.stderr

        time.sleep(6.5)  # past the run's deadline
        listed = run_farm("run", "--broker", redis_url, "--resume", "nope", cwd=suite, env=env)
        assert listed.returncode == 4 and "nope" in listed.stderr
        assert stored(db, "SELECT state, verdict FROM runs") == [("abandoned", "error")]

        report = tmp_path / "report.json"
        resumed = run_farm(
            "run", "--broker", redis_url, "--resume", str(run_id), "--json", str(report),
            cwd=tmp_path, env=env,
        )  # fmt: skip
        again = run_farm("run", "--broker", redis_url, "--resume", str(run_id), cwd=suite, env=env)
        assert again.returncode == 4 and "is finished (verdict passed)" in again.stderr
    finally:
        worker.kill()
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    tests = json.loads(report.read_text())["tests"]
    assert sorted(t["node_id"] for t in tests) == sorted(
        f"tests/test_m{m}.py::test_{i}" for m in range(3) for i in range(8)
    )
    assert {t["outcome"] for t in tests} == {"passed"}
    assert stored(db, "SELECT state, verdict FROM runs") == [("finished", "passed")]
