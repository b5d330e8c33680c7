"""The verdict rules: how one run's results become one answer and one exit code.

Terms used here:

*collected*
    The node ids pytest's collection selected for the run, in collection order. It is
    the list of what the run owes: every one of them needs a final result.
*final result*
    The last attempt of a test in the run (see :mod:`farm.core.domain`).
*attempts*
    Every attempt of every test in the run, final ones included, in any order. Only
    needed to tell a flaky test (failed, then passed on a retry) from a passing one.
*missing*
    Collected node ids with no final result: their worker was lost or the run ended
    first. A missing result is never counted as a pass.
*ignored*
    Node ids that reported a result but were not collected (a stale shard, a test
    generated at run time). They cannot change the verdict; the caller may log them.

*quarantined*
    Tests whose failures do not count against the verdict: they still run and are
    reported, as failures the verdict ignored.
*new tests*
    Tests never seen before, run several times (``--new-tests-repeat``): one whose
    attempts disagree is a new flaky test, and fails the verdict before it lands.

The rules, first match wins: interrupted, infrastructure error, nothing collected,
missing results, no test but modules that skipped themselves (no tests, as pytest
exits 5 then), any failing final result of a test not quarantined or any new
flaky test (failed), any test that passed only after a failed attempt (flaky;
failed under ``FlakyPolicy.FAIL``), otherwise passed. A flaky test that is
quarantined is still named flaky, but never fails the verdict.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

from farm.core.domain import (
    VERDICT_EXIT_CODES,
    ExitCode,
    FlakyPolicy,
    Outcome,
    RunSummary,
    TestResult,
    Verdict,
    is_test,
)

# How many node ids a message names before it only counts the rest: enough to act on
# from a CI log without flooding it.
_NAMED_IN_MESSAGE = 3


@dataclass(frozen=True)
class Decision:
    """The outcome of :func:`decide`.

    ``message`` is one human sentence saying why the verdict is what it is (empty
    for a clean pass); ``missing`` and ``ignored`` keep collection order and first-seen
    order respectively; ``flaky`` names the tests that passed only after a failure.
    """

    verdict: Verdict
    missing: tuple[str, ...] = ()
    message: str = ""
    failed: tuple[str, ...] = ()
    flaky: tuple[str, ...] = ()
    ignored: tuple[str, ...] = ()
    quarantined_failures: tuple[str, ...] = ()  # failed, but quarantined: not counted
    new_flaky: tuple[str, ...] = ()

    @property
    def exit_code(self) -> ExitCode:
        return exit_code(self.verdict)


def exit_code(verdict: Verdict) -> ExitCode:
    """The process exit code a CI system should see for ``verdict``."""
    return VERDICT_EXIT_CODES[verdict]


def summary_exit_code(summary: RunSummary) -> ExitCode:
    """The exit code of a finished run: its verdict's, but 2 when collection failed
    or ``--sw`` stopped the run, as pytest exits 2 ("interrupted") then."""
    if summary.collection_errors or summary.stop_reason:
        return ExitCode.INTERRUPTED
    return exit_code(summary.verdict)


def decide(
    collected: Sequence[str],
    final: Mapping[str, TestResult],
    *,
    attempts: Iterable[TestResult] = (),
    infra_error: str | None = None,
    interrupted: bool = False,
    quarantined: Collection[str] = frozenset(),
    new_tests: Collection[str] = frozenset(),
    flaky_policy: FlakyPolicy = FlakyPolicy.PASS,
) -> Decision:
    """Decide the verdict of a run from what it collected and what came back.

    ``final`` maps a node id to its final result; ``attempts`` holds every attempt
    (retries included; the final ones may be among them). ``infra_error`` is the
    reason the farm itself failed, if it did. ``new_tests`` are the tests that were
    repeated because they had never been seen.
    """
    # pytest --keep-duplicates can collect one id twice; it is still one test to
    # account for.
    wanted = tuple(dict.fromkeys(collected))
    wanted_set = frozenset(wanted)
    ignored = tuple(node_id for node_id in final if node_id not in wanted_set)
    missing = tuple(node_id for node_id in wanted if node_id not in final)

    if interrupted:
        return Decision(
            Verdict.INTERRUPTED,
            missing=missing,
            message=_with_missing("the run was interrupted", missing, len(wanted)),
            ignored=ignored,
        )
    if infra_error is not None:
        return Decision(
            Verdict.ERROR,
            missing=missing,
            message=_with_missing(infra_error or "infrastructure error", missing, len(wanted)),
            ignored=ignored,
        )
    if not wanted:
        return Decision(Verdict.NO_TESTS, message="no tests were collected", ignored=ignored)
    if missing:
        return Decision(
            Verdict.ERROR,
            missing=missing,
            message=_missing_sentence(missing, len(wanted)),
            ignored=ignored,
        )

    if not any(is_test(node_id) for node_id in wanted):
        # pytest exits 5 when every module skipped itself: it collected no test.
        message = "no tests were collected: every module skipped itself"
        return Decision(Verdict.NO_TESTS, message=message, ignored=ignored)

    attempts = tuple(attempts)
    failing = [node_id for node_id in wanted if final[node_id].outcome.is_failure]
    failed = tuple(node_id for node_id in failing if node_id not in quarantined)
    excused = tuple(node_id for node_id in failing if node_id in quarantined)
    flaky = _flaky(wanted, final, attempts)
    new_flaky = _disagreeing(wanted, new_tests, attempts)
    found = {
        "failed": failed,
        "flaky": flaky,
        "ignored": ignored,
        "quarantined_failures": excused,
        "new_flaky": new_flaky,
    }
    blamed_flaky = tuple(
        node_id
        for node_id in flaky
        if node_id not in quarantined and (flaky_policy is FlakyPolicy.FAIL or node_id in new_flaky)
    )
    if failed or blamed_flaky:
        reasons = []
        if failed:
            reasons.append(f"{_count(len(failed), 'test')} failed: {_name_some(failed)}")
        new_only = tuple(n for n in new_flaky if n not in failed)
        if new_only:
            reasons.append(f"{_count(len(new_only), 'new test')} flaky: {_name_some(new_only)}")
        policy_only = tuple(n for n in blamed_flaky if n not in new_flaky)
        if policy_only:
            reasons.append(
                f"{_count(len(policy_only), 'test')} flaky (flaky tests fail): "
                f"{_name_some(policy_only)}"
            )
        return Decision(Verdict.FAILED, message="; ".join(reasons), **found)
    excuse = (
        f"{_count(len(excused), 'quarantined test')} failed and "
        f"{'was' if len(excused) == 1 else 'were'} not counted: {_name_some(excused)}"
        if excused
        else ""
    )
    if flaky:
        message = (
            f"{_count(len(flaky), 'test')} passed only after a failed attempt: {_name_some(flaky)}"
        )
        return Decision(Verdict.FLAKY, message="; ".join(filter(None, [message, excuse])), **found)
    return Decision(Verdict.PASSED, message=excuse, **found)


def _flaky(
    wanted: Sequence[str], final: Mapping[str, TestResult], attempts: Iterable[TestResult]
) -> tuple[str, ...]:
    """Collected tests whose final result is not a failure but an earlier attempt was.

    An attempt counts as earlier when its number is below the final one's; a lost
    attempt (no report) leaves no record here, so a plain requeue is not flaky.
    """
    failed_before: set[str] = set()
    for attempt in attempts:
        result = final.get(attempt.node_id)
        if (
            result is not None
            and attempt.outcome.is_failure
            and attempt.attempt < result.attempt
            and not result.outcome.is_failure
        ):
            failed_before.add(attempt.node_id)
    return tuple(node_id for node_id in wanted if node_id in failed_before)


def _disagreeing(
    wanted: Sequence[str], new_tests: Collection[str], attempts: Sequence[TestResult]
) -> tuple[str, ...]:
    """New tests whose attempts did not all fail or all pass (skips aside)."""
    if not new_tests:
        return ()
    seen: dict[str, set[bool]] = {}
    for attempt in attempts:
        if attempt.node_id in new_tests and attempt.outcome is not Outcome.SKIPPED:
            seen.setdefault(attempt.node_id, set()).add(attempt.outcome.is_failure)
    return tuple(node_id for node_id in wanted if len(seen.get(node_id, ())) > 1)


def _missing_sentence(missing: Sequence[str], total: int) -> str:
    verb = "has" if len(missing) == 1 else "have"
    return f"{len(missing)} of {_count(total, 'test')} {verb} no result: {_name_some(missing)}"


def _with_missing(reason: str, missing: Sequence[str], total: int) -> str:
    if not missing:
        return reason
    return f"{reason}; {_missing_sentence(missing, total)}"


def _name_some(node_ids: Sequence[str]) -> str:
    named = ", ".join(node_ids[:_NAMED_IN_MESSAGE])
    rest = len(node_ids) - _NAMED_IN_MESSAGE
    return f"{named} and {rest} more" if rest > 0 else named


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


__all__ = ["Decision", "decide", "exit_code"]
