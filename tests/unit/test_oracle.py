from pathlib import Path

from oracle import Outcome, compare, junit_outcomes, split_args, summary_counts

# What pytest 9.2 writes, cut down to the parts the parser reads.
JUNIT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites name="pytest tests"><testsuite name="pytest" tests="9">
<testcase classname="" name="tests.test_optional" time="0.000">
  <skipped message="collection skipped">Skipped: could not import 'numpy'</skipped>
</testcase>
<testcase classname="tests.test_x" name="test_xpass" time="0.000"/>
<testcase classname="tests.test_x" name="test_xpass_strict" time="0.000">
  <failure message="[XPASS(strict)] ">[XPASS(strict)] </failure>
</testcase>
<testcase classname="tests.test_x" name="test_xfail" time="0.000">
  <skipped type="pytest.xfail" message=""/>
</testcase>
<testcase classname="tests.test_x" name="test_skip" time="0.000">
  <skipped type="pytest.skip" message="no">test_x.py:12: no</skipped>
</testcase>
<testcase classname="tests.test_x" name="test_fail_td" time="0.000">
  <failure message="assert 0">assert 0</failure>
</testcase>
<testcase classname="tests.test_x" name="test_fail_td" time="0.000">
  <error message="failed on teardown">RuntimeError</error>
</testcase>
<testcase classname="tests.test_x" name="test_pass_td" time="0.000">
  <error message="failed on teardown">RuntimeError</error>
</testcase>
<testcase classname="tests.test_x.T" name="test_sub[a::b]" time="0.002">
  <failure message="AssertionError: 1 != 0">trace</failure>
</testcase>
</testsuite></testsuites>
"""


def test_junit_outcomes_normalise_each_kind_of_test_case(tmp_path: Path) -> None:
    path = tmp_path / "junit.xml"
    path.write_text(JUNIT)
    assert junit_outcomes(path) == {
        "::tests.test_optional": "skipped",
        "tests.test_x::test_xpass": "passed",
        "tests.test_x::test_xpass_strict": "failed",
        "tests.test_x::test_xfail": "xfailed",
        "tests.test_x::test_skip": "skipped",
        "tests.test_x::test_fail_td": "failed",
        "tests.test_x::test_pass_td": "error",
        "tests.test_x.T::test_sub[a::b]": "failed",
    }


def test_junit_duplicates_keep_the_worse_outcome_in_either_order(tmp_path: Path) -> None:
    cases = [
        '<testcase classname="m" name="t"><error message="e"/></testcase>',
        '<testcase classname="m" name="t"><skipped type="pytest.xfail"/></testcase>',
        '<testcase classname="m" name="t"/>',
    ]
    for ordered in (cases, cases[::-1]):
        path = tmp_path / "junit.xml"
        path.write_text(f"<testsuites><testsuite>{''.join(ordered)}</testsuite></testsuites>")
        assert junit_outcomes(path) == {"m::t": "error"}


def test_summary_counts_reads_pytest_words_and_plurals() -> None:
    text = (
        "FAILED test_x.py::test_a - assert 0\n"
        "==== 4 failed, 4 passed, 1 skipped, 2 deselected, 1 xfailed, 1 xpassed, "
        "2 errors, 3 warnings, 1 rerun, 2 subtests passed in 0.05s ====\n"
    )
    assert summary_counts(text) == {
        "failed": 4,
        "passed": 4,
        "skipped": 1,
        "deselected": 2,
        "xfailed": 1,
        "xpassed": 1,
        "error": 2,
        "warning": 3,
        "rerun": 1,
        "subtests passed": 2,
    }


def test_summary_counts_singulars_and_long_durations() -> None:
    assert summary_counts("= 1 error, 1 warning in 124.10s (0:02:04) =") == {
        "error": 1,
        "warning": 1,
    }


def test_summary_counts_reads_farms_line_and_takes_the_last() -> None:
    text = (
        "============ 1 passed in 0.01s ============\n"
        "\x1b[31m\x1b[1m==== 3 failed, 1997 passed in 24.10s (plan estimate 22.80s, "
        "16 workers), verdict FAILED ====\x1b[0m\n"
    )
    assert summary_counts(text) == {"failed": 3, "passed": 1997}


def test_summary_counts_reads_the_quiet_line_without_rules() -> None:
    text = "FAILED t.py::T::test_sub - AssertionError\n1 failed, 2 subtests passed in 0.07s\n"
    assert summary_counts(text) == {"failed": 1, "subtests passed": 2}


def test_summary_counts_ignores_other_lines_that_end_in_a_duration() -> None:
    text = "== 2 passed in 0.01s ==\nslept in 0.5s\nsetup of 3 fixtures in 2.00s took long\n"
    assert summary_counts(text) == {"passed": 2}


def test_summary_counts_of_no_summary_or_no_tests_is_empty() -> None:
    assert summary_counts("") == {}
    assert summary_counts("collecting ... \n") == {}
    assert summary_counts("=== no tests ran in 0.01s ===") == {}
    assert summary_counts("no tests ran in 0.01s") == {}
    assert summary_counts("==== short test summary info ====") == {}


def test_split_args_puts_paths_before_options() -> None:
    assert split_args(["tests", "a.py::t", "-k", "not slow", "-p", "no:x"]) == (
        ["tests", "a.py::t"],
        ["-k", "not slow", "-p", "no:x"],
    )
    assert split_args(["tests"]) == (["tests"], [])


def outcome(
    exit_code: int | None, tests: dict[str, str], counts: dict[str, int], hung: bool = False
) -> Outcome:
    return Outcome(("x",), exit_code, tests, counts, "", 0.0, hung=hung, timeout_s=5.0)


def test_compare_agreeing_outcomes_have_no_differences() -> None:
    same = outcome(1, {"m::a": "failed", "m::b": "passed"}, {"failed": 1, "passed": 1})
    assert compare(same, same) == []


def test_compare_names_exit_code_counts_and_tests() -> None:
    expected = outcome(1, {"m::a": "failed", "::m2": "skipped"}, {"failed": 1, "skipped": 1})
    got = outcome(0, {"m::a": "passed", "m::c": "passed"}, {"passed": 2})
    assert compare(expected, got) == [
        "exit code: pytest 1, farm 0",
        "count 'failed': pytest 1, farm 0",
        "count 'passed': pytest 0, farm 2",
        "count 'skipped': pytest 1, farm 0",
        "only in pytest: ::m2 (skipped)",
        "only in farm: m::c (passed)",
        "m::a: pytest failed, farm passed",
    ]


def test_compare_a_hung_run_is_one_difference() -> None:
    expected = outcome(0, {"m::a": "passed"}, {"passed": 1})
    assert compare(expected, outcome(None, {}, {}, hung=True)) == ["farm hung: killed after 5s"]
