"""Chaos 5 end to end: tests that hang, exit, segfault or eat memory, through farm run.

Each gets exactly one final result with the right outcome, the well-behaved tests
beside them in the same shard pass, and the run ends with the verdict ``failed``
in bounded time.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from helpers import farm_env, run_farm

pytestmark = pytest.mark.integration

SUITE = """
import ctypes, os, time

import pytest

def test_ok_first():
    pass

def test_sleeps_forever():
    print("about to sleep")
    while True:
        time.sleep(1)

@pytest.mark.timeout(1)
def test_marked_loop():
    while True:
        pass

def test_exits():
    print("leaving now")
    os._exit(3)

def test_segfaults():
    ctypes.string_at(0)

def test_eats_memory():
    hoard = []
    while True:
        hoard.append(bytearray(64 << 20))

def test_ok_last():
    pass
"""


def test_misbehaving_tests_each_get_one_result_and_the_rest_runs(tmp_path: Path) -> None:
    suite = tmp_path / "suite"
    suite.mkdir()
    # Without pytest-timeout (a test dependency), whose own timer would fail the marked
    # loop in the process as under pytest: here farm's outside timer is under test.
    (suite / "pytest.ini").write_text("[pytest]\naddopts = -p no:timeout\n")
    (suite / "test_chaos5.py").write_text(SUITE)
    report = tmp_path / "report.json"
    env = farm_env(FARM_TEST_TIMEOUT_S="2", FARM_TEST_MEMORY_LIMIT_BYTES=str(512 << 20))
    started = time.monotonic()
    done = run_farm(
        "run", "-n", "1", "--state-dir", str(tmp_path / "state"), "--json", str(report),
        cwd=suite, env=env, timeout_s=120,
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    assert time.monotonic() - started < 60
    tests = {t["node_id"].split("::")[1]: t for t in json.loads(report.read_text())["tests"]}
    assert len(tests) == 7
    outcomes = {name: t["outcome"] for name, t in tests.items()}
    assert outcomes["test_ok_first"] == outcomes["test_ok_last"] == "passed"
    assert outcomes["test_sleeps_forever"] == "timeout"
    assert "about to sleep" in tests["test_sleeps_forever"]["output"]
    assert "test_chaos5.py" in tests["test_sleeps_forever"]["longrepr"]  # the stack at the kill
    assert outcomes["test_marked_loop"] == "timeout"
    assert "timeout marker" in tests["test_marked_loop"]["longrepr"]
    assert outcomes["test_exits"] == "crashed"
    assert "leaving now" in tests["test_exits"]["longrepr"] + tests["test_exits"]["output"]
    assert outcomes["test_segfaults"] == "crashed"
    assert outcomes["test_eats_memory"] in ("failed", "crashed")
