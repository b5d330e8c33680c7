"""The verdict of a change: one answer over every run of one commit.

A change (:class:`farm.core.domain.ChangeRef`) may be run several times: a CI job
retried, a run that hit a broken worker and was run again. Its verdict is taken
from its runs, oldest first, by these rules:

* A run *concluded* when its verdict is passed, failed, flaky or no_tests. A run
  that ended in error, was interrupted or has no verdict yet (still running, or
  abandoned) contributes no test results: its outcome says nothing about the code.
* Each test's result is the one of the latest concluded run that ran it; a later
  run that did not run a test (``-k``, other paths) leaves the earlier result
  standing. In a run, a test is *failed* (failed on every attempt), *quarantined*
  (failed, but quarantined then), *flaky* (failed, then passed; new tests whose
  repeats disagreed count here too) or passed, as the run's
  :class:`~farm.core.domain.RunFindings` recorded.
* Any failed test makes the change failed; else any flaky one makes it flaky
  (failed under :attr:`FlakyPolicy.FAIL <farm.core.domain.FlakyPolicy.FAIL>`); else
  it passed. Quarantined failures are named but never fail it.
* A concluded run marked failed whose findings name no failing or flaky test (a
  run recorded without findings) fails the change only while it is the latest
  concluded run.
* No concluded run: error, which running the change again may cure, with the
  latest run's reason. Every concluded run was no_tests: error too, as pytest
  exits non-zero then: a change whose runs tested nothing was not shown to work,
  and a CI gate must not pass it.
* When the latest run ended in error or was interrupted but an earlier one
  concluded, the verdict stands on the earlier runs and the reason says so.

Pure: no I/O, no clock; the store's records are turned into :class:`ChangeRun`
by the caller.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from farm.core.domain import (
    VERDICT_EXIT_CODES,
    ExitCode,
    FlakyPolicy,
    RunFindings,
    TestResult,
    Verdict,
)

# How many node ids a reason names before it only counts the rest.
NAMED_IN_REASON = 5
# How many hex digits of a run id name it for a person (as git shortens a sha).
SHORT_RUN_ID = 8

_CONCLUDED = frozenset({Verdict.PASSED, Verdict.FAILED, Verdict.FLAKY, Verdict.NO_TESTS})


class TestState(str, enum.Enum):
    """What one test's latest result in a change says."""

    __test__ = False  # not a pytest test class

    PASSED = "passed"
    FAILED = "failed"
    FLAKY = "flaky"
    QUARANTINED = "quarantined"  # failed, but quarantined: not held against the change


@dataclass(frozen=True)
class ChangeRun:
    """One run of a change, as the verdict needs it.

    ``verdict`` is None while the run has none (still running); ``tested`` holds the
    node ids the run has final results for; ``findings`` is None when the run was
    recorded without them (see :func:`findings_from_results`).
    """

    run_id: str
    created_at: float
    verdict: Verdict | None
    message: str
    tested: frozenset[str]
    findings: RunFindings | None = None

    @property
    def concluded(self) -> bool:
        return self.verdict in _CONCLUDED


@dataclass(frozen=True)
class ChangeVerdict:
    """The answer for a change: ``verdict`` is passed, failed, flaky or error.

    ``reason`` is one line, starting with the verdict, saying why and what to do;
    ``failed``, ``flaky`` and ``quarantined_failures`` are node ids by their latest
    result, sorted; ``runs`` counts the change's runs, ``runs_counted`` those whose
    results count (concluded), ``tests`` the tests with a result.
    """

    verdict: Verdict
    reason: str
    failed: tuple[str, ...] = ()
    flaky: tuple[str, ...] = ()
    quarantined_failures: tuple[str, ...] = ()
    runs: int = 0
    runs_counted: int = 0
    tests: int = 0

    @property
    def exit_code(self) -> ExitCode:
        """0 passed or flaky, 1 failed, 3 error: what a CI step gating on it sees."""
        return VERDICT_EXIT_CODES[self.verdict]


def change_verdict(
    runs: Sequence[ChangeRun], *, flaky: FlakyPolicy = FlakyPolicy.PASS
) -> ChangeVerdict:
    """The verdict of a change from its runs, oldest first (see the module's rules)."""
    if not runs:
        return ChangeVerdict(Verdict.ERROR, "error: the change has no runs; run it", runs=0)
    concluded = [run for run in runs if run.concluded]
    latest = runs[-1]
    if not concluded:
        return ChangeVerdict(Verdict.ERROR, f"error: {_unconcluded(latest)}", runs=len(runs))
    states = latest_states(concluded)
    if not states and all(run.verdict is Verdict.NO_TESTS for run in concluded):
        reason = (
            f"error: no run of this change collected a test ({_count(len(concluded), 'run')}); "
            "check its paths and -k/-m options"
        )
        return ChangeVerdict(Verdict.ERROR, reason, runs=len(runs), runs_counted=len(concluded))

    by_state = _by_state(states)
    failed = by_state.get(TestState.FAILED, ())
    flaky_tests = by_state.get(TestState.FLAKY, ())
    quarantined = by_state.get(TestState.QUARANTINED, ())
    last_concluded = concluded[-1]
    unexplained = last_concluded.verdict is Verdict.FAILED and not _explains_failure(
        last_concluded.findings
    )
    parts: list[str] = []
    if failed or unexplained or (flaky_tests and flaky is FlakyPolicy.FAIL):
        verdict = Verdict.FAILED
        if failed:
            parts.append(f"{_tests(failed)} failed on every attempt: {_name_some(failed)}")
        if unexplained:
            parts.append(f"run {short_id(last_concluded.run_id)} failed: {last_concluded.message}")
        if flaky_tests:
            policy = "; flaky tests fail the change (--flaky=fail)"
            needed = f"{_tests(flaky_tests)} needed a retry: {_name_some(flaky_tests)}"
            parts.append(needed + (policy if flaky is FlakyPolicy.FAIL else ""))
        head = "failed: "
    elif flaky_tests:
        verdict = Verdict.FLAKY
        head = "flaky: passed; "
        parts.append(f"{_tests(flaky_tests)} needed a retry: {_name_some(flaky_tests)}")
    else:
        verdict = Verdict.PASSED
        head = "passed: "
        parts.append(f"{_tests(states)} passed in {_count(len(concluded), 'run')}")
    if quarantined:
        parts.append(
            f"{_tests(quarantined)} failed but {_be(len(quarantined))} quarantined: "
            f"{_name_some(quarantined)}"
        )
    if not latest.concluded:
        parts.append(f"the latest {_unconcluded(latest, advice=False)}")
    return ChangeVerdict(
        verdict,
        head + "; ".join(parts),
        failed=failed,
        flaky=flaky_tests,
        quarantined_failures=quarantined,
        runs=len(runs),
        runs_counted=len(concluded),
        tests=len(states),
    )


def latest_states(runs: Sequence[ChangeRun]) -> dict[str, TestState]:
    """Each test's state by the latest of ``runs`` (oldest first) that ran it."""
    states: dict[str, TestState] = {}
    for run in runs:
        if run.concluded:
            states.update(_run_states(run))
    return states


def findings_from_results(
    final: Mapping[str, TestResult], quarantined: frozenset[str] = frozenset()
) -> RunFindings:
    """What a run recorded without findings found, from its final results alone:
    failing final results are failed (or quarantined failures). Flakiness cannot be
    told without the earlier attempts, so none is found."""
    failing = [node_id for node_id, result in final.items() if result.outcome.is_failure]
    return RunFindings(
        failed=tuple(n for n in failing if n not in quarantined),
        quarantined_failures=tuple(n for n in failing if n in quarantined),
    )


def short_id(run_id: str) -> str:
    """A run id as a person reads it."""
    return run_id[:SHORT_RUN_ID]


def _run_states(run: ChangeRun) -> dict[str, TestState]:
    states = dict.fromkeys(run.tested, TestState.PASSED)
    findings = run.findings
    if findings is None:
        return states
    # Later assignments win: a test both flaky and failed (two parametrised repeats
    # of one id) counts as failed.
    for node_id in (*findings.flaky, *findings.new_flaky):
        states[node_id] = TestState.FLAKY
    for node_id in findings.quarantined_failures:
        states[node_id] = TestState.QUARANTINED
    for node_id in findings.failed:
        states[node_id] = TestState.FAILED
    return states


def _explains_failure(findings: RunFindings | None) -> bool:
    return findings is not None and bool(findings.failed or findings.flaky or findings.new_flaky)


def _unconcluded(run: ChangeRun, *, advice: bool = True) -> str:
    """Why ``run`` gave no answer, starting ``run X``, and what to do about it (or,
    without ``advice``, that the verdict stands on the earlier runs)."""
    name = f"run {short_id(run.run_id)}"
    message = f": {run.message}" if run.message else ""
    if run.verdict is Verdict.ERROR:
        said = f"{name} ended in an infrastructure error{message}"
    elif run.verdict is Verdict.INTERRUPTED:
        said = f"{name} was interrupted{message}"
    else:
        said = f"{name} has no verdict yet: it is still running, or its scheduler died"
        if advice:
            return f"{said}; wait for it, or run it again"
    return f"{said}; {'run it again' if advice else 'the verdict is of the earlier runs'}"


def _by_state(states: Mapping[str, TestState]) -> dict[TestState, tuple[str, ...]]:
    """The tests in each state but passed, sorted: one pass over a change's states,
    which hold every test of its runs (100,000 for a large suite)."""
    found: dict[TestState, list[str]] = {}
    for node_id, state in states.items():
        if state is not TestState.PASSED:
            found.setdefault(state, []).append(node_id)
    return {state: tuple(sorted(node_ids)) for state, node_ids in found.items()}


def _name_some(node_ids: Sequence[str]) -> str:
    named = ", ".join(node_ids[:NAMED_IN_REASON])
    rest = len(node_ids) - NAMED_IN_REASON
    return f"{named} and {rest} more" if rest > 0 else named


def _tests(node_ids: Sequence[str] | Mapping[str, object]) -> str:
    return _count(len(node_ids), "test")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _be(n: int) -> str:
    return "is" if n == 1 else "are"


__all__ = [
    "ChangeRun",
    "ChangeVerdict",
    "TestState",
    "change_verdict",
    "findings_from_results",
    "latest_states",
    "short_id",
]
