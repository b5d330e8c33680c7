"""Runs of one change, end to end with ``farm run``: an errored run then a passing one,
failed-first on a branch's next run, and repeats of tests the project never saw."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from helpers import farm_env, make_suite, run_farm

pytestmark = pytest.mark.integration

SHA = "c0ffee" + "0" * 34


def report_of(done_output: str, path: Path) -> dict[str, Any]:
    assert path.exists(), done_output
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def test_an_infrastructure_error_then_a_pass_makes_the_change_pass(
    tmp_path: Path, redis_url: str
) -> None:
    suite = tmp_path / "suite"
    make_suite(suite, "--tests", "12", "--modules", "2", "--scale", "0.01")
    state = str(tmp_path / "state")
    change = ("--change", SHA, "--branch", "feature/x", "--repository", "example/shop")
    # A farm with no worker on its queue: the run ends in an infrastructure error.
    lonely = run_farm(
        "run", "--state-dir", state, "--broker", redis_url, *change, cwd=suite,
        env=farm_env(
            FARM_KEY_PREFIX=f"farm-test-{uuid.uuid4().hex[:8]}:", FARM_WORKER_START_TIMEOUT_S="2"
        ),
    )  # fmt: skip
    assert lonely.returncode == 3, lonely.stdout + lonely.stderr
    shown = run_farm("change", "show", SHA[:8], "--state-dir", state, cwd=suite)
    assert shown.returncode == 3 and "error" in shown.stdout, shown.stdout + shown.stderr
    passing = run_farm("run", "-n", "2", "--state-dir", state, *change, cwd=suite)
    assert passing.returncode == 0, passing.stdout + passing.stderr
    shown = run_farm("change", "show", SHA[:8], "--state-dir", state, "--json", cwd=suite)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    data = json.loads(shown.stdout)
    assert data["verdict"] == "passed"
    assert [run["verdict"] for run in data["runs"]] == ["error", "passed"]


def test_the_tests_that_failed_last_time_on_the_branch_start_first(tmp_path: Path) -> None:
    suite = tmp_path / "suite"
    expected = make_suite(
        suite, "--tests", "150", "--modules", "6", "--fail", "2", "--scale", "0.01"
    )
    state = str(tmp_path / "state")
    change = ("--change", SHA, "--branch", "feature/y", "--repository", "example/shop")
    first_report, second_report = tmp_path / "first.json", tmp_path / "second.json"
    first = run_farm(
        "run", "-n", "2", "--state-dir", state, "--json", str(first_report), *change, cwd=suite
    )
    assert first.returncode == 1, first.stdout + first.stderr
    second = run_farm(
        "run", "-n", "2", "--state-dir", state, "--json", str(second_report), *change, cwd=suite
    )
    report = report_of(second.stdout + second.stderr, second_report)
    started = {t["node_id"]: t["attempts"][0]["started_at"] for t in report["tests"]}
    # The failing tests' first attempts are among the first tests the run started.
    earliest = sorted(started, key=started.__getitem__)[: len(expected["fail"]) + 2]
    assert set(expected["fail"]) <= set(earliest), (expected["fail"], earliest)
    assert report["first_failure_s"] is not None
    assert report["first_failure_s"] <= report_of("", first_report)["first_failure_s"] + 1.0


NEW_TEST = """
from pathlib import Path

STATE = Path(__file__).parent / ".state"


def test_new_and_flaky():
    STATE.mkdir(exist_ok=True)
    runs = len(list(STATE.iterdir()))
    (STATE / str(runs)).touch()
    assert runs != 1, "the second run of this new test fails"


def test_new_and_steady():
    pass
"""


def test_new_tests_are_repeated_on_other_slots_and_a_flaky_one_fails(tmp_path: Path) -> None:
    suite = tmp_path / "suite"
    make_suite(suite, "--tests", "20", "--modules", "2", "--scale", "0.01")
    state = str(tmp_path / "state")
    known = run_farm("run", "-n", "3", "--state-dir", state, cwd=suite)
    assert known.returncode == 0, known.stdout + known.stderr
    (suite / "test_new.py").write_text(NEW_TEST)
    path = tmp_path / "r.json"
    done = run_farm(
        "run", "-n", "3", "--state-dir", state, "--json", str(path), "--new-tests-repeat", "3",
        cwd=suite,
    )  # fmt: skip
    report = report_of(done.stdout + done.stderr, path)
    assert (done.returncode, report["verdict"]) == (1, "failed"), done.stdout
    assert report["new_flaky"] == ["test_new.py::test_new_and_flaky"]
    tests = {t["node_id"]: t for t in report["tests"]}
    for node_id in ("test_new.py::test_new_and_flaky", "test_new.py::test_new_and_steady"):
        attempts = tests[node_id]["attempts"]
        assert [a["attempt"] for a in attempts] == [1, 2, 3]
        assert len({a["worker"] for a in attempts}) == 3, attempts
    # Tests the project knew ran once.
    assert all(len(t["attempts"]) == 1 for n, t in tests.items() if "test_new" not in n)
    assert "new test" in report["message"]
