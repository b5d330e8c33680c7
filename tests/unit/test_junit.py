"""JUnit XML output: pytest-compatible names, counts, and survival of hostile text."""

from __future__ import annotations

import dataclasses
import re
import xml.dom.minidom
import xml.etree.ElementTree as ET
from pathlib import Path

from helpers import make_result as result
from report_fixtures import (
    BROKEN,
    FLAKY,
    FLAKY_ERROR,
    HOSTILE,
    NEW,
    QUARANTINED,
    attempt,
    pytest_like_run,
    retried_run,
)

from farm.core.domain import Outcome, Retries, RunSummary, TestResult, Verdict
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


# --- earlier attempts: Surefire's flakyFailure and rerunFailure -------------------

PYTEST_LIKE_JUNIT = "\n".join(
    (
        "<?xml version='1.0' encoding='utf-8'?>",
        "<testsuites>",
        '  <testsuite name="farm" tests="7" failures="2" errors="2" skipped="2" '
        'time="64.500" timestamp="2023-11-14T22:13:20+00:00">',
        "    <properties>",
        '      <property name="farm.run_id" value="r1" />',
        '      <property name="farm.verdict" value="failed" />',
        '      <property name="farm.workers" value="4" />',
        '      <property name="farm.estimated_makespan_s" value="60.000" />',
        "    </properties>",
        '    <testcase classname="tests.test_a" name="test_ok" file="tests/test_a.py" '
        'time="1.250">',
        "      <system-out>hello</system-out>",
        "    </testcase>",
        '    <testcase classname="tests.test_a" name="test_bad" file="tests/test_a.py" '
        'time="2.000">',
        '      <failure message="tests/test_a.py:3: AssertionError" type="failed">def test_bad():',
        "&gt;   assert 1 == 2",
        "E   assert 1 == 2",
        "tests/test_a.py:3: AssertionError</failure>",
        "      <system-out>out &lt;&amp;&gt; ]]&gt; \\x00 line",
        "</system-out>",
        "    </testcase>",
        '    <testcase classname="tests.test_b.TestC" name="test_err[x]" '
        'file="tests/test_b.py" time="0.500">',
        "      <error message=\"fixture 'db' not found\" type=\"error\">fixture 'db' not "
        "found</error>",
        "    </testcase>",
        '    <testcase classname="tests.test_b" name="test_skip" '
        'file="tests/test_b.py" time="0.500">',
        '      <skipped message="no network" type="pytest.skip" />',
        "    </testcase>",
        '    <testcase classname="tests.test_b" name="test_xf" file="tests/test_b.py" '
        'time="0.500">',
        '      <skipped message="known bug" type="pytest.xfail" />',
        "    </testcase>",
        '    <testcase classname="tests.test_c" name="test_slow" '
        'file="tests/test_c.py" time="60.000">',
        '      <failure message="timed out after 60s" type="timeout">timed out after 60s</failure>',
        "    </testcase>",
        '    <testcase classname="tests.test_c" name="test_lost" '
        'file="tests/test_c.py" time="0.000">',
        '      <error message="no result" type="missing">farm got no result for this '
        "test: its worker was lost or the run ended before it ran.</error>",
        "    </testcase>",
        "  </testsuite>",
        "</testsuites>",
    )
)


def test_without_retries_the_file_is_what_it_was_byte_for_byte(tmp_path: Path) -> None:
    path = tmp_path / "junit.xml"
    write_junit_xml(path, pytest_like_run())
    assert path.read_text(encoding="utf-8") == PYTEST_LIKE_JUNIT
    # Retries that found nothing to retry change nothing either.
    calm = dataclasses.replace(pytest_like_run(), retries=Retries(allowed=2, budget=5))
    write_junit_xml(path, calm)
    assert path.read_text(encoding="utf-8") == PYTEST_LIKE_JUNIT


def cases_of(root: ET.Element) -> dict[str, ET.Element]:
    return {f"{c.attrib['classname']}::{c.attrib['name']}": c for c in root.iter("testcase")}


def case(root: ET.Element, node_id: str) -> ET.Element:
    classname, name = junit_names(node_id)
    return cases_of(root)[f"{classname}::{name}"]


def test_a_flaky_test_has_a_flaky_failure_with_the_first_attempts_text(tmp_path: Path) -> None:
    root = write_and_parse(tmp_path, retried_run())
    flaky = case(root, FLAKY)
    assert [child.tag for child in flaky] == ["flakyFailure"]  # it passed: no <failure>
    failure = flaky[0]
    assert failure.attrib == {"message": xml_safe(f"E   assert {HOSTILE}"), "type": "failed"}
    assert [child.tag for child in failure] == ["stackTrace", "system-out"]
    assert failure[0].text == xml_safe(f"E   assert {HOSTILE}")
    assert failure[1].text == xml_safe(HOSTILE)
    assert "\\x00" in failure[1].text and "<script>" in failure[1].text
    errored = case(root, FLAKY_ERROR)
    assert [child.tag for child in errored] == ["flakyError"]
    assert errored[0].attrib["type"] == "error"
    assert [child.tag for child in errored[0]] == ["stackTrace"]  # it printed nothing


def test_a_test_that_failed_every_time_has_a_rerun_failure_per_earlier_attempt(
    tmp_path: Path,
) -> None:
    root = write_and_parse(tmp_path, retried_run())
    broken = case(root, BROKEN)
    assert [child.tag for child in broken] == [
        "failure",
        "rerunFailure",
        "rerunFailure",
        "system-out",
    ]
    final, first, second, out = broken
    assert final.text == "E   third" and out.text == "out 3"  # the final attempt, as before
    assert first.attrib == {"message": "E   first", "type": "failed"}
    assert [(c.tag, c.text) for c in first] == [
        ("stackTrace", "E   first"),
        ("system-out", "out 1"),
    ]
    assert second.attrib == {"message": "timed out", "type": "timeout"}
    assert [(c.tag, c.text) for c in second] == [("stackTrace", "timed out")]
    quarantined = case(root, QUARANTINED)
    assert [child.tag for child in quarantined] == ["failure", "rerunFailure"]


def test_only_failing_attempts_are_written(tmp_path: Path) -> None:
    root = write_and_parse(tmp_path, retried_run())
    new = case(root, NEW)  # passed, failed, passed
    assert [child.tag for child in new] == ["flakyFailure"]
    assert new[0][0].text == "E   race"


def test_children_follow_the_surefire_schemas_order() -> None:
    node = "t.py::test_x"
    run = dataclasses.replace(
        retried_run(),
        results=(attempt(node, Outcome.ERROR, attempt=3, longrepr="E   last", output="o"),),
        earlier_attempts=(
            attempt(node, Outcome.ERROR, attempt=2, longrepr="E   second"),
            attempt(node, Outcome.CRASHED, longrepr="E   first"),
        ),
        missing=("t.py::test_lost",),
    )
    lost = dataclasses.replace(
        run, earlier_attempts=(*run.earlier_attempts, attempt("t.py::test_lost", Outcome.FAILED))
    )
    root = build_junit_tree(lost)
    x = case(root, node)
    assert [child.tag for child in x] == ["rerunFailure", "error", "rerunError", "system-out"]
    assert [c[0].text for c in x if c.tag.startswith("rerun")] == ["E   first", "E   second"]
    assert [child.tag for child in case(root, "t.py::test_lost")] == ["rerunFailure", "error"]


def test_suite_counts_stay_pytests_and_flaky_is_a_property() -> None:
    suite = build_junit_tree(retried_run()).find("testsuite")
    assert suite is not None
    assert {k: suite.attrib[k] for k in ("tests", "failures", "errors", "skipped")} == {
        "tests": "13",
        "failures": "9",
        "errors": "0",
        "skipped": "0",
    }
    assert "flaky" not in suite.attrib
    properties = {p.attrib["name"]: p.attrib["value"] for p in suite.iter("property")}
    assert properties["farm.flaky"] == "2"


def test_hostile_output_of_earlier_attempts_keeps_the_xml_well_formed(tmp_path: Path) -> None:
    nasty = HOSTILE + " \udc80 \ufffe \x0b ]]]]><![CDATA[ </stackTrace></flakyFailure>"
    node = f"t.py::test_x[{nasty}]"
    run = dataclasses.replace(
        retried_run(),
        results=(attempt(node, attempt=2),),
        earlier_attempts=(attempt(node, Outcome.FAILED, longrepr=nasty, output=nasty),),
        flaky=(node,),
    )
    root = write_and_parse(tmp_path, run)
    (only,) = list(root.iter("testcase"))
    (flaky,) = list(only)
    assert flaky.tag == "flakyFailure"
    assert [c.text for c in flaky] == [xml_safe(nasty), xml_safe(nasty)]
    assert "<script>alert(1)</script>" in (flaky[1].text or "")
