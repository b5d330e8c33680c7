"""Helpers for tests that drive farm as a user does: a generated suite, a farm subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from farm.domain import Outcome, TestResult

ROOT = Path(__file__).resolve().parent.parent
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
