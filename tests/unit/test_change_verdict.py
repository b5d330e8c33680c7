"""The rules of a change's verdict (farm.core.change_verdict), one rule per test."""

from __future__ import annotations

from farm.core.change_verdict import (
    ChangeRun,
    ChangeVerdict,
    TestState,
    change_verdict,
    findings_from_results,
    latest_states,
    short_id,
)
from farm.core.domain import ExitCode, FlakyPolicy, Outcome, RunFindings, TestResult, Verdict

A, B, C = "t.py::a", "t.py::b", "t.py::c"
ALL = frozenset({A, B, C})


def run(
    n: int,
    verdict: Verdict | None,
    *,
    tested: frozenset[str] = ALL,
    message: str = "",
    failed: tuple[str, ...] = (),
    flaky: tuple[str, ...] = (),
    quarantined: tuple[str, ...] = (),
    new_flaky: tuple[str, ...] = (),
    findings: bool = True,
) -> ChangeRun:
    found = RunFindings(
        failed=failed, flaky=flaky, quarantined_failures=quarantined, new_flaky=new_flaky
    )
    return ChangeRun(
        run_id=f"{n:02d}" + "ab" * 15,
        created_at=100.0 + n,
        verdict=verdict,
        message=message,
        tested=tested if verdict not in (Verdict.ERROR, Verdict.INTERRUPTED, None) else frozenset(),
        findings=found if findings else None,
    )


def test_one_passing_run_passes_with_exit_0() -> None:
    got = change_verdict([run(1, Verdict.PASSED)])
    assert got == ChangeVerdict(
        Verdict.PASSED, "passed: 3 tests passed in 1 run", runs=1, runs_counted=1, tests=3
    )
    assert got.exit_code is ExitCode.OK


def test_failed_tests_fail_the_change_with_exit_1_and_are_named() -> None:
    got = change_verdict([run(1, Verdict.FAILED, failed=(B, A))])
    assert got.verdict is Verdict.FAILED
    assert got.failed == (A, B)
    assert got.reason == f"failed: 2 tests failed on every attempt: {A}, {B}"
    assert got.exit_code is ExitCode.TESTS_FAILED


def test_flaky_tests_make_it_flaky_with_exit_0() -> None:
    got = change_verdict([run(1, Verdict.FLAKY, flaky=(C,), new_flaky=(A,))])
    assert got.verdict is Verdict.FLAKY
    assert got.flaky == (A, C)
    assert got.reason == f"flaky: passed; 2 tests needed a retry: {A}, {C}"
    assert got.exit_code is ExitCode.OK


def test_flaky_tests_fail_the_change_when_the_policy_says_so() -> None:
    got = change_verdict([run(1, Verdict.FLAKY, flaky=(C,))], flaky=FlakyPolicy.FAIL)
    assert got.verdict is Verdict.FAILED
    assert got.reason == f"failed: 1 test needed a retry: {C}; flaky tests fail the change " + (
        "(--flaky=fail)"
    )


def test_quarantined_failures_are_named_but_do_not_fail_it() -> None:
    got = change_verdict([run(1, Verdict.PASSED, quarantined=(B,))])
    assert got.verdict is Verdict.PASSED
    assert got.quarantined_failures == (B,)
    assert got.failed == ()
    assert f"1 test failed but is quarantined: {B}" in got.reason


def test_the_latest_run_of_a_test_wins() -> None:
    got = change_verdict([run(1, Verdict.FAILED, failed=(A,)), run(2, Verdict.PASSED)])
    assert got.verdict is Verdict.PASSED
    assert got.reason == "passed: 3 tests passed in 2 runs"
    assert (got.runs, got.runs_counted) == (2, 2)


def test_a_later_pass_does_not_hide_a_failure_it_did_not_run() -> None:
    runs = [
        run(1, Verdict.FAILED, failed=(A,)),
        run(2, Verdict.PASSED, tested=frozenset({B, C})),
    ]
    got = change_verdict(runs)
    assert got.verdict is Verdict.FAILED
    assert got.failed == (A,)
    assert latest_states(runs) == {
        A: TestState.FAILED,
        B: TestState.PASSED,
        C: TestState.PASSED,
    }


def test_a_later_failure_fails_a_change_that_passed_before() -> None:
    got = change_verdict([run(1, Verdict.PASSED), run(2, Verdict.FAILED, failed=(C,))])
    assert got.verdict is Verdict.FAILED
    assert got.failed == (C,)


def test_one_run_error_and_a_later_pass_is_passed() -> None:
    runs = [run(1, Verdict.ERROR, message="broker lost"), run(2, Verdict.PASSED)]
    got = change_verdict(runs)
    assert got.verdict is Verdict.PASSED
    assert got.reason == "passed: 3 tests passed in 1 run"
    assert (got.runs, got.runs_counted) == (2, 1)


def test_an_error_or_interruption_contributes_no_results() -> None:
    runs = [
        run(1, Verdict.PASSED),
        run(2, Verdict.INTERRUPTED, message="interrupted"),
        run(3, Verdict.ERROR, message="worker lost"),
    ]
    assert latest_states(runs) == dict.fromkeys(ALL, TestState.PASSED)


def test_no_concluded_run_is_an_error_with_the_latest_reason() -> None:
    runs = [run(1, Verdict.INTERRUPTED), run(2, Verdict.ERROR, message="redis went away")]
    got = change_verdict(runs)
    assert got.verdict is Verdict.ERROR
    assert got.exit_code is ExitCode.INFRA_ERROR
    assert got.reason == (
        f"error: run {short_id(runs[1].run_id)} ended in an infrastructure error: "
        "redis went away; run it again"
    )
    assert (got.runs, got.runs_counted, got.tests) == (2, 0, 0)


def test_a_latest_interrupted_run_alone_is_an_error() -> None:
    got = change_verdict([run(1, Verdict.INTERRUPTED, message="the run was interrupted")])
    assert got.verdict is Verdict.ERROR
    assert "was interrupted: the run was interrupted; run it again" in got.reason


def test_a_run_still_running_gives_no_answer_yet() -> None:
    got = change_verdict([run(1, None)])
    assert got.verdict is Verdict.ERROR
    assert got.reason.endswith(
        "has no verdict yet: it is still running, or its scheduler died; "
        "wait for it, or run it again"
    )


def test_the_reason_says_when_the_latest_run_errored_after_an_earlier_answer() -> None:
    runs = [run(1, Verdict.FAILED, failed=(A,)), run(2, Verdict.ERROR, message="worker lost")]
    got = change_verdict(runs)
    assert got.verdict is Verdict.FAILED
    assert got.reason == (
        f"failed: 1 test failed on every attempt: {A}; the latest run "
        f"{short_id(runs[1].run_id)} ended in an infrastructure error: worker lost; "
        "the verdict is of the earlier runs"
    )


def test_every_run_without_tests_is_an_error() -> None:
    none = frozenset[str]()
    got = change_verdict(
        [run(1, Verdict.NO_TESTS, tested=none), run(2, Verdict.NO_TESTS, tested=none)]
    )
    assert got.verdict is Verdict.ERROR
    assert got.reason.startswith("error: no run of this change collected a test (2 runs)")


def test_a_run_without_tests_leaves_the_others_standing() -> None:
    got = change_verdict([run(1, Verdict.PASSED), run(2, Verdict.NO_TESTS, tested=frozenset())])
    assert got.verdict is Verdict.PASSED


def test_no_runs_is_an_error() -> None:
    assert change_verdict([]).verdict is Verdict.ERROR


def test_a_failed_run_without_findings_fails_while_it_is_the_latest() -> None:
    failed = run(1, Verdict.FAILED, message="1 test failed: t.py::a", findings=False)
    got = change_verdict([failed])
    assert got.verdict is Verdict.FAILED
    assert got.reason == f"failed: run {short_id(failed.run_id)} failed: 1 test failed: t.py::a"
    assert change_verdict([failed, run(2, Verdict.PASSED)]).verdict is Verdict.PASSED


def test_a_failure_outranks_flakiness_and_both_are_named() -> None:
    got = change_verdict([run(1, Verdict.FAILED, failed=(A,), flaky=(B,))])
    assert got.verdict is Verdict.FAILED
    assert got.flaky == (B,)
    assert got.reason == f"failed: 1 test failed on every attempt: {A}; 1 test needed a retry: {B}"


def test_long_lists_are_cut_in_the_reason() -> None:
    many = tuple(f"t.py::t{i}" for i in range(8))
    got = change_verdict([run(1, Verdict.FAILED, tested=frozenset(many), failed=many)])
    assert got.reason.endswith("t.py::t4 and 3 more")
    assert len(got.failed) == 8


def result(node_id: str, outcome: Outcome) -> TestResult:
    return TestResult("r", 0, 1, node_id, outcome, 0.1)


def test_findings_from_final_results() -> None:
    final = {
        A: result(A, Outcome.FAILED),
        B: result(B, Outcome.TIMEOUT),
        C: result(C, Outcome.SKIPPED),
    }
    assert findings_from_results(final, frozenset({B})) == RunFindings(
        failed=(A,), quarantined_failures=(B,)
    )
