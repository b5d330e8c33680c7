"""Test ids files: good files load, bad ones fail in one clear line."""

from __future__ import annotations

from pathlib import Path

import pytest

from farm.core.errors import UsageError
from farm.scheduler.test_ids import load_test_ids


def write(tmp_path: Path, text: str | bytes, name: str = "f.json") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def test_test_ids_skip_blanks_and_comments_and_keep_order(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "# selected for the nightly run\n\nb.py::t2\n  a.py::t1  \n\n# done\nb.py::t[a b]\n",
        "ids.txt",
    )
    assert load_test_ids(path) == ["b.py::t2", "a.py::t1", "b.py::t[a b]"]


def test_duplicate_test_ids_are_kept_once_at_their_first_place(tmp_path: Path) -> None:
    path = write(tmp_path, "a.py::t1\nb.py::t1\na.py::t1\n", "ids.txt")
    assert load_test_ids(path) == ["a.py::t1", "b.py::t1"]


def test_empty_test_ids_file_is_an_empty_list(tmp_path: Path) -> None:
    assert load_test_ids(write(tmp_path, "# nothing yet\n", "ids.txt")) == []


def test_collect_only_summary_line_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "a.py::t1\n\n1 test collected in 0.01s\n", "ids.txt")
    with pytest.raises(UsageError, match=r"ids\.txt: line 3 is not a node id"):
        load_test_ids(path)


def test_missing_test_ids_file(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no such test ids file"):
        load_test_ids(tmp_path / "ids.txt")
