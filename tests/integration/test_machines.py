"""Two machines on one farm, one of them bad: failures there are retried on the
other machine, and the run and ``farm workers`` name the machine, not the tests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import WorkerProcess, farm_env, run_farm

pytestmark = pytest.mark.integration

# A test process keeps its worker's TMPDIR: the bad machine's has "bad" in it.
MACHINE_SENSITIVE = """
import os


def test_{n}():
    assert "bad" not in os.environ.get("TMPDIR", ""), "this machine is broken"
"""


def test_failures_of_one_machine_are_retried_elsewhere_and_point_at_it(
    tmp_path: Path, redis_url: str, key_prefix: str
) -> None:
    suite = tmp_path / "suite"
    (suite / "tests").mkdir(parents=True)
    (suite / "pytest.ini").write_text("[pytest]\n")
    for n in range(12):
        (suite / "tests" / f"test_m{n:02d}.py").write_text(MACHINE_SENSITIVE.format(n=n))
    env = farm_env(FARM_KEY_PREFIX=key_prefix, FARM_QUEUE=key_prefix + "q", FARM_RETRY_BUDGET="1")
    workers = [
        WorkerProcess(
            tmp_path / f"{log}.log",
            "--broker",
            redis_url,
            "-c",
            "2",
            "--machine",
            machine,
            "--name",
            f"worker-{machine}",
            "--cache",
            str(tmp_path / f"cache-{machine}"),
            cwd=tmp_path,
            env=env,
        )
        for log, machine in (("good", "host-a"), ("bad", "host-b"))
    ]
    state = tmp_path / "state"
    report = tmp_path / "r.json"
    try:
        done = run_farm(
            "run",
            "--broker",
            redis_url,
            "-n",
            "4",
            "--state-dir",
            str(state),
            "--json",
            str(report),
            cwd=suite,
            env=env,
            timeout_s=120,
        )
        output = done.stdout + done.stderr
        listed = run_farm(
            "workers",
            "--broker",
            redis_url,
            "--db",
            f"sqlite:///{state / 'farm.db'}",
            "--project",
            "suite",
            cwd=suite,
            env=env,
        )
    finally:
        for worker in workers:
            worker.kill()
    data = json.loads(report.read_text())
    flaky = data["flaky"]
    assert flaky, output  # some tests first ran on the bad machine
    assert (done.returncode, data["verdict"]) == (0, "flaky"), output
    tests = {t["node_id"]: t for t in data["tests"]}
    for node_id in flaky:
        attempts = tests[node_id]["attempts"]
        assert [(a["outcome"], a["machine"]) for a in attempts] == [
            ("failed", "host-b"),
            ("passed", "host-a"),
        ]
    assert {s["machine"] for s in data["suspects"]} == {"host-b"}
    assert sorted(s["node_id"] for s in data["suspects"]) == sorted(flaky)
    assert "1 of 1 failures of" in output and "on host-b" in output
    assert listed.returncode == 0, listed.stdout + listed.stderr
    assert "host-b" in listed.stdout and "suspect" in listed.stdout.lower(), listed.stdout
