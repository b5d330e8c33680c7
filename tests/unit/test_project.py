"""The project rule: configured name, else the name of the rootdir pytest would choose."""

from __future__ import annotations

from pathlib import Path

import pytest

from farm.core.errors import UsageError
from farm.core.project import names_files_under, project_name, pytest_rootdir


@pytest.fixture
def top(tmp_path: Path) -> Path:
    """``top/suite/test_a.py`` with no pytest configuration anywhere."""
    suite = tmp_path / "top" / "suite"
    suite.mkdir(parents=True)
    (suite / "test_a.py").write_text("def test_x():\n    pass\n")
    return tmp_path / "top"


def test_a_configured_name_wins() -> None:
    assert project_name("billing", Path("/src/suite")) == "billing"
    assert project_name("", Path("/src/suite")) == "suite"


def test_the_filesystem_root_is_named_by_its_path() -> None:
    assert project_name("", Path("/")) == "/"


def test_without_configuration_the_rootdir_is_the_common_ancestor_with_cwd(top: Path) -> None:
    assert pytest_rootdir(["suite"], top) == top
    assert pytest_rootdir([], top) == top
    assert pytest_rootdir([], top / "suite") == top / "suite"


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("pytest.ini", "[pytest]\n"),
        (".pytest.ini", "[pytest]\n"),
        ("pyproject.toml", "[tool.pytest.ini_options]\naddopts = ''\n"),
        ("tox.ini", "[pytest]\n"),
        ("setup.cfg", "[tool:pytest]\n"),
    ],
)
def test_a_config_file_in_the_suite_makes_it_the_rootdir(top: Path, name: str, text: str) -> None:
    (top / "suite" / name).write_text(text)
    assert pytest_rootdir(["suite"], top) == top / "suite"
    assert pytest_rootdir(["suite/test_a.py::test_x"], top) == top / "suite"
    assert project_name("", pytest_rootdir(["suite"], top)) == "suite"
    # With no paths, the working folder is what pytest would run.
    assert project_name("", pytest_rootdir([], top)) == "top"


@pytest.mark.parametrize(("name", "text"), [("tox.ini", "[tox]\n"), ("setup.cfg", "[metadata]\n")])
def test_a_config_file_without_a_pytest_section_does_not_count(
    top: Path, name: str, text: str
) -> None:
    (top.parent / name).write_text(text)
    assert project_name("", pytest_rootdir(["suite"], top)) == "top"
    assert project_name("", pytest_rootdir([], top)) == "top"


def test_a_config_file_above_the_paths_is_found(top: Path) -> None:
    (top / "pytest.ini").write_text("[pytest]\n")
    assert pytest_rootdir(["suite"], top / "suite") == top
    assert project_name("", pytest_rootdir([], top / "suite")) == "top"


def test_paths_that_do_not_exist_are_ignored_as_pytest_does(top: Path) -> None:
    (top / "suite" / "pytest.ini").write_text("[pytest]\n")
    assert pytest_rootdir(["no/such/dir", "suite"], top) == top / "suite"


def test_an_unreadable_config_is_a_usage_error(top: Path) -> None:
    (top / "suite" / "pyproject.toml").write_text("[tool.pytest.ini_options\n")
    with pytest.raises(UsageError, match="rootdir"):
        pytest_rootdir(["suite"], top)


def test_node_ids_are_checked_against_the_rootdirs_files(top: Path) -> None:
    assert names_files_under(top, ["suite/test_a.py::test_x", "gone.py::t"])
    assert not names_files_under(top, ["test_a.py::test_x"])
    assert names_files_under(top / "suite", ["test_a.py::test_x"])
    assert names_files_under(top, [])
