"""JUnit XML for CI systems (GitLab, Jenkins, GitHub actions that read test reports).

The file has the shape pytest's ``--junitxml`` writes, so tools tuned to pytest's
output read it the same way::

    <testsuites>
      <testsuite name="farm" tests= failures= errors= skipped= time= timestamp=>
        <testcase classname="tests.test_x.TestA" name="test_b[1]"
                  file="tests/test_x.py" time="0.012">
          <failure message="..." type="failed">traceback</failure>
          <system-out>captured output</system-out>
        </testcase>
      </testsuite>
    </testsuites>

Outcomes map as: FAILED, TIMEOUT and CRASHED to ``<failure>``; ERROR and tests
without a result (*missing*) to ``<error>``; SKIPPED and XFAILED to ``<skipped>``;
PASSED and XPASSED to a bare test case. ``time`` on the suite is the run's
makespan (wall time), on a test case its own duration. Counts and outcomes are
those of each test's final result (its last attempt).

Earlier failing attempts (a test retried, or a new test run again) follow Maven
Surefire's rerun schema (``surefire-test-report-3.0.xsd``), which Jenkins, Allure,
Gradle and Playwright's reporter read and other readers ignore: one element per
attempt, oldest first, named ``flakyFailure``/``flakyError`` when the test did not
finally fail (so readers still count it passed) and ``rerunFailure``/``rerunError``
when it did; ``...Error`` for an ``error`` attempt, ``...Failure`` for a failed,
timed-out or crashed one, whose ``type`` names it::

      <testcase ...>
        <failure message="..." type="failed">the final attempt's traceback</failure>
        <rerunFailure message="..." type="failed">
          <stackTrace>attempt 1's traceback</stackTrace>
          <system-out>attempt 1's output</system-out>
        </rerunFailure>
      </testcase>

Unlike Surefire, which puts the first run in ``<failure>``, the final attempt keeps
it, so a report reads the same with and without retries. Children come in the
schema's order (failure, rerunFailure, flakyFailure, skipped, error, rerunError,
flakyError, system-out). The suite's counts stay pytest's, over final results; the
number of flaky tests is the property ``farm.flaky``, present when it is not zero,
rather than an attribute, which strict readers validating against the JUnit or
Surefire schemas would refuse.

Test names and output are arbitrary text from the code under test. Characters
XML 1.0 forbids (most control characters, lone surrogates, U+FFFE/U+FFFF) are
replaced by a visible escape such as ``\\x1b`` or ``\\udc80``, because one such
character makes the whole report unreadable to a strict parser.
"""

from __future__ import annotations

import math
import os
import re
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

from farm.core.domain import Outcome, RunSummary, TestResult, module_of
from farm.report.findings import earlier_by_test

_FAILURE_OUTCOMES = frozenset({Outcome.FAILED, Outcome.TIMEOUT, Outcome.CRASHED})
_SKIP_OUTCOMES = frozenset({Outcome.SKIPPED, Outcome.XFAILED})

# The complement of XML 1.0's Char production: #x9 | #xA | #xD | [#x20-#xD7FF] |
# [#xE000-#xFFFD] | [#x10000-#x10FFFF].
_ILLEGAL_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")

# A failure message attribute is a one-line summary; the full text goes in the body.
_MESSAGE_CHARS = 300

_MISSING_TEXT = (
    "farm got no result for this test: its worker was lost or the run ended before it ran."
)


def xml_safe(text: str) -> str:
    """``text`` with every character illegal in XML 1.0 replaced by a visible escape.

    ``\\x00``-style for code points below 256, ``\\uXXXX`` otherwise (lone surrogates
    and U+FFFE/U+FFFF). Markup characters are left to the serialiser to escape.
    """
    return _ILLEGAL_XML.sub(_escape_char, text)


def _escape_char(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def junit_names(node_id: str) -> tuple[str, str]:
    """The ``(classname, name)`` pytest's junitxml derives from a node id.

    The file path becomes dotted with ``.py`` dropped, class parts are joined with
    dots, and the name is the last part with its parameters: ``tests/a/test_x.py::
    TestA::test_b[1]`` gives ``("tests.a.test_x.TestA", "test_b[1]")``. Parameters
    may contain ``::`` or ``/``, so they are set aside before splitting.
    """
    path, bracket, params = node_id.partition("[")
    names = path.split("::")
    names[0] = re.sub(r"\.py$", "", names[0].replace("/", "."))
    names[-1] += bracket + params
    return ".".join(names[:-1]), names[-1]


def build_junit_tree(summary: RunSummary, suite_name: str = "farm") -> ET.Element:
    """The ``<testsuites>`` element for ``summary``, with every text made XML-safe."""
    results = summary.results
    failures = sum(1 for r in results if r.outcome in _FAILURE_OUTCOMES)
    errors = sum(1 for r in results if r.outcome is Outcome.ERROR) + len(summary.missing)
    skipped = sum(1 for r in results if r.outcome in _SKIP_OUTCOMES)
    suite_attrs = {
        "name": xml_safe(suite_name),
        "tests": str(len(results) + len(summary.missing)),
        "failures": str(failures),
        "errors": str(errors),
        "skipped": str(skipped),
        "time": _seconds(summary.makespan_s),
    }
    if summary.started_at > 0:
        started = datetime.fromtimestamp(summary.started_at, tz=timezone.utc)
        suite_attrs["timestamp"] = started.isoformat(timespec="seconds")

    root = ET.Element("testsuites")
    suite = ET.SubElement(root, "testsuite", suite_attrs)
    properties = ET.SubElement(suite, "properties")
    for name, value in (
        ("farm.run_id", summary.run_id),
        ("farm.verdict", summary.verdict.value),
        ("farm.workers", str(summary.workers)),
        ("farm.estimated_makespan_s", _seconds(summary.estimated_makespan_s)),
    ):
        ET.SubElement(properties, "property", {"name": name, "value": xml_safe(value)})
    if summary.flaky:
        ET.SubElement(
            properties, "property", {"name": "farm.flaky", "value": str(len(summary.flaky))}
        )

    earlier = earlier_by_test(summary)
    for result in results:
        _add_result(suite, result, earlier.get(result.node_id, ()))
    for node_id in summary.missing:
        case = _testcase(suite, node_id, 0.0)
        failing = _failing(earlier.get(node_id, ()))
        _add_attempts(case, "rerunFailure", failing, errors=False)
        error = ET.SubElement(case, "error", {"message": "no result", "type": "missing"})
        error.text = _MISSING_TEXT
        _add_attempts(case, "rerunError", failing, errors=True)
    return root


def write_junit_xml(
    path: str | os.PathLike[str], summary: RunSummary, suite_name: str = "farm"
) -> None:
    """Write ``summary`` as JUnit XML (UTF-8) to ``path``.

    The file is written beside its target and renamed into place, so a CI job that
    picks reports up never reads half a file.
    """
    tree = ET.ElementTree(build_junit_tree(summary, suite_name))
    ET.indent(tree)
    target = Path(path)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as tmp:
            tree.write(tmp, encoding="utf-8", xml_declaration=True)
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def _add_result(suite: ET.Element, result: TestResult, earlier: Sequence[TestResult]) -> None:
    case = _testcase(suite, result.node_id, result.duration_s)
    outcome = result.outcome
    body = xml_safe(result.longrepr)
    failing = _failing(earlier)
    # A test that finally failed was rerun; one that did not was flaky.
    family = "rerun" if outcome.is_failure else "flaky"
    if outcome in _FAILURE_OUTCOMES:
        child = ET.SubElement(case, "failure", {"message": _message(result), "type": outcome.value})
        child.text = body
    _add_attempts(case, f"{family}Failure", failing, errors=False)
    if outcome is Outcome.ERROR:
        child = ET.SubElement(case, "error", {"message": _message(result), "type": "error"})
        child.text = body
    elif outcome in _SKIP_OUTCOMES:
        # pytest's own type names, which some readers use to tell xfail from skip.
        kind = "pytest.xfail" if outcome is Outcome.XFAILED else "pytest.skip"
        ET.SubElement(case, "skipped", {"message": _message(result), "type": kind})
    _add_attempts(case, f"{family}Error", failing, errors=True)
    if result.output:
        ET.SubElement(case, "system-out").text = xml_safe(result.output)


def _failing(attempts: Sequence[TestResult]) -> list[TestResult]:
    return [a for a in attempts if a.outcome.is_failure]


def _add_attempts(
    case: ET.Element, tag: str, failing: Sequence[TestResult], *, errors: bool
) -> None:
    """One ``tag`` element per failing attempt whose outcome is (or, without
    ``errors``, is not) ``error``: its traceback in ``<stackTrace>``, its output in
    ``<system-out>``, as Surefire writes a rerun."""
    for attempt in failing:
        if (attempt.outcome is Outcome.ERROR) is not errors:
            continue
        child = ET.SubElement(
            case, tag, {"message": _message(attempt), "type": attempt.outcome.value}
        )
        ET.SubElement(child, "stackTrace").text = xml_safe(attempt.longrepr)
        if attempt.output:
            ET.SubElement(child, "system-out").text = xml_safe(attempt.output)


def _testcase(suite: ET.Element, node_id: str, duration_s: float) -> ET.Element:
    classname, name = junit_names(node_id)
    return ET.SubElement(
        suite,
        "testcase",
        {
            "classname": xml_safe(classname),
            "name": xml_safe(name),
            "file": xml_safe(module_of(node_id)),
            "time": _seconds(duration_s),
        },
    )


def _message(result: TestResult) -> str:
    """A one-line summary: the last non-blank line of the traceback or skip reason.

    pytest ends a long traceback with ``path:line: ExceptionType``, the line a
    reader wants first.
    """
    lines = [line.strip() for line in result.longrepr.splitlines() if line.strip()]
    text = lines[-1] if lines else result.outcome.value
    if len(text) > _MESSAGE_CHARS:
        text = text[: _MESSAGE_CHARS - 3] + "..."
    return xml_safe(text)


def _seconds(value: float) -> str:
    # Readers parse time as a plain decimal; nan, inf or negatives break some.
    if not math.isfinite(value) or value < 0:
        value = 0.0
    return f"{value:.3f}"


__all__ = ["build_junit_tree", "junit_names", "write_junit_xml", "xml_safe"]
