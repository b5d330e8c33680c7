"""farm prints pytest's end-of-run sections as pytest prints them.

One suite with a test of every kind the sections show (a pass, failures, errors in
setup and teardown, warnings, skips, xfails and xpasses, captured output, a module
that skips itself, a mark pytest warns about while collecting) runs under plain
pytest and under ``farm run -n 2`` with the same reporting options, given on the
command line or in the ini file, and the two texts are compared section by section
(see ``tests/sections.py``): the ``-v`` lines, ERRORS, FAILURES, the warnings
summary, PASSES, the slowest durations, the short test summary, and the counts.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest
from helpers import NO_IDLE_PLUGINS, farm_env
from oracle import run_farm, run_pytest
from sections import cut, differences

SUITE = Path(__file__).resolve().parent.parent / "conformance" / "suites" / "reporting"

# (id, pytest options on the command line, the ini file's [pytest] lines)
CASES: list[tuple[str, list[str], str]] = [
    ("ra", ["-ra"], ""),
    ("rA", ["-rA"], ""),
    ("q", ["-q"], ""),
    ("qq", ["-qq", "-rs"], ""),
    ("v", ["-v"], ""),
    ("vv", ["-vv", "-rA"], ""),
    ("tb-short", ["--tb=short"], ""),
    ("tb-long", ["--tb=long", "-rA"], ""),
    ("tb-line", ["--tb=line"], ""),
    ("tb-no", ["--tb=no", "-ra"], ""),
    ("tb-native", ["--tb=native", "-rE"], ""),
    ("no-fold-skipped", ["-rs", "--no-fold-skipped"], ""),
    ("durations-hidden", ["--durations=5", "--durations-min=1000"], ""),
    ("durations-all", ["--durations=0", "-vv"], ""),
    ("W-error-user", ["-W", "error::UserWarning", "-ra"], ""),
    ("W-error", ["-W", "error"], ""),  # the unknown mark's warning fails collection
    (
        "select",
        ["-k", "not multiline", "-m", "not slow", "--deselect", "test_report.py::test_pass"],
        "",
    ),
    ("ini-addopts", [], "addopts = -rA --tb=short -q"),
    ("ini-select", [], "addopts = -k 'not long' -m 'not slow' -ra"),
    ("ini-filterwarnings", ["-ra"], "filterwarnings =\n    error::DeprecationWarning"),
    ("ini-durations", [], "addopts = --durations=3 --durations-min=1000 -v"),
]

pytestmark = pytest.mark.integration


def _env() -> dict[str, str]:
    env = farm_env(COLUMNS="80")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTEST_ADDOPTS"] = NO_IDLE_PLUGINS  # none of the caller's options
    env.pop("CI", None)  # pytest cuts the short summary's messages to the width but on CI
    env.pop("BUILD_NUMBER", None)
    return env


@pytest.mark.parametrize(("options", "ini"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_farm_prints_pytests_sections(options: list[str], ini: str, tmp_path: Path) -> None:
    copy = tmp_path / "suite"
    shutil.copytree(SUITE, copy)
    if ini:
        (copy / "pytest.ini").write_text(f"[pytest]\n{ini}\n")
    env = _env()
    args = ["-p", "no:randomly", *options]
    expected = run_pytest(copy, ["-p", "no:cacheprovider", *args], env, timeout_s=60)
    got = run_farm(
        copy, args, env, tmp_path / "state", 2, timeout_s=90, farm_args=["--retries", "0"]
    )
    assert not got.hung and got.exit_code == expected.exit_code, got.output[-3000:]
    assert got.counts == expected.counts, (expected.output[-500:], got.output[-500:])
    pytest_text, farm_text = cut(expected.output), cut(got.output)
    assert pytest_text.sections, expected.output  # the comparison compares something
    found = differences(pytest_text, farm_text)
    assert not found, (
        "\n".join(found)
        + f"\n--- pytest ---\n{expected.output[-4000:]}\n--- farm ---\n{got.output[-4000:]}"
    )


def test_a_retried_failure_keeps_pytests_sections(tmp_path: Path) -> None:
    """With retries on, farm's findings follow the short summary; pytest's sections
    are those of the final attempts."""
    copy = tmp_path / "suite"
    shutil.copytree(SUITE, copy)
    env = {**_env(), "FARM_RETRY_BUDGET": "1"}
    args = ["-p", "no:randomly", "-ra"]
    expected = run_pytest(copy, ["-p", "no:cacheprovider", *args], env, timeout_s=60)
    got = run_farm(copy, args, env, tmp_path / "state", 2, timeout_s=90)
    assert got.exit_code == expected.exit_code, got.output[-3000:]
    assert "first failure after" in got.output
    found = differences(cut(expected.output), cut(got.output))
    assert not found, "\n".join(found) + f"\n--- farm ---\n{got.output[-4000:]}"
