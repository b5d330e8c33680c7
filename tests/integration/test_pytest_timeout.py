"""pytest-timeout's settings under farm: the limit pytest resolves is the limit, the
failure is pytest-timeout's own, and farm's timer is the backstop (the ``timeout_option``
and ``timeout_ini`` conformance suites compare the command line and the ini file)."""

from __future__ import annotations

import json
import os
import sys
import textwrap
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
from helpers import ResultsSink, farm_env
from oracle import compare, run_farm, run_pytest

from farm.core.domain import Outcome
from farm.core.shard_task import ShardTask
from farm.scheduler.collect import collect
from farm.worker.runner import ShardRunner

pytestmark = pytest.mark.integration

SUITE = """
import time

def test_fast():
    pass

def test_past_the_limit():
    time.sleep(2.5)

def test_after():
    pass
"""
FAILURE = "Failed: Timeout (>1.0s) from pytest-timeout."


def env(**extra: str) -> dict[str, str]:
    made = farm_env(**extra)
    made["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{made.get('PATH', '')}"
    return made


@pytest.fixture
def suite(tmp_path: Path) -> Path:
    folder = tmp_path / "suite"
    folder.mkdir()
    (folder / "test_t.py").write_text(textwrap.dedent(SUITE))
    return folder


def report(tmp_path: Path, args: Sequence[str], environment: dict[str, str]) -> dict[str, str]:
    """``farm run`` on the suite: each test's outcome from its JSON report."""
    out = tmp_path / "r.json"
    got = run_farm(
        tmp_path / "suite", args, environment, tmp_path / "state", 2,
        timeout_s=60, farm_args=("--retries", "0", "--json", str(out)),
    )  # fmt: skip
    assert got.exit_code is not None, got.output
    return {t["node_id"]: t["outcome"] for t in json.loads(out.read_text())["tests"]}


def test_the_environment_variable_sets_the_limit_cold_and_warm(suite: Path, tmp_path: Path) -> None:
    timed = env(PYTEST_TIMEOUT="1")
    expected = run_pytest(suite, [], timed, timeout_s=60)
    assert expected.counts == {"failed": 1, "passed": 2}, expected.output[-2000:]
    assert FAILURE in expected.output
    for _ in ("cold", "warm"):
        got = run_farm(suite, [], timed, tmp_path / "state", 2, timeout_s=60)
        assert compare(expected, got) == [], got.output[-3000:]
        assert FAILURE in got.output  # pytest-timeout's own failure, not farm's
    # The variable is part of what the run asks of pytest: without it, no limit.
    assert report(tmp_path, [], env())["test_t.py::test_past_the_limit"] == "passed"


def test_the_thread_method_is_farms_to_enforce_and_the_rest_runs(
    suite: Path, tmp_path: Path
) -> None:
    # Under pytest the thread method ends the whole run (os._exit) at the first
    # timeout; under farm the test times out and the others run.
    outcomes = report(tmp_path, ["--timeout=1", "--timeout-method=thread"], env())
    assert outcomes == {
        "test_t.py::test_fast": "passed",
        "test_t.py::test_past_the_limit": "timeout",
        "test_t.py::test_after": "passed",
    }


def test_a_test_stuck_in_c_is_stopped_by_farm_after_pytest_timeouts_grace(
    tmp_path: Path,
) -> None:
    # sum over a range runs in C and never lets pytest-timeout's SIGALRM handler run:
    # under plain pytest this test hangs for good.
    (tmp_path / "test_t.py").write_text("def test_sums():\n    sum(range(10**18))\n")
    collection = collect([], ["--timeout=1"], cwd=tmp_path)
    assert collection.options.timeout_s == 1.0
    task = ShardTask(
        "run1", 0, 1, collection.rootdir, collection.node_ids, ("--timeout=1",),
        test_timeout_s=60.0, pytest_timeout_s=collection.options.timeout_s,
    )  # fmt: skip
    sink = ResultsSink()
    started = time.monotonic()
    ShardRunner(task, sink, worker="w", env={"PATH": "/usr/bin:/bin"}).run()
    result = sink.results["test_t.py::test_sums"]
    assert result.outcome is Outcome.TIMEOUT
    assert result.longrepr.startswith("timed out after ")
    assert "(limit 1s from pytest-timeout)" in result.longrepr
    assert "in test_sums" in result.longrepr  # its stack, from faulthandler
    assert 6.0 <= result.duration_s < 9.0  # the limit, then pytest-timeout's grace
    assert time.monotonic() - started < 20
