"""JUnit XML output: pytest-compatible names, counts, and survival of hostile text."""

from __future__ import annotations

import re
import xml.dom.minidom
import xml.etree.ElementTree as ET
from pathlib import Path

from helpers import make_result as result

from farm.core.domain import Outcome, RunSummary, TestResult, Verdict
from farm.report.junit import build_junit_tree, junit_names, write_junit_xml, xml_safe

# XML 1.0's Char production, the test every conforming reader applies.
LEGAL_XML = re.compile("[\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]*")


def summary(*results: TestResult, missing: tuple[str, ...] = ()) -> RunSummary:
    return RunSummary(
        run_id="r1",
        verdict=Verdict.FAILED,
        collected=len(results) + len(missing),
        results=results,
        missing=missing,
        makespan_s=12.3456,
        estimated_makespan_s=11.0,
        workers=4,
        started_at=1_700_000_000.0,
    )


def write_and_parse(tmp_path: Path, run: RunSummary) -> ET.Element:
    path = tmp_path / "junit.xml"
    write_junit_xml(path, run)
    raw = path.read_bytes()
    text = raw.decode("utf-8")  # strict: a lone surrogate would raise here
    assert LEGAL_XML.fullmatch(text)
    xml.dom.minidom.parseString(raw)  # a second, DOM-based reader accepts it too
    return ET.parse(path).getroot()


def test_names_follow_pytest_junitxml() -> None:
    assert junit_names("tests/test_x.py::test_a") == ("tests.test_x", "test_a")
    assert junit_names("tests/a/test_x.py::TestA::test_b[1]") == (
        "tests.a.test_x.TestA",
        "test_b[1]",
    )
    assert junit_names("t.py::TestA::TestInner::test_c") == ("t.TestA.TestInner", "test_c")
    # Parameters may hold "::", "/" and ".py"; they stay in the name untouched.
    assert junit_names("t.py::test_p[a::b/c.py-d]") == ("t", "test_p[a::b/c.py-d]")
    assert junit_names("pkg/test.pyx.py::test_a") == ("pkg.test.pyx", "test_a")


def test_suite_counts_and_cases(tmp_path: Path) -> None:
    run = summary(
        result("t.py::ok", duration_s=0.25),
        result("t.py::bad", Outcome.FAILED, longrepr="assert 1 == 2\nt.py:3: AssertionError"),
        result("t.py::slow", Outcome.TIMEOUT, longrepr="timed out after 60s"),
        result("t.py::boom", Outcome.CRASHED),
        result("t.py::setup", Outcome.ERROR, longrepr="fixture 'db' not found"),
        result("t.py::skip", Outcome.SKIPPED, longrepr="no network"),
        result("t.py::xf", Outcome.XFAILED, longrepr="known bug"),
        result("t.py::xp", Outcome.XPASSED),
        missing=("t.py::lost",),
    )
    root = write_and_parse(tmp_path, run)
    assert root.tag == "testsuites"
    suite = root.find("testsuite")
    assert suite is not None
    assert suite.attrib["name"] == "farm"
    assert suite.attrib["tests"] == "9"
    assert suite.attrib["failures"] == "3"
    assert suite.attrib["errors"] == "2"
    assert suite.attrib["skipped"] == "2"
    assert suite.attrib["time"] == "12.346"
    assert suite.attrib["timestamp"] == "2023-11-14T22:13:20+00:00"

    cases = {c.attrib["name"]: c for c in suite.iter("testcase")}
    assert len(cases) == 9
    ok = cases["ok"]
    assert ok.attrib == {"classname": "t", "name": "ok", "file": "t.py", "time": "0.250"}
    assert list(ok) == []

    failure = cases["bad"].find("failure")
    assert failure is not None
    assert failure.attrib["message"] == "t.py:3: AssertionError"
    assert failure.text == "assert 1 == 2\nt.py:3: AssertionError"
    for name, kind in (("slow", "timeout"), ("boom", "crashed")):
        child = cases[name].find("failure")
        assert child is not None and child.attrib["type"] == kind
    error = cases["setup"].find("error")
    assert error is not None and error.attrib["message"] == "fixture 'db' not found"
    skipped = cases["skip"].find("skipped")
    assert skipped is not None and skipped.attrib == {
        "message": "no network",
        "type": "pytest.skip",
    }
    xfail = cases["xf"].find("skipped")
    assert xfail is not None and xfail.attrib["type"] == "pytest.xfail"
    assert list(cases["xp"]) == []

    lost = cases["lost"].find("error")
    assert lost is not None and lost.attrib["message"] == "no result"


def test_captured_output_goes_to_system_out() -> None:
    root = build_junit_tree(summary(result("t.py::a", Outcome.FAILED, output="hello\nworld")))
    out = root.find("testsuite/testcase/system-out")
    assert out is not None and out.text == "hello\nworld"


def test_hostile_names_and_output_survive(tmp_path: Path) -> None:
    hostile = (
        "nul\x00 bell\x07 esc\x1b[2J vt\x0b ff\x0c del\x7f c1\x85 "
        "surrogate\udc80\ud800 nonchar\ufffe\uffff "
        "markup <a href='x'>&amp;</a> ]]> \"quotes\" "
        "unicode é 中文 \U0001f600 rtl\u202e cr\r tab\t"
    )
    node_id = f"tests/t.py::test_x[{hostile}]"
    run = summary(
        result(node_id, Outcome.FAILED, longrepr=hostile, output=hostile),
        missing=(f"tests/t.py::test_y[{hostile}]",),
    )
    root = write_and_parse(tmp_path, run)
    case = root.find("testsuite/testcase")
    assert case is not None
    name = case.attrib["name"]
    for visible in (
        "\\x00",
        "\\x07",
        "\\x1b[2J",
        "\\x0b",
        "\\x0c",
        "\\udc80",
        "\\ud800",
        "\\ufffe",
    ):
        assert visible in name
    for kept in ("<a href='x'>&amp;</a> ]]>", '"quotes"', "中文", "\U0001f600", "\u202e", "\t"):
        assert kept in name
    failure = case.find("failure")
    assert failure is not None and failure.text is not None
    assert "\\x1b[2J" in failure.text and "中文" in failure.text
    out = case.find("system-out")
    assert out is not None and out.text == xml_safe(hostile).replace("\r", "\n")


def test_xml_safe_leaves_only_legal_characters() -> None:
    every_bmp = "".join(chr(c) for c in range(0x10000))
    assert LEGAL_XML.fullmatch(xml_safe(every_bmp + "\U0010ffff"))
    assert xml_safe("plain text, tab\t and newline\n") == "plain text, tab\t and newline\n"
    assert xml_safe("\x1b") == "\\x1b"
    assert xml_safe("\udcff") == "\\udcff"


def test_long_message_is_cut_but_body_is_whole() -> None:
    long_line = "E" * 1000
    root = build_junit_tree(summary(result("t.py::a", Outcome.FAILED, longrepr=long_line)))
    failure = root.find("testsuite/testcase/failure")
    assert failure is not None
    assert len(failure.attrib["message"]) == 300
    assert failure.text == long_line


def test_non_finite_times_are_written_as_zero() -> None:
    root = build_junit_tree(summary(result("t.py::a", duration_s=float("nan"))))
    case = root.find("testsuite/testcase")
    assert case is not None and case.attrib["time"] == "0.000"


def test_write_replaces_the_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "junit.xml"
    path.write_text("old")
    write_junit_xml(path, summary(result("t.py::a")), suite_name="nightly")
    assert [p.name for p in tmp_path.iterdir()] == ["junit.xml"]
    assert path.read_bytes().startswith(b"<?xml version='1.0' encoding='utf-8'?>")
    suite = ET.parse(path).getroot().find("testsuite")
    assert suite is not None and suite.attrib["name"] == "nightly"


def test_empty_run_is_a_valid_empty_suite(tmp_path: Path) -> None:
    root = write_and_parse(tmp_path, summary())
    suite = root.find("testsuite")
    assert suite is not None and suite.attrib["tests"] == "0"
