"""--lf, --ff, --sw and --lfnf: farm with its store against plain pytest with its cache.

One suite, two copies: plain pytest runs one (its ``.pytest_cache`` remembers), farm
the other (its results store remembers). The same sequence of commands, with tests
fixed along the way, must give the same exit codes, the same summary counts
(deselected included) and the same outcome for every test that ran. ``--sw`` runs
use one worker, which farm plans in collection order, so the run stops where
pytest's does; the other runs use two. Repeated commands are warm runs for farm
(the collection cache), the last plain one included.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest
from helpers import NO_IDLE_PLUGINS, farm_env
from oracle import Outcome, compare, run_farm, run_pytest

pytestmark = pytest.mark.integration

NO_SHUFFLING = ["-p", "no:randomly", "-p", "no:random_order"]
# A test is broken until its name is in the suite's FIXED file.
BROKEN = (
    "from pathlib import Path\n\n"
    "FIXED = Path(__file__).parent.parent / 'FIXED'\n\n\n"
    "def broken(name):\n"
    "    return not FIXED.exists() or name not in FIXED.read_text().split()\n"
)
SUITE = {
    "tests/conftest.py": BROKEN,
    "tests/test_a.py": (
        "from conftest import broken\n\n\n"
        "def test_a1():\n    pass\n\n\n"
        "def test_a2():\n    assert not broken('a2')\n\n\n"
        "class TestA:\n"
        "    def test_m1(self):\n        pass\n\n"
        "    def test_m2(self):\n        assert not broken('m2')\n"
    ),
    "tests/test_b.py": "def test_b1():\n    pass\n\n\ndef test_b2():\n    pass\n",
    "tests/test_c.py": (
        "import pytest\n\nfrom conftest import broken\n\n\n"
        "@pytest.mark.parametrize('x', [1, 2, 3])\n"
        "def test_c(x):\n    assert x != 2 or not broken('c2')\n"
    ),
    "tests/test_empty.py": "VALUE = 1\n",
}

# (pytest's arguments after the paths, farm's workers, tests fixed before the step,
# what farm must say, pytest's exit code and counts): the sequence both run.
# test_a.py's failure is then only in its class, whose file pytest collects whole:
# test_a1 and test_a2 are deselected with TestA::test_m1.
STEPS: list[tuple[list[str], int, str, str, int, dict[str, int]]] = [
    ([], 2, "", "", 1, {"failed": 3, "passed": 6}),
    (["--lf"], 2, "", "run-last-failure: rerun previous 3 failures (skipped 2 files) (",
     1, {"failed": 3, "deselected": 1}),
    (["--ff"], 2, "", "run-last-failure: rerun previous 3 failures first (",
     1, {"failed": 3, "passed": 6}),
    (["--sw"], 1, "", "stepwise: no previously failed tests, not skipping.",
     2, {"failed": 1, "passed": 1}),
    (["--sw"], 1, "", "stepwise: skipping 1 already passed items",
     2, {"failed": 1, "deselected": 1}),
    (["--sw"], 1, "a2", "stepwise: skipping 1 already passed items",
     2, {"failed": 1, "passed": 2, "deselected": 1}),
    (["--sw-skip"], 1, "", "stepwise: skipping 3 already passed items",
     2, {"failed": 2, "passed": 3, "deselected": 3}),
    (["--lf"], 2, "", "run-last-failure: rerun previous 2 failures (skipped 2 files) (",
     1, {"failed": 2, "deselected": 3}),
    (["--lf"], 2, "m2 c2", "run-last-failure: rerun previous 2 failures (skipped 2 files) (",
     0, {"passed": 2, "deselected": 3}),
    (["--lf", "--lfnf=none"], 2, "", "no previously failed tests, deselecting all items.",
     5, {"deselected": 9}),
    ([], 2, "", "", 0, {"passed": 9}),
]  # fmt: skip


def _env() -> dict[str, str]:
    env = farm_env()
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTEST_ADDOPTS"] = NO_IDLE_PLUGINS  # none of the caller's options
    return env


def _write(root: Path) -> None:
    for name, text in SUITE.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def _show(expected: Outcome, got: Outcome) -> str:
    return f"\n--- pytest ---\n{expected.output[-1500:]}\n--- farm ---\n{got.output[-3000:]}"


def test_lf_ff_and_sw_agree_with_pytest_over_a_sequence_of_runs(tmp_path: Path) -> None:
    # Both copies have one name: farm's project is its rootdir's name.
    plain, farmed = tmp_path / "pytest" / "suite", tmp_path / "farm" / "suite"
    for root in (plain, farmed):
        _write(root)
    env, state = _env(), tmp_path / "state"
    fixed: list[str] = []
    for args, workers, fix, says, exit_code, counts in STEPS:
        fixed += fix.split()
        for root in (plain, farmed):
            (root / "FIXED").write_text("\n".join(fixed))
        command = ["tests", *NO_SHUFFLING, *args]
        expected = run_pytest(plain, command, env, timeout_s=60)
        got = run_farm(farmed, command, env, state, workers, timeout_s=120,
                       farm_args=["--retries", "0"])  # fmt: skip
        step = f"{' '.join(args) or 'plain'} (fixed: {' '.join(fixed) or 'none'})"
        assert (expected.exit_code, expected.counts) == (exit_code, counts), (
            f"{step}: pytest itself changed\n{expected.output[-1500:]}"
        )
        assert says in got.output, f"{step}: farm did not say {says!r}" + _show(expected, got)
        if args[-1:] == ["--lfnf=none"]:
            # pytest deselects all 9 tests and exits 5; farm ends before any run.
            assert got.exit_code == 5 and "no tests to run: 9 deselected" in got.output, step
            continue
        differences = compare(expected, got)
        assert not differences, (
            f"{step}: farm differs from pytest:\n  "
            + "\n  ".join(differences)
            + _show(expected, got)
        )
    assert (plain / ".pytest_cache").is_dir()
    assert not (farmed / ".pytest_cache").exists(), "farm wrote a .pytest_cache"


def test_the_collection_ignores_the_submitters_pytest_cache(tmp_path: Path) -> None:
    # pytest's cache here says test_b1 failed; farm's store knows nothing: --lf runs all.
    suite = tmp_path / "suite"
    _write(suite)
    (suite / "FIXED").write_text("a2 m2 c2")
    cache = suite / ".pytest_cache" / "v" / "cache"
    cache.mkdir(parents=True)
    (cache / "lastfailed").write_text('{"tests/test_b.py::test_b1": true}')
    before = (cache / "lastfailed").read_text()
    got = run_farm(suite, ["tests", *NO_SHUFFLING, "--lf"], _env(), tmp_path / "state", 2,
                   timeout_s=120)  # fmt: skip
    assert got.exit_code == 0, got.output[-3000:]
    assert got.counts == {"passed": 9}, got.output[-3000:]
    assert "run-last-failure: no previously failed tests, not deselecting items." in got.output
    assert (cache / "lastfailed").read_text() == before
    assert sorted(p.name for p in cache.iterdir()) == ["lastfailed"]
    shutil.rmtree(suite / ".pytest_cache")
