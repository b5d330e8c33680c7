"""Order dependence made visible, end to end: a suite whose tests pass under plain
pytest only because of the order its files run in, under ``farm run`` with real
Redis, Celery workers and pytest processes, then ``farm run --isolate``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from helpers import farm_env, git, run_farm

pytestmark = pytest.mark.integration

NEEDS_A = "tests/test_b.py::test_needs_a"
VICTIM = "tests/test_c_victim.py::test_clean_state"
SUITE = {
    # Its import sets what test_b needs: under plain pytest it is imported first.
    "tests/test_a.py": 'import os\n\nos.environ["ORDER_FLAG"] = "set by test_a"\n\n\n'
    "def test_a():\n    assert True\n",
    "tests/test_b.py": "import os\n\n\ndef test_needs_a():\n"
    '    assert os.environ.get("ORDER_FLAG") == "set by test_a"\n\n\n'
    "def test_alone_is_fine():\n    assert True\n",
    "tests/helper_state.py": "STATE: list[str] = []\n",
    # Runs before the polluter under plain pytest, so it finds the state clean.
    "tests/test_c_victim.py": "import helper_state\n\n\ndef test_clean_state():\n"
    "    assert helper_state.STATE == []\n",
    "tests/test_d_polluter.py": "import helper_state\n\n\ndef test_pollutes():\n"
    '    helper_state.STATE.append("dirty")\n',
    "pytest.ini": "[pytest]\n",
}


@pytest.fixture
def suite(tmp_path: Path) -> Path:
    root = tmp_path / "suite"
    for name, text in SUITE.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    git(root, "init", "-q", "-b", "main")
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "suite")
    return root


def farm(suite: Path, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_farm("run", "--state-dir", str(tmp_path / "state"), *args, cwd=suite)


def report_of(suite: Path, tmp_path: Path, *args: str) -> tuple[int, str, dict[str, Any]]:
    path = tmp_path / "report.json"
    done = farm(suite, tmp_path, "--json", str(path), *args)
    return done.returncode, done.stdout + done.stderr, json.loads(path.read_text())


def test_plain_pytest_passes_farm_names_the_modules_and_isolate_the_culprit(
    suite: Path, tmp_path: Path
) -> None:
    plain = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=suite, env=farm_env(), capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert plain.returncode == 0 and "5 passed" in plain.stdout, plain.stdout

    # One worker: one shard holds every module, in pytest's order, as plain pytest.
    code, output, report = report_of(suite, tmp_path, "-n", "1", "--strategy", "modules")
    assert (code, report["verdict"]) == (0, "passed"), output
    assert report["order_dependent"] == []

    # A worker a module: test_b.py runs in a process that never imported test_a.py.
    code, output, report = report_of(suite, tmp_path, "-n", "4", "--strategy", "modules")
    assert (code, report["verdict"]) == (1, "failed"), output
    failed = [t["node_id"] for t in report["tests"] if t["outcome"] == "failed"]
    assert failed == [NEEDS_A]
    (suspect,) = report["order_dependent"]
    assert (suspect["node_id"], suspect["sign"]) == (NEEDS_A, "regressed")
    before, *here = suspect["attempts"]
    assert (before["outcome"], before["planned"]) == ("passed", True)
    assert before["modules_before"] == ["tests/test_a.py"]
    assert before["modules_after"] == ["tests/test_c_victim.py", "tests/test_d_polluter.py"]
    assert [(a["outcome"], a["modules_before"]) for a in here] == [("failed", [])] * 2
    assert "tests that may depend on order" in output
    assert "passed on" in output and "after tests/test_a.py; imported, run later" in output
    assert f"to find the module: farm run --isolate {NEEDS_A}" in output

    done = farm(suite, tmp_path, "--isolate", NEEDS_A)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "plain pytest process on this machine (not farm's workers)" in done.stdout
    assert (
        f"{NEEDS_A} fails alone, passes after tests/test_a.py (which ran before it on "
    ) in done.stdout
    assert "it depends on an import or state of that module" in done.stdout
    # pytest-randomly is off in this environment (PYTEST_ADDOPTS): nothing to add.
    assert f"to see it: pytest tests/test_a.py {NEEDS_A}" in done.stdout


def test_isolate_finds_the_module_that_pollutes(suite: Path, tmp_path: Path) -> None:
    done = farm(suite, tmp_path, "--isolate", VICTIM, "--after", "tests/test_a.py",
                "--after", "tests/test_d_polluter.py", "--after", "tests/test_b.py")  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    trials = [line.split() for line in lines if line.startswith("  ")]
    assert trials[:2] == [["passed", "alone"], ["failed", "after", "3", "modules",
                          "(tests/test_a.py", "...", "tests/test_b.py)"]]  # fmt: skip
    assert trials[-1] == ["failed", "after", "tests/test_d_polluter.py"]
    assert len(trials) <= 4  # alone, after all, then log2(3) halvings
    assert (
        f"{VICTIM} passes alone, fails after tests/test_d_polluter.py (which ran before it as "
        "given with --after): it depends on state that module leaves"
    ) in done.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--isolate", "tests/test_b.py::nope", "--after", "tests/test_a.py"),
         "unknown node id tests/test_b.py::nope"),
        (("--isolate", "tests/test_x.py::t"), "unknown node id tests/test_x.py::t: no file"),
        (("--isolate", NEEDS_A), "no results store here"),
        (("--isolate", NEEDS_A, "--after", "tests/gone.py"), "--after tests/gone.py: no such"),
        (("--isolate", NEEDS_A, "-n", "2"), "it takes no --workers"),
        (("--after", "tests/test_a.py"), "--after goes with --isolate NODE_ID"),
    ],
)  # fmt: skip
def test_bad_input_is_one_line_before_anything_runs(
    suite: Path, tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    done = farm(suite, tmp_path, *args)
    assert done.returncode == 4
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1 and message in done.stderr, done.stderr
    assert not (tmp_path / "state").exists()  # no store made, nothing run
