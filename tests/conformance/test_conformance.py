"""Differential conformance: farm gives pytest's verdict on every suite of the corpus.

Each folder of ``suites/`` exercises one pytest behaviour. A copy of it (outside
this project, so no ini file of ours is found above it) runs under plain pytest,
then under ``farm run -n 2`` twice: cold (nothing cached) and warm (the same
command again, started from the cached collection). The three must agree on the
exit code, every count of the summary line and every test's outcome in the JUnit
XML (see ``tests/oracle.py``).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest
from helpers import NO_IDLE_PLUGINS, NO_RANDOMLY, farm_env
from oracle import compare, run_farm, run_pytest

SUITES = Path(__file__).resolve().parent / "suites"

# The pytest options each suite runs with, as a user would type them.
OPTIONS: dict[str, list[str]] = {
    "keyword_marker": ["-k", "alpha", "-m", "not slow"],
    "maxfail": ["--maxfail=2"],
    "printing": ["-rA"],
    "subtests_fixture": ["-v"],  # passed subtests count only when verbose
    "timeout_option": ["--timeout=1"],  # pytest-timeout's; timeout_ini sets it in its ini
}

# Suites of tests that fail once and then pass: pytest-rerunfailures' options, farm's,
# and how many tests farm must call flaky. pytest counts each rerun ("6 rerun"), farm
# each flaky test ("5 flaky"); a test that fails every attempt is rerun by both.
RETRIES: dict[str, tuple[list[str], list[str], int]] = {
    "retries": (["--reruns", "1"], ["--retries", "1"], 5),
}

# farm's own options per suite: with retries off, a suite of tests that fail once
# must get exactly plain pytest's verdict.
FARM_OPTIONS: dict[str, list[str]] = {
    "retries": ["--retries", "0"],
    # A test past its time limit fails again on a retry: only time would differ.
    "timeout_ini": ["--retries", "0"],
    "timeout_option": ["--retries", "0"],
}

# Suites that stop at failures (-x, --maxfail): which passing tests finished before
# the stop depends on the workers, so only those may differ from pytest's, never a
# failure, the exit code or a test's outcome where both ran it.
STOPS_EARLY = {"exitfirst", "maxfail"}

pytestmark = pytest.mark.integration


def _may_differ(suite: str, difference: str) -> bool:
    if suite not in STOPS_EARLY:
        return False
    return difference.startswith("count 'passed'") or (
        difference.startswith("only in pytest:") and difference.endswith("(passed)")
    )


def _env() -> dict[str, str]:
    env = farm_env()
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    # No inherited addopts, but pytest-randomly stays off (see tests/conftest.py): the
    # suites run in their written order under pytest, as under farm.
    env["PYTEST_ADDOPTS"] = f"{NO_RANDOMLY} {NO_IDLE_PLUGINS}"
    return env


@pytest.mark.parametrize("suite", sorted(p.name for p in SUITES.iterdir() if p.is_dir()))
def test_farm_agrees_with_pytest(suite: str, tmp_path: Path) -> None:
    copy = tmp_path / suite
    shutil.copytree(SUITES / suite, copy)
    args = OPTIONS.get(suite, [])
    env = _env()
    shutil.rmtree(copy / ".attempts", ignore_errors=True)
    expected = run_pytest(copy, args, env, timeout_s=60)
    assert not expected.hung and expected.counts, expected.output[-2000:]
    for when in ("cold", "warm"):
        shutil.rmtree(copy / ".attempts", ignore_errors=True)
        got = run_farm(
            copy, args, env, tmp_path / "state", 2, timeout_s=60,
            farm_args=FARM_OPTIONS.get(suite, []),
        )  # fmt: skip
        differences = [d for d in compare(expected, got) if not _may_differ(suite, d)]
        assert not differences, (
            f"{suite} ({when}): farm differs from pytest:\n  "
            + "\n  ".join(differences)
            + f"\n--- pytest ---\n{expected.output[-1500:]}\n--- farm ---\n{got.output[-3000:]}"
        )


@pytest.mark.parametrize("suite", sorted(RETRIES))
def test_farm_retries_agree_with_pytest_rerunfailures(suite: str, tmp_path: Path) -> None:
    copy = tmp_path / suite
    shutil.copytree(SUITES / suite, copy)
    reruns, retries, flaky = RETRIES[suite]
    # pytest-rerunfailures has no retry budget: farm's may cover every test here.
    env = {**_env(), "FARM_RETRY_BUDGET": "1"}
    shutil.rmtree(copy / ".attempts", ignore_errors=True)
    expected = run_pytest(copy, reruns, env, timeout_s=60)
    assert not expected.hung and expected.counts, expected.output[-2000:]
    reran = expected.counts.pop("rerun", 0)
    assert reran == flaky + expected.counts.get("failed", 0) * int(reruns[-1]), expected.output
    for when in ("cold", "warm"):
        shutil.rmtree(copy / ".attempts", ignore_errors=True)
        got = run_farm(copy, [], env, tmp_path / "state", 2, timeout_s=60, farm_args=retries)
        assert got.counts.pop("flaky", 0) == flaky, got.output[-3000:]
        differences = compare(expected, got)
        assert not differences, (
            f"{suite} ({when}): farm differs from pytest:\n  "
            + "\n  ".join(differences)
            + f"\n--- pytest ---\n{expected.output[-1500:]}\n--- farm ---\n{got.output[-3000:]}"
        )
