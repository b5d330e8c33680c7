"""Runs the report tests share: one as pytest alone would report it, one with retries.

``pytest_like_run`` has no retries, flaky tests, quarantine, suspects or change: the
summary, JUnit XML and JSON report of it must stay what they were before farm
retried tests. ``retried_run`` has one of everything farm adds. ``sections_run``
has one test of each kind with what its test process sends for pytest's sections.
"""

from __future__ import annotations

from typing import Any

from farm.core.domain import (
    ChangeRef,
    CodeInfo,
    CollectWarning,
    MachineSuspect,
    Outcome,
    Retries,
    RunSummary,
    ShardTimeline,
    TestResult,
    Verdict,
)
from farm.core.pytest_options import PytestOptions
from farm.core.pytest_report import Place, PytestReport, ResultDetail

# What a test may print: a NUL, the end of a CDATA section, markup, a terminal escape.
HOSTILE = "nul\x00 cdata]]> <script>alert(1)</script> &amp; esc\x1b[2J"


def attempt(node_id: str, outcome: Outcome = Outcome.PASSED, **fields: object) -> TestResult:
    """An attempt on worker ``a:11`` of machine ``host-a`` unless told otherwise."""
    values: dict[str, object] = {
        "run_id": "r1",
        "shard_id": 1,
        "lease": 1,
        "node_id": node_id,
        "outcome": outcome,
        "duration_s": 0.5,
        "worker": "a:11",
        "machine": "host-a",
        "started_at": 1_700_000_001.0,
        "finished_at": 1_700_000_001.5,
    }
    values.update(fields)
    return TestResult(**values)  # type: ignore[arg-type]


def pytest_like_run() -> RunSummary:
    """A failed run with one result of each kind, a lost test and a remote farm."""
    return RunSummary(
        run_id="r1",
        verdict=Verdict.FAILED,
        collected=7,
        results=(
            attempt("tests/test_a.py::test_ok", duration_s=1.25, output="hello"),
            attempt(
                "tests/test_a.py::test_bad",
                Outcome.FAILED,
                duration_s=2.0,
                longrepr=(
                    "def test_bad():\n>   assert 1 == 2\nE   assert 1 == 2\n"
                    "tests/test_a.py:3: AssertionError"
                ),
                output="out <&> ]]> \x00 line\n",
            ),
            attempt(
                "tests/test_b.py::TestC::test_err[x]",
                Outcome.ERROR,
                longrepr="fixture 'db' not found",
                tally=(("error", 1),),
            ),
            attempt("tests/test_b.py::test_skip", Outcome.SKIPPED, longrepr="no network"),
            attempt("tests/test_b.py::test_xf", Outcome.XFAILED, longrepr="known bug"),
            attempt(
                "tests/test_c.py::test_slow",
                Outcome.TIMEOUT,
                duration_s=60.0,
                longrepr="timed out after 60s",
            ),
        ),
        missing=("tests/test_c.py::test_lost",),
        makespan_s=64.5,
        estimated_makespan_s=60.0,
        workers=4,
        started_at=1_700_000_000.0,
        finished_at=1_700_000_064.5,
        shards=(
            ShardTimeline(0, 4, "a:11", "host-a", 1_700_000_000.5, 1_700_000_010.0),
            ShardTimeline(1, 3, "b:7", "host-b", 1_700_000_000.5, 1_700_000_064.0),
        ),
        code=CodeInfo("ab" * 32, 8192, 4096, 0.1, 0.2),
        deselected=2,
        collect_warnings=1,
    )


FLAKY = "tests/test_f.py::test_flaky"  # failed on host-a, passed on host-b
FLAKY_ERROR = "tests/test_f.py::test_setup_flaky"  # errored in setup, then passed
BROKEN = "tests/test_f.py::test_broken"  # failed on all three attempts
QUARANTINED = "tests/test_f.py::test_known_flaky"  # failed twice, but quarantined
NEW = "tests/test_n.py::test_new"  # a new test run three times: passed, failed, passed
DENIED = tuple(f"tests/test_d.py::test_{i}" for i in range(7))  # no retry left


def retried_run() -> RunSummary:
    """A run with retries: flaky tests, failures, quarantine, a new test, a spent budget."""
    fail = Outcome.FAILED
    earlier = (
        attempt(FLAKY, fail, longrepr=f"E   assert {HOSTILE}", output=HOSTILE),
        attempt(FLAKY_ERROR, Outcome.ERROR, longrepr="E   ConnectionError"),
        attempt(BROKEN, fail, longrepr="E   first", output="out 1", worker="b:7", machine="host-b"),
        attempt(QUARANTINED, fail, longrepr="E   nope"),
        attempt(NEW, shard_id=2),
        attempt(NEW, fail, attempt=2, longrepr="E   race", worker="c:3", machine="host-c"),
        # Attempts are listed as they finished, which need not be their order.
        attempt(BROKEN, Outcome.TIMEOUT, attempt=2, longrepr="timed out", machine="host-c"),
    )
    results = (
        attempt("tests/test_a.py::test_ok"),
        attempt(FLAKY, attempt=2, worker="b:7", machine="host-b", duration_s=0.75),
        attempt(FLAKY_ERROR, attempt=2, worker="b:7", machine="host-b"),
        attempt(BROKEN, fail, attempt=3, longrepr="E   third", output="out 3"),
        attempt(QUARANTINED, fail, attempt=2, longrepr="E   nope again", worker="b:7"),
        attempt(NEW, attempt=3),
        *(attempt(node_id, fail, longrepr="E   denied") for node_id in DENIED),
    )
    return RunSummary(
        run_id="r2",
        verdict=Verdict.FAILED,
        collected=len(results),
        results=results,
        missing=(),
        makespan_s=12.3,
        estimated_makespan_s=11.0,
        workers=4,
        started_at=1_700_000_000.0,
        finished_at=1_700_000_012.3,
        earlier_attempts=earlier,
        flaky=(FLAKY, FLAKY_ERROR),
        quarantined_failures=(QUARANTINED,),
        new_flaky=(NEW,),
        retries=Retries(allowed=2, budget=5, spent=5, denied=DENIED),
        first_failure_s=3.5,
        suspects=(MachineSuspect(FLAKY, "host-a", 1, 1),),
        change=ChangeRef(
            repository="github.com/acme/shop",
            commit_sha="0123456789abcdef0123456789abcdef01234567",
            branch="main",
            pull_request="42",
            author="ada",
        ),
    )


# --- a run whose results carry what pytest's sections show ------------------------

ROOT = "/src/shop"  # where pytest ran: the rootdir, also the invocation folder
FAIL_TEXT = (
    "\n    def test_fail():\n>       assert 1 == 2\nE       assert 1 == 2\n\n"
    "tests/test_r.py:14: AssertionError\n"
)
SETUP_TEXT = (
    "\n    @pytest.fixture\n    def broken():\n>       raise RuntimeError('boom')\n"
    "E       RuntimeError: boom\n\ntests/conftest.py:10: RuntimeError\n"
)
TEARDOWN_TEXT = "\n>       raise ValueError('teardown boom')\nE       ValueError: teardown boom\n"
WARNING = Place("tests/test_r.py", 22, "UserWarning: careful\n  warnings.warn('careful')\n")


def shown(
    node_id: str,
    outcome: Outcome,
    tally: dict[str, int],
    *reports: PytestReport,
    warnings: tuple[Place, ...] = (),
    durations: tuple[tuple[str, float], ...] = (),
) -> TestResult:
    """A result of a test process, with the detail pytest's sections need."""
    detail = ResultDetail(reports=reports, warnings=warnings, durations=durations)
    return attempt(node_id, outcome, tally=tuple(sorted(tally.items())), detail=detail)


def sections_run(**options: Any) -> RunSummary:
    """One test of each kind, as the test processes reported them, run with
    ``options`` (:class:`PytestOptions` fields)."""
    call = ("call", 0.01)
    results = (
        attempt("tests/test_r.py::test_pass", tally=(("passed", 1),)),
        shown(
            "tests/test_r.py::test_fail",
            Outcome.FAILED,
            {"failed": 1},
            PytestReport(
                "failed",
                "call",
                "FAILED",
                "test_fail",
                message="assert 1 == 2",
                text=FAIL_TEXT,
                sections=(("Captured stdout call", "in call\n"),),
                teardown=(("Captured stdout teardown", "bye\n"),),
                crash=Place("tests/test_r.py", 14, "assert 1 == 2"),
            ),
            durations=(("setup", 0.0001), ("call", 0.25), ("teardown", 0.0002)),
        ),
        shown(
            "tests/test_r.py::test_error",
            Outcome.ERROR,
            {"error": 1},
            PytestReport(
                "error",
                "setup",
                "ERROR",
                "test_error",
                message="RuntimeError: boom",
                text=SETUP_TEXT,
            ),
            durations=(("setup", 1.5), ("teardown", 0.0)),
        ),
        shown(
            "tests/test_r.py::TestK::test_td",
            Outcome.ERROR,
            {"passed": 1, "error": 1},
            PytestReport(
                "error",
                "teardown",
                "ERROR",
                "TestK.test_td",
                message="ValueError: teardown boom",
                text=TEARDOWN_TEXT,
                sections=(("Captured stdout teardown", "tearing down\n"),),
            ),
        ),
        shown(
            "tests/test_r.py::test_warn",
            Outcome.PASSED,
            {"passed": 1, "warnings": 1},
            warnings=(WARNING,),
            durations=(call,),
        ),
        *(
            shown(
                f"tests/test_r.py::test_skip[{i}]",
                Outcome.SKIPPED,
                {"skipped": 1},
                PytestReport(
                    "skipped",
                    "call",
                    "SKIPPED",
                    message="Skipped: nah",
                    skip=Place("tests/test_r.py", 31, "Skipped: nah"),
                ),
            )
            for i in (1, 2)
        ),
        shown(
            "tests/test_r.py::test_marked",
            Outcome.SKIPPED,
            {"skipped": 1},
            PytestReport(
                "skipped",
                "setup",
                "SKIPPED",
                message="marked",
                skip=Place("tests/test_r.py", None, "marked"),
            ),
        ),
        shown(
            "tests/test_r.py::test_xfail",
            Outcome.XFAILED,
            {"xfailed": 1},
            PytestReport("xfailed", "call", "XFAIL", "test_xfail", message="known"),
        ),
        shown(
            "tests/test_r.py::test_xfail_setup",
            Outcome.XFAILED,
            {"xfailed": 1},
            PytestReport("xfailed", "setup", "XFAIL", "test_xfail_setup", message="reason: later"),
        ),
        shown(
            "tests/test_r.py::test_xpass",
            Outcome.XPASSED,
            {"xpassed": 1},
            PytestReport("xpassed", "call", "XPASS", "test_xpass", message="maybe"),
        ),
        shown(
            "tests/test_r.py::test_prints",
            Outcome.PASSED,
            {"passed": 1},
            PytestReport(
                "passed",
                "call",
                "PASSED",
                "test_prints",
                sections=(("Captured stdout call", "hello\n"),),
            ),
        ),
        shown(
            "tests/test_long.py::test_long",
            Outcome.FAILED,
            {"failed": 1},
            PytestReport(
                "failed",
                "call",
                "FAILED",
                "test_long",
                message="AssertionError: " + "a" * 100 + "\nsecond line",
                text=FAIL_TEXT,
            ),
        ),
        shown(
            "tests/test_skipped_module.py",
            Outcome.SKIPPED,
            {"skipped": 1},
            PytestReport(
                "skipped",
                "collect",
                "SKIPPED",
                message="could not import 'x'",
                skip=Place("tests/test_skipped_module.py", 3, "could not import 'x'"),
            ),
        ),
    )
    return RunSummary(
        run_id="r3",
        verdict=Verdict.FAILED,
        collected=len(results),
        results=results,
        missing=(),
        makespan_s=2.5,
        estimated_makespan_s=2.0,
        workers=2,
        options=PytestOptions(**{"reportchars": "wfE", **options}),
        rootdir=ROOT,
        invocation_dir=ROOT,
        collection_warnings=(
            CollectWarning("tests/test_r.py:64", f"{ROOT}/tests/test_r.py:64: UnknownMark\n"),
        ),
        collect_warnings=1,
    )
