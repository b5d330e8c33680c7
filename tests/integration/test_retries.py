"""Retries, flaky tests, the retry budget and quarantine, end to end: real Redis,
Celery workers, pytest processes and the SQLite store, driven by ``farm run``."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from helpers import farm_env, make_suite, run_farm

from farm.store import ResultStore

pytestmark = pytest.mark.integration


def farm_run(
    suite: Path, tmp_path: Path, *args: str, state: str = "state", **env: str
) -> tuple[int, str, dict[str, Any], ET.Element]:
    """``farm run`` on ``suite``: exit code, output, JSON report and JUnit XML."""
    report, junit = tmp_path / "r.json", tmp_path / "junit.xml"
    done = run_farm(
        "run", "--state-dir", str(tmp_path / state), "--json", str(report),
        "--junit-xml", str(junit), *args,
        cwd=suite, env=farm_env(FLAKY_STATE_DIR=str(tmp_path / "flaky"), **env),
    )  # fmt: skip
    output = done.stdout + done.stderr
    assert report.exists(), output
    return done.returncode, output, json.loads(report.read_text()), ET.parse(junit).getroot()


def by_node_id(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["node_id"]: t for t in report["tests"]}


def test_broken_tests_fail_and_flaky_ones_pass_on_another_slot(tmp_path: Path) -> None:
    suite = tmp_path / "suite"
    expected = make_suite(
        suite, "--tests", "200", "--modules", "4", "--fail", "3", "--flaky", "5",
        "--scale", "0.005",
    )  # fmt: skip
    code, output, report, junit = farm_run(suite, tmp_path, "-n", "3")
    assert code == 1, output
    assert report["verdict"] == "failed"
    assert sorted(report["flaky"]) == sorted(expected["flaky"])
    tests = by_node_id(report)
    failed = sorted(n for n, t in tests.items() if t["outcome"] == "failed")
    assert failed == sorted(expected["fail"])
    for node_id in expected["fail"]:
        assert node_id in report["message"] or len(expected["fail"]) > 3
        outcomes = [a["outcome"] for a in tests[node_id]["attempts"]]
        assert outcomes == ["failed", "failed"], tests[node_id]
    for node_id in expected["flaky"]:
        attempts = tests[node_id]["attempts"]
        assert [a["outcome"] for a in attempts] == ["failed", "passed"]
        assert [a["attempt"] for a in attempts] == [1, 2]
        assert attempts[0]["worker"] != attempts[1]["worker"], attempts
        assert tests[node_id]["flaky"] is True
    assert "3 failed, 197 passed, 5 flaky" in output
    # JUnit keeps the final outcomes and every earlier failure.
    assert len(junit.findall(".//testcase/failure")) == 3
    assert len(junit.findall(".//testcase/rerunFailure")) == 3
    assert len(junit.findall(".//testcase/flakyFailure")) == 5
    assert report["retries"]["spent"] == 8 and not report["retries"]["exhausted"]


def test_flaky_tests_alone_pass_with_exit_0_unless_flaky_fails(tmp_path: Path) -> None:
    suite = tmp_path / "suite"
    expected = make_suite(
        suite, "--tests", "100", "--modules", "4", "--flaky", "5", "--scale", "0.005"
    )
    code, output, report, _ = farm_run(suite, tmp_path, "-n", "2")
    assert (code, report["verdict"]) == (0, "flaky"), output
    assert sorted(report["flaky"]) == sorted(expected["flaky"])
    assert "100 passed, 5 flaky" in output

    (tmp_path / "flaky").rename(tmp_path / "flaky-first")  # the flaky tests fail once more
    code, output, report, _ = farm_run(suite, tmp_path, "-n", "2", "--flaky", "fail")
    assert (code, report["verdict"]) == (1, "failed"), output
    assert sorted(report["flaky"]) == sorted(expected["flaky"])


def test_retries_0_gives_the_pytest_verdict(tmp_path: Path) -> None:
    suite = tmp_path / "suite"
    make_suite(suite, "--tests", "30", "--modules", "3", "--flaky", "2", "--scale", "0.02")
    code, output, report, junit = farm_run(suite, tmp_path, "-n", "2", "--retries", "0")
    assert (code, report["verdict"]) == (1, "failed"), output
    assert "2 failed, 28 passed in" in output and "flaky" not in output.split("=")[-2]
    assert report["flaky"] == [] and all(len(t["attempts"]) == 1 for t in report["tests"])
    assert junit.findall(".//rerunFailure") == junit.findall(".//flakyFailure") == []


def test_a_broken_change_runs_out_of_retry_budget(tmp_path: Path) -> None:
    suite = tmp_path / "suite"
    make_suite(suite, "--tests", "200", "--modules", "5", "--fail", "40", "--scale", "0.005")
    code, output, report, _ = farm_run(suite, tmp_path, "-n", "2")
    assert (code, report["verdict"]) == (1, "failed"), output
    retries = report["retries"]
    assert (retries["budget"], retries["spent"]) == (10, 10)
    assert retries["exhausted"] and len(retries["denied"]) == 30
    assert "retry budget" in output
    attempts = sum(len(t["attempts"]) for t in report["tests"])
    assert attempts == 200 + 10


def test_intermittent_tests_are_quarantined_then_released(tmp_path: Path) -> None:
    suite = tmp_path / "suite"
    expected = make_suite(
        suite, "--tests", "16", "--modules", "2", "--intermittent", "4", "--rate", "0.5",
        "--scale", "0.01", "--seed", "7",
    )  # fmt: skip
    intermittent = set(expected["intermittent"])
    rules = {
        "FARM_QUARANTINE_FLAKY_RUNS": "1",
        "FARM_QUARANTINE_WINDOW_RUNS": "4",
        "FARM_QUARANTINE_CLEAN_RUNS": "2",
        "FARM_RETRIES": "2",
        "FARM_RETRY_BUDGET": "1",  # four of sixteen tests are intermittent
    }
    state = tmp_path / "state"
    with_store = f"sqlite:///{state / 'farm.db'}"
    quarantined: set[str] = set()
    verdicts = []
    for _ in range(8):
        code, output, report, _ = farm_run(suite, tmp_path, "-n", "2", **rules)
        verdicts.append(report["verdict"])
        # A failure of a test quarantined before the run never fails the verdict.
        failing = {t["node_id"] for t in report["tests"] if t["outcome"] == "failed"}
        assert failing & quarantined <= set(report["quarantined_failures"]), output
        if failing <= quarantined:
            assert code == 0 and report["verdict"] != "failed", output
        with ResultStore.open(with_store) as store:
            quarantined = set(store.quarantine.current("suite"))
        assert quarantined <= intermittent
        if quarantined == intermittent:
            break
    assert quarantined == intermittent, verdicts
    # They pass from now on: two clean runs take them out of quarantine.
    data = json.loads((suite / "expected.json").read_text())
    (suite / "expected.json").write_text(json.dumps({**data, "rate": 0.0}))
    for _ in range(2):
        code, output, _, _ = farm_run(suite, tmp_path, "-n", "2", **rules)
        assert code == 0, output
    with ResultStore.open(with_store) as store:
        assert store.quarantine.current("suite") == frozenset()
        events = store.quarantine.events("suite")
        stats = store.test_stats("suite", sorted(intermittent))
    for node_id in intermittent:
        actions = [e.action.value for e in reversed(events) if e.node_id == node_id]
        assert actions == ["entered", "left"], actions
        assert stats[node_id].flaky_runs >= 1 and stats[node_id].last_failure_at is not None
