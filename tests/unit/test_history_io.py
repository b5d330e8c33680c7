"""Reading and writing durations files: pytest-split JSON and JUnit XML."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from farm.core.errors import DurationsFileError
from farm.report.history_io import junit_node_id, read_history_file, write_test_durations

JUNIT_XUNIT2 = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" tests="5">
  <testcase classname="tests.test_math" name="test_add" time="0.125"/>
  <testcase classname="tests.api.test_api.TestUsers" name="test_get[1-a.b]" time="1.5">
    <failure message="boom">trace</failure>
  </testcase>
  <testcase classname="tests.test_math" name="test_add" time="0.375"/>
  <testcase classname="tests.test_math" name="test_skip" time="0.001">
    <skipped message="no"/>
  </testcase>
  <testcase classname="test_top" name="test_x" time="2"/>
</testsuite></testsuites>
"""

JUNIT_XUNIT1 = """<testsuite name="pytest">
  <testcase classname="tests.test_a.TestA.Nested" file="tests/test_a.py" line="3"
            name="test_b" time="0.5"/>
  <testcase classname="other.root.test_c" file="test_c.py" name="test_d" time="0.25"/>
</testsuite>
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def read_error(path: Path) -> str:
    with pytest.raises(DurationsFileError) as raised:
        read_history_file(path)
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: ")
    return message


def test_reads_pytest_split_object(tmp_path: Path) -> None:
    path = write(tmp_path, ".test_durations", '{"a.py::t1": 1.5, "b.py::T::t2[x]": 0}')
    assert read_history_file(path) == {"a.py::t1": 1.5, "b.py::T::t2[x]": 0.0}


def test_reads_pytest_split_list_of_pairs(tmp_path: Path) -> None:
    path = write(
        tmp_path, ".test_durations", '[["a.py::t1", 1], ["b.py::t2", 0.5], ["a.py::t1", 2]]'
    )
    assert read_history_file(path) == {"a.py::t1": 2.0, "b.py::t2": 0.5}


def test_reads_json_with_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "d.json"
    path.write_bytes(b'\xef\xbb\xbf{"a.py::t": 1}')
    assert read_history_file(path) == {"a.py::t": 1.0}


def test_reads_junit_xml_of_pytest_default_family(tmp_path: Path) -> None:
    path = write(tmp_path, "junit.xml", JUNIT_XUNIT2)
    assert read_history_file(path) == {
        "tests/test_math.py::test_add": 0.5,
        "tests/api/test_api.py::TestUsers::test_get[1-a.b]": 1.5,
        "test_top.py::test_x": 2.0,
    }


def test_reads_junit_xml_with_file_attributes(tmp_path: Path) -> None:
    path = write(tmp_path, "junit.xml", JUNIT_XUNIT1)
    assert read_history_file(path) == {
        "tests/test_a.py::TestA::Nested::test_b": 0.5,
        "test_c.py::test_d": 0.25,
    }


@pytest.mark.parametrize(
    ("classname", "name", "file", "expected"),
    [
        ("tests.test_x", "test_a", None, "tests/test_x.py::test_a"),
        ("tests.test_x.TestA", "test_b[1.5]", None, "tests/test_x.py::TestA::test_b[1.5]"),
        ("tests.test_x.TestA", "test_b", "tests\\test_x.py", "tests/test_x.py::TestA::test_b"),
        ("TestOnly", "test_c", None, "TestOnly::test_c"),
    ],
)
def test_junit_node_id(classname: str, name: str, file: str | None, expected: str) -> None:
    assert junit_node_id(classname, name, file) == expected


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "file is empty"),
        ("  \n", "file is empty"),
        ("{not json", "neither JSON nor JUnit XML: Expecting property name"),
        ("42", "expected a JSON object of node id to seconds"),
        ('"a.py::t"', "got a string"),
        ('{"a.py::t": -1.0}', "duration of 'a.py::t' is negative (-1.0)"),
        ('{"a.py::t": "fast"}', "duration of 'a.py::t' is not a number ('fast')"),
        ('{"a.py::t": NaN}', "duration of 'a.py::t' is not finite (nan)"),
        ('{"a.py::t": Infinity}', "duration of 'a.py::t' is not finite (inf)"),
        ('{"a.py::t": true}', "duration of 'a.py::t' is not a number (True)"),
        ('{"a.py::t": null}', "duration of 'a.py::t' is not a number (None)"),
        ('{"": 1}', "node id '' is not a non-empty string"),
        ('[["a.py::t", 1, 2]]', "item 0 is not a [node id, seconds] pair"),
        ("[[3, 1]]", "node id 3 is not a non-empty string"),
        ("<testsuite><testcase", "not valid XML (unclosed token: line 1, column 11)"),
        ("<html><body/></html>", "not JUnit XML: root element is <html>"),
        ('<testsuite><testcase classname="a" time="1"/></testsuite>', "testcase 0 has no name"),
        ('<testsuite><testcase classname="a" name="t"/></testsuite>', "'a.py::t' has no time"),
        (
            '<testsuite><testcase classname="a" name="t" time="-2"/></testsuite>',
            "duration of 'a.py::t' is negative (-2.0)",
        ),
        (
            '<testsuite><testcase classname="a" name="t" time="1s"/></testsuite>',
            "duration of 'a.py::t' is not a number ('1s')",
        ),
        (
            '<testsuite><testcase classname="a" name="t" time="nan"/></testsuite>',
            "duration of 'a.py::t' is not finite (nan)",
        ),
        (
            '<!DOCTYPE x [<!ENTITY a "aaaa">]><testsuite/>',
            "XML with a DOCTYPE is not accepted",
        ),
    ],
)
def test_invalid_files_give_one_line_naming_file_and_problem(
    tmp_path: Path, text: str, problem: str
) -> None:
    assert problem in read_error(write(tmp_path, "history.json", text))


def test_non_utf8_json(tmp_path: Path) -> None:
    path = tmp_path / "history.json"
    path.write_bytes(b'{"a\xff": 1}')
    assert "not UTF-8 text" in read_error(path)


def test_missing_file(tmp_path: Path) -> None:
    assert "cannot read: No such file or directory" in read_error(tmp_path / "nope.json")


def test_write_test_durations_like_pytest_split(tmp_path: Path) -> None:
    path = tmp_path / ".test_durations"
    write_test_durations(path, {"b.py::t": 2, "a.py::t": 0.5})
    text = path.read_text(encoding="utf-8")
    assert text == json.dumps({"a.py::t": 0.5, "b.py::t": 2.0}, indent=4) + "\n"
    assert read_history_file(path) == {"a.py::t": 0.5, "b.py::t": 2.0}
    assert [p.name for p in tmp_path.iterdir()] == [".test_durations"]


def test_write_refuses_invalid_durations_and_keeps_old_file(tmp_path: Path) -> None:
    path = tmp_path / ".test_durations"
    write_test_durations(path, {"a.py::t": 1.0})
    with pytest.raises(DurationsFileError, match="is not finite"):
        write_test_durations(path, {"a.py::t": float("nan")})
    assert read_history_file(path) == {"a.py::t": 1.0}


def test_write_to_missing_directory(tmp_path: Path) -> None:
    path = tmp_path / "no" / ".test_durations"
    with pytest.raises(DurationsFileError, match="cannot write: No such file or directory"):
        write_test_durations(path, {"a.py::t": 1.0})
