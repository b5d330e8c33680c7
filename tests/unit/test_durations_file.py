"""Durations and test ids files: good files load, bad ones fail in one clear line."""

from __future__ import annotations

from pathlib import Path

import pytest

from farm.errors import DurationsFileError, UsageError
from scheduler.durations_file import load_durations, load_test_ids


def write(tmp_path: Path, text: str | bytes, name: str = "f.json") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def test_durations_load_as_floats(tmp_path: Path) -> None:
    path = write(tmp_path, '{"a.py::t1": 1, "a.py::t2": 0.25, "b.py::t[x y]": 0}')
    assert load_durations(path) == {"a.py::t1": 1.0, "a.py::t2": 0.25, "b.py::t[x y]": 0.0}


def test_make_suite_history_format_loads(tmp_path: Path) -> None:
    path = write(tmp_path, '{\n"test_mod0000.py::test_00000": 0.0131,\n"x.py::y": 2.5\n}')
    assert load_durations(str(path))["x.py::y"] == 2.5


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("{not json", "not valid JSON (line 1, column 2"),
        ("[1, 2]", "expected a JSON object of node id -> seconds, got list"),
        ('{"a.py::t": "1.0"}', "duration of 'a.py::t' is '1.0', not a number"),
        ('{"a.py::t": true}', "duration of 'a.py::t' is True, not a number"),
        ('{"a.py::t": null}', "duration of 'a.py::t' is None, not a number"),
        ('{"a.py::t": -0.5}', "duration of 'a.py::t' is -0.5, must be finite and >= 0"),
        ('{"a.py::t": NaN}', "duration of 'a.py::t' is nan, must be finite"),
        ('{"a.py::t": Infinity}', "duration of 'a.py::t' is inf, must be finite"),
    ],
)
def test_bad_durations_fail_in_one_line_naming_the_file(
    tmp_path: Path, text: str, problem: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(DurationsFileError) as info:
        load_durations(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    assert problem in message
    assert "\n" not in message


def test_missing_durations_file(tmp_path: Path) -> None:
    with pytest.raises(DurationsFileError, match=r"missing\.json: no such durations file"):
        load_durations(tmp_path / "missing.json")


def test_durations_file_that_is_not_text(tmp_path: Path) -> None:
    with pytest.raises(DurationsFileError, match="not UTF-8"):
        load_durations(write(tmp_path, b'{"\xff": 1}'))


def test_durations_path_that_is_a_directory(tmp_path: Path) -> None:
    with pytest.raises(DurationsFileError, match="is a directory"):
        load_durations(tmp_path)


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
