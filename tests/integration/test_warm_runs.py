"""Warm runs: shards start from the last collection and settle on the real one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import run_farm

pytestmark = pytest.mark.integration


def write_suite(folder: Path, modules: dict[str, list[str]]) -> None:
    for name, tests in modules.items():
        body = "".join(
            f"def {test}():\n    assert {'0' if 'fail' in test else '1'}\n\n" for test in tests
        )
        (folder / name).write_text(body)


def farm_run(suite: Path, state: Path, report: Path) -> tuple[int, dict[str, str], str]:
    done = run_farm("run", "-n", "2", "--state-dir", str(state), "--json", str(report), cwd=suite)
    data = json.loads(report.read_text()) if report.exists() else {"tests": []}
    outcomes = {t["node_id"]: t["outcome"] for t in data["tests"]}
    return done.returncode, outcomes, done.stdout + done.stderr


def test_a_changed_suite_runs_exactly_what_is_collected_now(tmp_path: Path) -> None:
    suite, state, report = tmp_path / "suite", tmp_path / "state", tmp_path / "r.json"
    suite.mkdir()
    (suite / "pytest.ini").write_text("[pytest]\n")
    write_suite(suite, {"test_a.py": ["test_1", "test_2"], "test_b.py": ["test_1"]})
    code, outcomes, output = farm_run(suite, state, report)
    assert code == 0, output
    assert len(outcomes) == 3

    # Between runs: a test added to a known module, one removed, a module deleted,
    # a new module with a failing test, and a file with no tests at all.
    write_suite(suite, {"test_a.py": ["test_1", "test_3"], "test_c.py": ["test_fail"]})
    (suite / "test_b.py").unlink()
    (suite / "test_empty.py").write_text("VALUE = 1\n")
    code, outcomes, output = farm_run(suite, state, report)
    assert code == 1, output
    assert outcomes == {
        "test_a.py::test_1": "passed",
        "test_a.py::test_3": "passed",
        "test_c.py::test_fail": "failed",
    }
    assert "1 failed, 2 passed" in output


def test_a_module_broken_since_the_last_run_is_an_error_verdict(tmp_path: Path) -> None:
    suite, state, report = tmp_path / "suite", tmp_path / "state", tmp_path / "r.json"
    suite.mkdir()
    write_suite(suite, {"test_a.py": ["test_1"], "test_b.py": ["test_1"]})
    assert farm_run(suite, state, report)[0] == 0
    (suite / "test_b.py").write_text("def test_1(:\n    pass\n")
    report.unlink()
    code, _, output = farm_run(suite, state, report)
    assert code == 2, output
    assert "collection" in output and "test_b.py" in output
    assert "passed" not in output.splitlines()[-1]


def test_a_module_that_skips_itself_is_counted_and_ends_the_warm_run(tmp_path: Path) -> None:
    # A second run once collected this module directly, took its "no tests" for the
    # end of the run, cancelled its shards and waited for them forever.
    suite, state, report = tmp_path / "suite", tmp_path / "state", tmp_path / "r.json"
    suite.mkdir()
    (suite / "test_optional.py").write_text(
        "import pytest\npytest.importorskip('no_such_mod')\n\ndef test_x():\n    pass\n"
    )
    for name in "abcd":
        tests = "".join(f"def test_{i}():\n    time.sleep(0.3)\n\n" for i in range(4))
        (suite / f"test_{name}.py").write_text(f"import time\n\n{tests}")
    for _ in ("cold", "warm"):
        code, outcomes, output = farm_run(suite, state, report)
        assert code == 0, output
        assert outcomes["test_optional.py"] == "skipped"
        assert len(outcomes) == 17
        assert "16 passed, 1 skipped in" in output
