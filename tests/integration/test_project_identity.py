"""History imported for a suite is the history its runs read and write, from any folder."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from helpers import run_farm

pytestmark = pytest.mark.integration

IMPORTED_S = {"test_a.py::test_one": 4.56, "test_b.py::test_two": 3.21}


@pytest.fixture
def top(tmp_path: Path) -> Path:
    """``top/suite`` with a pytest.ini of its own, so its rootdir is not ``top``."""
    suite = tmp_path / "top" / "suite"
    suite.mkdir(parents=True)
    (suite / "pytest.ini").write_text("[pytest]\n")
    (suite / "test_a.py").write_text("def test_one():\n    pass\n")
    (suite / "test_b.py").write_text("def test_two():\n    pass\n")
    # Node ids as pytest writes them: relative to the suite's rootdir.
    (tmp_path / "top" / "durations.json").write_text(json.dumps(IMPORTED_S))
    return tmp_path / "top"


def test_import_from_a_folder_above_the_suite_is_what_the_run_reads(top: Path) -> None:
    wrong = run_farm("history", "import", "durations.json", cwd=top)
    assert "into project 'top'" in wrong.stdout, wrong.stdout + wrong.stderr
    assert "no test file named in durations.json is under the rootdir" in wrong.stderr

    imported = run_farm("history", "import", "durations.json", "suite", cwd=top)
    assert imported.returncode == 0, imported.stderr
    assert "imported 2 durations into project 'suite'" in imported.stdout
    assert "project 'suite' has no runs yet" in imported.stderr

    ran = run_farm("run", "suite", "-n", "1", cwd=top)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "farm: project suite" in ran.stderr.splitlines()
    # The slowest-tests table shows the plan's estimate beside each test.
    for node_id, estimate_s in IMPORTED_S.items():
        assert re.search(rf"{estimate_s:.2f}s\s+{re.escape(node_id)}", ran.stdout), ran.stdout

    exported = run_farm("history", "export", "out.json", "suite", cwd=top)
    assert "of project 'suite'" in exported.stdout, exported.stderr
    learned_s = json.loads((top / "out.json").read_text())
    # The run folded its own durations into the imported ones: the same project.
    assert set(learned_s) == set(IMPORTED_S)
    assert all(learned_s[n] < IMPORTED_S[n] for n in IMPORTED_S)
    # The state folder the commands made keeps itself out of the user's repository.
    assert (top / ".farm" / ".gitignore").read_text().splitlines()[-1] == "*"
