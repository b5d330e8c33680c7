"""Bad input: one clear line naming the problem, a non-zero exit, never a traceback or a pass."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from helpers import run_farm

pytestmark = pytest.mark.integration


def one_line_error(stderr: str) -> str:
    assert "Traceback (most recent call last)" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.startswith("farm: error:")]
    assert len(lines) == 1, stderr
    return lines[0]


@pytest.fixture
def suite(tmp_path: Path) -> Path:
    folder = tmp_path / "suite"
    folder.mkdir()
    (folder / "test_ok.py").write_text("def test_ok():\n    assert True\n")
    return folder


def farm_run(suite: Path, *args: str, timeout_s: float = 120) -> tuple[int, str, str]:
    done = run_farm("run", "--state-dir", str(suite.parent / "state"), *args, cwd=suite,
                    timeout_s=timeout_s)  # fmt: skip
    return done.returncode, done.stdout, done.stderr


def test_missing_path(suite: Path) -> None:
    code, _, err = farm_run(suite, "no/such/dir", "-n", "1")
    assert code == 4
    assert "path does not exist: no/such/dir" in one_line_error(err)


@pytest.mark.parametrize("option", ["--junit-xml", "--json"])
@pytest.mark.parametrize("folder", ["no/such/dir", "test_ok.py"])
def test_report_path_without_a_folder_is_refused_before_anything_runs(
    suite: Path, option: str, folder: str
) -> None:
    target = f"{folder}/report.out"
    code, _, err = farm_run(suite, "-n", "1", option, target)
    assert code == 4
    line = one_line_error(err)
    assert option in line and target in line
    assert not (suite.parent / "state").exists()  # no broker, workers or store were started


def test_report_path_that_is_a_folder(suite: Path) -> None:
    code, _, err = farm_run(suite, "-n", "1", "--junit-xml", str(suite))
    assert code == 4
    assert str(suite) in one_line_error(err)


def test_syntax_error_is_an_error_verdict_with_the_error_shown(suite: Path) -> None:
    (suite / "test_broken.py").write_text("def test_x(:\n    pass\n")
    code, _, err = farm_run(suite, "-n", "1")
    assert code == 2
    line = one_line_error(err)
    assert "collection failed" in line and "test_broken.py" in line
    assert "SyntaxError" in err  # pytest's own report is shown above the line


def test_import_error_is_an_error_verdict(suite: Path) -> None:
    (suite / "test_imports.py").write_text("import no_such_module_at_all\n\ndef test_y(): pass\n")
    code, _, err = farm_run(suite, "-n", "1")
    assert code == 2
    assert "no_such_module_at_all" in one_line_error(err)


def test_no_tests_collected_exits_5(suite: Path) -> None:
    code, _, err = farm_run(suite, "-n", "1", "--", "-k", "nothing_matches_this")
    assert code == 5
    assert "no tests collected" in one_line_error(err)


def test_broker_that_does_not_answer_fails_fast_with_password_masked(suite: Path) -> None:
    started = time.monotonic()
    code, _, err = farm_run(suite, "--broker", "redis://:hunter2@127.0.0.1:1/0", "-n", "1")
    assert code == 3
    line = one_line_error(err)
    assert "redis://:***@127.0.0.1:1/0" in line and "hunter2" not in err
    assert time.monotonic() - started < 15


def test_database_that_cannot_be_opened(suite: Path, tmp_path: Path) -> None:
    code, _, err = farm_run(suite, "--db", f"sqlite:///{tmp_path}/missing/dir/farm.db", "-n", "1")
    assert code == 3
    assert "cannot open results store" in one_line_error(err)


def test_database_url_of_an_unknown_kind(suite: Path) -> None:
    code, _, err = farm_run(suite, "--db", "nosuchdb://x/y", "-n", "1")
    assert code in (3, 4)
    one_line_error(err)


@pytest.mark.parametrize("workers", ["0", "-3", "many"])
def test_bad_worker_counts(suite: Path, workers: str) -> None:
    code, _, err = farm_run(suite, "-n", workers)
    assert code == 4
    assert "-n" in one_line_error(err)


def test_pytest_option_the_suite_rejects(suite: Path) -> None:
    code, _, err = farm_run(suite, "-n", "1", "--", "--no-such-pytest-option")
    assert code == 4
    assert "--no-such-pytest-option" in one_line_error(err)


@pytest.mark.parametrize(
    ("content", "problem"),
    [("{not json", "neither JSON nor JUnit XML"), ('{"a.py::t": -1}', "negative")],
)
def test_bad_durations_file(tmp_path: Path, content: str, problem: str) -> None:
    (tmp_path / "tests.txt").write_text("a.py::t\n")
    (tmp_path / "d.json").write_text(content)
    done = run_farm(
        "plan", "--tests", "tests.txt", "--durations", "d.json", "-n", "2", cwd=tmp_path
    )
    assert done.returncode == 4
    assert problem in one_line_error(done.stderr)


def test_bad_history_import(tmp_path: Path) -> None:
    (tmp_path / "h.json").write_text('{"a.py::t": "slow"}')
    done = run_farm("history", "import", "h.json", "--state-dir", str(tmp_path / "s"), cwd=tmp_path)
    assert done.returncode == 4
    one_line_error(done.stderr)


def test_plan_from_files_prints_json(tmp_path: Path) -> None:
    (tmp_path / "tests.txt").write_text("a.py::t1\na.py::t2\nb.py::t3\n")
    (tmp_path / "d.json").write_text(json.dumps({"a.py::t1": 3.0, "a.py::t2": 1.0}))
    done = run_farm("plan", "--tests", "tests.txt", "--durations", "d.json", "-n", "2", "--json",
                    cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout)
    planned = sorted(n for shard in plan["shards"] for n in shard["node_ids"])
    assert planned == ["a.py::t1", "a.py::t2", "b.py::t3"]
