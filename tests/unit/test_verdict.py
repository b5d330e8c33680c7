"""The verdict rules of farm.core.verdict, one rule per test."""

from __future__ import annotations

from farm.core.domain import ExitCode, FlakyPolicy, Outcome, TestResult, Verdict
from farm.core.verdict import Decision, decide, exit_code


def result(node_id: str, outcome: Outcome = Outcome.PASSED, attempt: int = 1) -> TestResult:
    return TestResult(
        run_id="r1",
        shard_id=0,
        lease=1,
        node_id=node_id,
        outcome=outcome,
        duration_s=0.1,
        attempt=attempt,
    )


def finals(*results: TestResult) -> dict[str, TestResult]:
    return {r.node_id: r for r in results}


IDS = ["t.py::a", "t.py::b", "t.py::c"]


def test_all_passed_is_passed_with_exit_0() -> None:
    decision = decide(IDS, finals(*(result(n) for n in IDS)))
    assert decision == Decision(Verdict.PASSED)
    assert decision.exit_code is ExitCode.OK


def test_skips_xfails_and_xpasses_do_not_fail_the_run() -> None:
    final = finals(
        result("t.py::a", Outcome.SKIPPED),
        result("t.py::b", Outcome.XFAILED),
        result("t.py::c", Outcome.XPASSED),
    )
    assert decide(IDS, final).verdict is Verdict.PASSED


def test_each_failing_outcome_fails_the_run() -> None:
    for outcome in (Outcome.FAILED, Outcome.ERROR, Outcome.TIMEOUT, Outcome.CRASHED):
        final = finals(result("t.py::a"), result("t.py::b", outcome), result("t.py::c"))
        decision = decide(IDS, final)
        assert decision.verdict is Verdict.FAILED, outcome
        assert decision.failed == ("t.py::b",)
        assert decision.exit_code is ExitCode.TESTS_FAILED
        assert "1 test failed: t.py::b" in decision.message


def test_a_missing_result_is_an_error_never_a_pass() -> None:
    decision = decide(IDS, finals(result("t.py::a")))
    assert decision.verdict is Verdict.ERROR
    assert decision.missing == ("t.py::b", "t.py::c")
    assert decision.message.startswith("2 of 3 tests have no result")
    assert decision.exit_code is ExitCode.INFRA_ERROR


def test_missing_outranks_failures() -> None:
    decision = decide(IDS, finals(result("t.py::a", Outcome.FAILED)))
    assert decision.verdict is Verdict.ERROR


def test_message_names_a_few_missing_and_counts_the_rest() -> None:
    ids = [f"t.py::t{i}" for i in range(10)]
    decision = decide(ids, {})
    assert (
        decision.message == "10 of 10 tests have no result: t.py::t0, t.py::t1, t.py::t2 and 7 more"
    )


def test_nothing_collected_is_no_tests() -> None:
    decision = decide([], finals(result("t.py::stray")))
    assert decision.verdict is Verdict.NO_TESTS
    assert decision.exit_code is ExitCode.NO_TESTS
    assert decision.ignored == ("t.py::stray",)


def test_infra_error_outranks_results_and_keeps_its_message() -> None:
    decision = decide(IDS, finals(*(result(n) for n in IDS)), infra_error="broker gone")
    assert decision.verdict is Verdict.ERROR
    assert decision.message == "broker gone"


def test_infra_error_message_also_counts_missing() -> None:
    decision = decide(IDS, finals(result("t.py::a")), infra_error="worker lost")
    assert decision.message.startswith("worker lost; 2 of 3 tests have no result")
    assert decision.missing == ("t.py::b", "t.py::c")


def test_interrupted_outranks_everything() -> None:
    decision = decide([], {}, infra_error="broker gone", interrupted=True)
    assert decision.verdict is Verdict.INTERRUPTED
    assert decision.exit_code is ExitCode.INTERRUPTED


def test_results_for_uncollected_ids_are_ignored_and_reported() -> None:
    final = finals(*(result(n) for n in IDS), result("t.py::stray", Outcome.FAILED))
    decision = decide(IDS, final)
    assert decision.verdict is Verdict.PASSED
    assert decision.ignored == ("t.py::stray",)


def test_duplicate_collected_ids_count_once() -> None:
    decision = decide(["t.py::a", "t.py::a"], finals(result("t.py::a")))
    assert decision.verdict is Verdict.PASSED
    assert decision.missing == ()


def test_pass_after_a_failed_attempt_is_flaky_with_exit_0() -> None:
    first = result("t.py::b", Outcome.FAILED, attempt=1)
    retry = result("t.py::b", Outcome.PASSED, attempt=2)
    final = finals(result("t.py::a"), retry, result("t.py::c"))
    decision = decide(IDS, final, attempts=[first, retry, *final.values()])
    assert decision.verdict is Verdict.FLAKY
    assert decision.flaky == ("t.py::b",)
    assert decision.exit_code is ExitCode.OK


def test_failure_after_retries_is_failed_not_flaky() -> None:
    attempts = [result("t.py::a", Outcome.FAILED, 1), result("t.py::a", Outcome.FAILED, 2)]
    decision = decide(["t.py::a"], finals(attempts[1]), attempts=attempts)
    assert decision.verdict is Verdict.FAILED


def test_requeued_test_without_a_failed_attempt_is_not_flaky() -> None:
    # A lost lease sends the test back to the queue: attempt 2 passes, but nothing
    # ever failed.
    final = finals(result("t.py::a", Outcome.PASSED, attempt=2))
    assert decide(["t.py::a"], final, attempts=final.values()).verdict is Verdict.PASSED


def test_failure_after_the_final_attempt_does_not_make_it_flaky() -> None:
    # Attempts arrive in any order; only ones numbered before the final count.
    final = finals(result("t.py::a", Outcome.PASSED, attempt=1))
    stale = result("t.py::a", Outcome.FAILED, attempt=3)
    assert decide(["t.py::a"], final, attempts=[stale]).verdict is Verdict.PASSED


def test_exit_code_covers_every_verdict() -> None:
    assert {v: exit_code(v) for v in Verdict} == {
        Verdict.PASSED: ExitCode.OK,
        Verdict.FLAKY: ExitCode.OK,
        Verdict.FAILED: ExitCode.TESTS_FAILED,
        Verdict.INTERRUPTED: ExitCode.INTERRUPTED,
        Verdict.ERROR: ExitCode.INFRA_ERROR,
        Verdict.NO_TESTS: ExitCode.NO_TESTS,
    }


def test_flaky_fails_the_verdict_when_the_team_says_so() -> None:
    first = result("t.py::b", Outcome.FAILED, attempt=1)
    retry = result("t.py::b", Outcome.PASSED, attempt=2)
    final = finals(result("t.py::a"), retry, result("t.py::c"))
    decision = decide(IDS, final, attempts=[first, *final.values()], flaky_policy=FlakyPolicy.FAIL)
    assert decision.verdict is Verdict.FAILED
    assert decision.flaky == ("t.py::b",) and decision.failed == ()
    assert "flaky" in decision.message and "t.py::b" in decision.message


def test_a_quarantined_failure_does_not_fail_the_verdict_but_is_named() -> None:
    final = finals(result("t.py::a"), result("t.py::b", Outcome.FAILED), result("t.py::c"))
    decision = decide(IDS, final, attempts=final.values(), quarantined={"t.py::b"})
    assert decision.verdict is Verdict.PASSED
    assert decision.exit_code is ExitCode.OK
    assert decision.quarantined_failures == ("t.py::b",)
    assert "quarantined" in decision.message and "t.py::b" in decision.message


def test_quarantine_excuses_only_its_own_tests() -> None:
    final = finals(result("t.py::a", Outcome.FAILED), result("t.py::b", Outcome.FAILED))
    decision = decide(IDS[:2], final, quarantined={"t.py::b"})
    assert decision.verdict is Verdict.FAILED
    assert decision.failed == ("t.py::a",)
    assert decision.quarantined_failures == ("t.py::b",)


def test_a_quarantined_flaky_test_never_fails_even_under_flaky_fail() -> None:
    first = result("t.py::a", Outcome.FAILED, attempt=1)
    final = finals(result("t.py::a", Outcome.PASSED, attempt=2))
    decision = decide(
        ["t.py::a"], final, attempts=[first, *final.values()], quarantined={"t.py::a"},
        flaky_policy=FlakyPolicy.FAIL,
    )  # fmt: skip
    assert decision.verdict is Verdict.FLAKY


def test_a_new_test_whose_repeats_disagree_fails_before_it_lands() -> None:
    runs = [
        result("t.py::new", Outcome.PASSED, 1),
        result("t.py::new", Outcome.FAILED, 2),
        result("t.py::new", Outcome.PASSED, 3),
    ]
    decision = decide(["t.py::new"], finals(runs[2]), attempts=runs, new_tests={"t.py::new"})
    assert decision.verdict is Verdict.FAILED
    assert decision.new_flaky == ("t.py::new",)
    assert "new test" in decision.message


def test_a_new_test_that_agrees_with_itself_is_not_flaky() -> None:
    runs = [result("t.py::new", Outcome.PASSED, n) for n in (1, 2, 3)]
    decision = decide(["t.py::new"], finals(runs[2]), attempts=runs, new_tests={"t.py::new"})
    assert decision.verdict is Verdict.PASSED and decision.new_flaky == ()
