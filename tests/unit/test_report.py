"""Terminal output: live progress on a fake clock, and the end-of-run summary."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import io
import re

from helpers import make_result
from report_fixtures import (
    FLAKY,
    FLAKY_ERROR,
    NEW,
    QUARANTINED,
    attempt,
    pytest_like_run,
    retried_run,
)

from farm.core.domain import (
    ChangeRef,
    CodeInfo,
    MachineSuspect,
    Outcome,
    Retries,
    RunSummary,
    ShardTimeline,
    TestResult,
    Verdict,
)
from farm.report.findings import MAX_NAMED, earlier_by_test
from farm.report.progress import Progress
from farm.report.summary import format_duration, format_summary, summary_counts, terminal_safe

ANSI = re.compile("\x1b\\[[0-9;]*[A-Za-z]")


# Failures in these tests are reported as coming from worker w3, shard 7.
result = functools.partial(make_result, duration_s=0.01, worker="w3", shard_id=7)


def summary(
    *results: TestResult,
    missing: tuple[str, ...] = (),
    verdict: Verdict = Verdict.FAILED,
    message: str = "",
    makespan_s: float = 24.1,
    shards: tuple[ShardTimeline, ...] = (),
    code: CodeInfo | None = None,
) -> RunSummary:
    return RunSummary(
        shards=shards,
        code=code,
        run_id="r1",
        verdict=verdict,
        collected=len(results) + len(missing),
        results=results,
        missing=missing,
        makespan_s=makespan_s,
        estimated_makespan_s=22.8,
        workers=16,
        message=message,
    )


# --- escaping and small formats -------------------------------------------------


def test_terminal_safe_makes_control_characters_visible() -> None:
    text = "clear\x1b[2J\x1bc bell\x07 cr\r nul\x00 c1\x9b del\x7f bidi\u202e lone\udc80"
    safe = terminal_safe(text)
    assert safe == (
        "clear\\x1b[2J\\x1bc bell\\x07 cr\\x0d nul\\x00 c1\\x9b del\\x7f bidi\\u202e lone\\udc80"
    )
    safe.encode("utf-8")  # printable on any UTF-8 terminal


def test_terminal_safe_keeps_newlines_tabs_and_unicode() -> None:
    assert terminal_safe("a\tb\nc 中文 \U0001f600") == "a\tb\nc 中文 \U0001f600"
    assert terminal_safe("windows\r\nline") == "windows\nline"


def test_format_duration_is_pytests() -> None:
    assert format_duration(24.1) == "24.10s"
    assert format_duration(124.1) == "124.10s (0:02:04)"


# --- Progress on a terminal -----------------------------------------------------


def tty_progress(width: int = 80) -> tuple[Progress, io.StringIO]:
    stream = io.StringIO()
    progress = Progress(
        stream,
        total=4,
        estimated_total_s=40.0,
        workers=2,
        is_tty=True,
        width=width,
        started_at=100.0,
    )
    return progress, stream


def test_tty_redraws_one_line_in_place() -> None:
    progress, stream = tty_progress()
    progress.add(result("t.py::a", duration_s=20.0), estimate_s=10.0)
    progress.add(result("t.py::b", Outcome.FAILED, duration_s=0.0), estimate_s=0.0)
    progress.render(now=112.5)
    progress.add(result("t.py::c", Outcome.SKIPPED, duration_s=0.0), estimate_s=0.0)
    progress.render(now=113.0)
    frames = stream.getvalue().split("\r")[1:]
    assert len(frames) == 2
    assert "\n" not in stream.getvalue()
    assert all(frame.endswith("\x1b[K") for frame in frames)
    assert " 50% " in frames[0] and "passed 1 failed 1 skipped 0 remaining 2" in frames[0]
    assert " 75% " in frames[1] and "passed 1 failed 1 skipped 1 remaining 1" in frames[1]
    assert "13s elapsed" in frames[1]
    # 30 s of estimated work left, tests run at twice their estimate, 2 workers.
    assert progress.speed() == 2.0
    assert progress.eta_s() == 30.0
    assert "ETA 30s" in frames[1]


def test_xfailed_and_xpassed_are_counted_in_pytests_words() -> None:
    progress, stream = tty_progress(width=200)
    progress.add(result("t.py::a", Outcome.SKIPPED), estimate_s=1.0)
    progress.render(now=101.0)
    progress.add(result("t.py::b", Outcome.XFAILED), estimate_s=1.0)
    progress.add(result("t.py::c", Outcome.XPASSED), estimate_s=1.0)
    progress.render(now=102.0)
    first, second = stream.getvalue().split("\r")[1:]
    assert "passed 0 failed 0 skipped 1 remaining 3" in first and "xfailed" not in first
    assert "passed 0 failed 0 skipped 1 xfailed 1 xpassed 1 remaining 1" in second
    assert progress.done == 3


def test_eta_before_any_result_uses_the_plan() -> None:
    progress, _ = tty_progress()
    assert progress.eta_s() == 20.0


def test_eta_is_zero_when_all_done() -> None:
    progress, _ = tty_progress()
    for name in "abcd":
        progress.add(result(f"t.py::{name}"), estimate_s=1.0)
    assert progress.remaining == 0 and progress.eta_s() == 0.0


def test_tty_line_fits_the_terminal_width() -> None:
    for width in (200, 80, 60, 30, 12, 1):
        progress, stream = tty_progress(width)
        progress.add(result("t.py::a"), estimate_s=1.0)
        progress.render(now=100.0 + 7 * 3600)
        frame = stream.getvalue().removeprefix("\r").removesuffix("\x1b[K")
        assert 0 < len(frame) <= max(width - 1, 1), (width, frame)
    assert frame  # even one column shows something
    wide, stream = tty_progress(200)
    wide.add(result("t.py::a"), estimate_s=1.0)
    wide.render(now=101.0)
    assert re.search(r"\[#+-+\]  25% passed 1 ", stream.getvalue())


def test_counts_and_eta_survive_a_standard_terminal_with_a_big_suite() -> None:
    stream = io.StringIO()
    progress = Progress(stream, 1_400_000, 500_000.0, 512, is_tty=True, started_at=0.0)
    for i in range(1000):
        progress.add(result(f"t.py::{i}", Outcome.FAILED if i % 10 == 0 else Outcome.PASSED), 0.3)
    progress.render(now=3700.0)
    frame = stream.getvalue().removeprefix("\r").removesuffix("\x1b[K")
    assert len(frame) <= 79
    assert "passed 900 failed 100 skipped 0 remaining 1399000" in frame
    assert "ETA " in frame


def test_tty_close_ends_the_line_once() -> None:
    progress, stream = tty_progress()
    progress.render(now=100.0)
    progress.close()
    progress.close()
    progress.render(now=200.0)
    assert stream.getvalue().count("\n") == 1
    assert stream.getvalue().endswith("\n")


# --- Progress in a log ----------------------------------------------------------


def test_plain_prints_at_most_every_interval() -> None:
    stream = io.StringIO()
    progress = Progress(
        stream, total=3, estimated_total_s=3.0, workers=1, is_tty=False, interval_s=5.0
    )
    progress.render(now=1000.0)
    progress.add(result("t.py::a", duration_s=1.0), estimate_s=1.0)
    progress.render(now=1001.0)
    progress.render(now=1004.9)
    progress.render(now=1005.0)
    progress.add(result("t.py::b", duration_s=1.0), estimate_s=1.0)
    progress.render(now=1006.0)
    progress.close(now=1007.0)
    lines = stream.getvalue().splitlines()
    assert lines == [
        "farm: 0/3 done, passed 0 failed 0 skipped 0 remaining 3, 0s elapsed, ETA 3s",
        "farm: 1/3 done, passed 1 failed 0 skipped 0 remaining 2, 5s elapsed, ETA 2s",
        "farm: 2/3 done, passed 2 failed 0 skipped 0 remaining 1, 7s elapsed, ETA 1s",
    ]
    assert "\r" not in stream.getvalue() and "\x1b" not in stream.getvalue()


def test_plain_close_does_not_repeat_an_unchanged_line() -> None:
    stream = io.StringIO()
    progress = Progress(stream, total=1, estimated_total_s=1.0, workers=1, is_tty=False)
    progress.render(now=0.0)
    progress.close(now=1.0)
    assert len(stream.getvalue().splitlines()) == 1


# --- the summary ----------------------------------------------------------------


def big_run() -> RunSummary:
    passed = tuple(result(f"tests/test_ok.py::test_{i}") for i in range(1997))
    failed = (
        result(
            "tests/test_bad.py::test_assert",
            Outcome.FAILED,
            duration_s=3.5,
            longrepr="def test_assert():\n>   assert 1 == 2\nE   assert 1 == 2",
            output="line\n" * 100,
        ),
        result("tests/test_bad.py::test_hang", Outcome.TIMEOUT, duration_s=60.0),
        result("tests/test_bad.py::test_segv", Outcome.CRASHED, duration_s=0.2),
    )
    skipped = (
        result("tests/test_skip.py::a", Outcome.SKIPPED),
        result("tests/test_skip.py::b", Outcome.SKIPPED),
    )
    return summary(*failed, *passed, *skipped)


def test_last_line_reads_like_pytest() -> None:
    text = format_summary(big_run(), estimates={}, color=False)
    last = text.splitlines()[-1]
    assert re.fullmatch(r"=+ .* =+", last)
    assert (
        "3 failed, 1997 passed, 2 skipped in 24.10s (plan estimate 22.80s, 16 workers), "
        "verdict FAILED" in last
    )
    assert len(last) >= 80


def test_failures_come_first_with_traceback_and_trimmed_output() -> None:
    text = format_summary(big_run(), estimates={}, color=False, max_output_lines=40)
    lines = text.splitlines()
    assert "FAILURES" in lines[0]
    assert "tests/test_bad.py::test_assert" in lines[1]
    assert lines[2] == "failed on worker w3 (shard 7, attempt 1) after 3.50s"
    assert "E   assert 1 == 2" in text
    assert "timeout on worker w3" in text and "crashed on worker w3" in text
    assert "... [60 lines of output cut] ..." in text
    assert text.count("\nline") == 40
    assert text.index("FAILURES") < text.index("slowest") < text.index("verdict FAILED")


def test_short_summary_lists_each_failure_on_one_line() -> None:
    text = format_summary(big_run(), estimates={}, color=False)
    section = text[text.index("short test summary info") :].splitlines()[1:4]
    assert section == [
        "FAILED tests/test_bad.py::test_assert - E   assert 1 == 2",
        "TIMEOUT tests/test_bad.py::test_hang",
        "CRASHED tests/test_bad.py::test_segv",
    ]


def test_slowest_show_estimate_beside_actual() -> None:
    estimates = {"tests/test_bad.py::test_hang": 1.25}
    text = format_summary(big_run(), estimates=estimates, slowest=2, color=False)
    section = text[text.index("slowest 2 tests") :].splitlines()
    assert section[2].split() == ["60.00s", "1.25s", "tests/test_bad.py::test_hang"]
    assert section[3].split() == ["3.50s", "-", "tests/test_bad.py::test_assert"]
    assert "slowest" not in format_summary(big_run(), estimates={}, slowest=0, color=False)


def test_missing_tests_are_listed_as_lost() -> None:
    run = summary(
        result("t.py::a"),
        missing=("t.py::b", "t.py::c"),
        verdict=Verdict.ERROR,
        message="2 of 3 tests have no result",
    )
    text = format_summary(run, estimates={}, color=False)
    assert "LOST TESTS" in text and "  t.py::b\n  t.py::c" in text
    assert "error: 2 of 3 tests have no result" in text
    assert "1 passed, 2 lost in 24.10s" in text.splitlines()[-1]


def test_color_only_when_asked_and_counts_stay_plain() -> None:
    plain = format_summary(big_run(), estimates={}, color=False)
    assert "\x1b" not in plain
    colored = format_summary(big_run(), estimates={}, color=True)
    assert "\x1b[31m" in colored
    last = colored.splitlines()[-1]
    assert "3 failed, 1997 passed, 2 skipped" in last
    assert ANSI.sub("", colored) == plain


def test_test_output_cannot_drive_the_terminal() -> None:
    run = summary(
        result(
            "t.py::test_evil[\x1b]0;pwned\x07]",
            Outcome.FAILED,
            longrepr="\x1b[2J\x1b[H",
            output="progress\rover\x1b[1A",
        )
    )
    for color in (False, True):
        text = ANSI.sub("", format_summary(run, estimates={}, color=color))
        assert "\x1b" not in text and "\r" not in text and "\x07" not in text
    text = format_summary(run, estimates={}, color=False)
    assert "\\x1b[2J" in text and "progress\\x0dover" in text


def test_counts_wording() -> None:
    errors = summary(result("a", Outcome.ERROR), result("b", Outcome.ERROR))
    assert summary_counts(errors) == "2 errors"
    one = summary(
        result("a", Outcome.ERROR), result("b", Outcome.XFAILED), result("c", Outcome.XPASSED)
    )
    assert summary_counts(one) == "1 xfailed, 1 xpassed, 1 error"
    assert summary_counts(summary()) == "no tests ran"


def test_long_run_and_no_tests_summary_lines() -> None:
    run = summary(result("a"), verdict=Verdict.PASSED, makespan_s=124.1)
    last = format_summary(run, estimates={}, color=False).splitlines()[-1]
    assert "1 passed in 124.10s (0:02:04)" in last and "verdict PASSED" in last
    empty = summary(verdict=Verdict.NO_TESTS, message="no tests were collected")
    text = format_summary(empty, estimates={}, color=False)
    assert text.splitlines()[-1].startswith("=") and "no tests ran in" in text
    assert "verdict NO_TESTS" in text


def test_a_farm_elsewhere_says_which_machines_ran_what_and_the_snapshot() -> None:
    shards = (
        ShardTimeline(0, 30, "a:1", "host-a", 1.0, 2.0),
        ShardTimeline(1, 12, "b:7", "host-b", 1.0, 2.0),
        ShardTimeline(2, 5, "a:2", "host-a", 1.0, 2.0),
    )
    run = summary(result("t.py::a"), shards=shards, code=CodeInfo("cd" * 32, 4096, 4096, 0.1, 0.2))
    text = format_summary(run, estimates={}, color=False)
    assert (
        "snapshot cdcdcdcdcdcd (4 KiB, uploaded 4 KiB); tests by machine: host-a (35), "
        "host-b (12)" in text
    )
    local = format_summary(summary(result("t.py::a"), shards=shards), estimates={}, color=False)
    assert "tests by machine" not in local  # workers on the submitter's disk: one machine


# --- retries, flaky tests, quarantine: what farm adds ---------------------------

PYTEST_LIKE_SUMMARY = "\n".join(
    (
        # A result without pytest's report of it keeps farm's entry, under pytest's
        # section for its outcome: errors first, as pytest prints them.
        "==================================== ERRORS ====================================",
        "_____________________ tests/test_b.py::TestC::test_err[x] ______________________",
        "error on worker a:11 (shard 1, attempt 1) after 0.50s",
        "fixture 'db' not found",
        "=================================== FAILURES ===================================",
        "__________________________ tests/test_a.py::test_bad ___________________________",
        "failed on worker a:11 (shard 1, attempt 1) after 2.00s",
        "def test_bad():",
        ">   assert 1 == 2",
        "E   assert 1 == 2",
        "tests/test_a.py:3: AssertionError",
        "------------------------------- captured output --------------------------------",
        "out <&> ]]> \\x00 line",
        "__________________________ tests/test_c.py::test_slow __________________________",
        "timeout on worker a:11 (shard 1, attempt 1) after 60.00s",
        "timed out after 60s",
        "================================== LOST TESTS ==================================",
        "no result for 1 collected test: their worker was lost or the run ended first",
        "  tests/test_c.py::test_lost",
        "=============================== slowest 6 tests ================================",
        "    actual    estimate  test",
        "    60.00s      30.00s  tests/test_c.py::test_slow",
        "     2.00s           -  tests/test_a.py::test_bad",
        "     1.25s           -  tests/test_a.py::test_ok",
        "     0.50s           -  tests/test_b.py::TestC::test_err[x]",
        "     0.50s           -  tests/test_b.py::test_skip",
        "     0.50s           -  tests/test_b.py::test_xf",
        "=========================== short test summary info ============================",
        "FAILED tests/test_a.py::test_bad - tests/test_a.py:3: AssertionError",
        "TIMEOUT tests/test_c.py::test_slow - timed out after 60s",
        "ERROR tests/test_b.py::TestC::test_err[x] - fixture 'db' not found",
        "snapshot abababababab (8 KiB, uploaded 4 KiB); tests by machine: host-a (4), host-b (3)",
        "= 2 failed, 1 passed, 1 skipped, 2 deselected, 1 xfailed, 1 warning, 1 error, "
        "1 lost in 64.50s (0:01:04) (plan estimate 60.00s (0:01:00), 4 workers), "
        "verdict FAILED =",
    )
)
# The same report in color at 100 columns: what farm printed before it retried tests,
# but for the errors section.
PYTEST_LIKE_COLOR_SHA256 = "c2972babb9ac19c8bcaa5654ddbae7a55120d7e71aad623fcbad2f0244b0e08c"


def pytest_like_summary(run: RunSummary, *, color: bool = False, width: int = 80) -> str:
    estimates = {"tests/test_c.py::test_slow": 30.0} if not color else {}
    return format_summary(run, estimates=estimates, color=color, width=width)


def test_without_retries_the_summary_is_what_it_was_byte_for_byte() -> None:
    run = pytest_like_run()
    assert pytest_like_summary(run) == PYTEST_LIKE_SUMMARY
    colored = pytest_like_summary(run, color=True, width=100).encode()
    assert hashlib.sha256(colored).hexdigest() == PYTEST_LIKE_COLOR_SHA256
    # Retries allowed but none needed, and a first failure with --retries 0: the same.
    calm = dataclasses.replace(run, retries=Retries(allowed=2, budget=5), first_failure_s=None)
    assert pytest_like_summary(calm) == PYTEST_LIKE_SUMMARY
    zero = dataclasses.replace(run, retries=Retries(allowed=0), first_failure_s=1.5)
    assert pytest_like_summary(zero) == PYTEST_LIKE_SUMMARY


def test_flaky_tests_end_the_summary_line_after_pytests_counts() -> None:
    run = retried_run()
    assert summary_counts(run) == "9 failed, 4 passed, 2 flaky"
    last = format_summary(run, estimates={}, color=False).splitlines()[-1]
    assert "= 9 failed, 4 passed, 2 flaky in 12.30s (plan estimate 11.00s, 4 workers)" in last
    lost = dataclasses.replace(run, missing=("t.py::gone",))
    assert summary_counts(lost) == "9 failed, 4 passed, 1 lost, 2 flaky"


def findings_text(run: RunSummary) -> str:
    """The summary's lines between pytest's short summary and its last line."""
    lines = format_summary(run, estimates={}, color=False, slowest=0).splitlines()
    short = next(i for i, line in enumerate(lines) if "short test summary info" in line)
    return "\n".join(line for line in lines[short + 1 : -1] if not line.startswith("FAILED "))


def test_findings_follow_the_short_summary_in_order() -> None:
    assert findings_text(retried_run()) == "\n".join(
        (
            "================================ 2 flaky tests =================================",
            f"{FLAKY}: 2 attempts, failed on a:11 (host-a), passed on b:7 (host-b)",
            f"{FLAKY_ERROR}: 2 attempts, error on a:11 (host-a), passed on b:7 (host-b)",
            "============== quarantined failures, not held against the verdict ==============",
            QUARANTINED,
            "=========================== new tests that are flaky ===========================",
            f"{NEW}: 3 runs: passed, failed, passed",
            "retry budget of 5 ran out: 7 failed tests were not retried (tests/test_d.py::"
            "test_0, tests/test_d.py::test_1, tests/test_d.py::test_2, tests/test_d.py::"
            "test_3, tests/test_d.py::test_4 and 2 more)",
            "============================== machines suspected ==============================",
            f"1 of 1 failures of {FLAKY} on host-a, 1 passes elsewhere",
            "first failure after 3.5s",
            "change 0123456789ab on main (github.com/acme/shop), pull request 42",
        )
    )


def test_each_finding_appears_only_when_there_is_one() -> None:
    run = retried_run()
    bare = dataclasses.replace(
        run,
        flaky=(),
        quarantined_failures=(),
        new_flaky=(),
        retries=Retries(allowed=2, budget=5, spent=1),
        suspects=(),
        change=None,
        first_failure_s=None,
    )
    text = format_summary(bare, estimates={}, color=False)
    assert findings_text(bare) == ""
    assert " flaky" not in text.splitlines()[-1]
    one = dataclasses.replace(bare, retries=Retries(2, 1, 1, denied=("t.py::x",)))
    assert "retry budget of 1 ran out: 1 failed test was not retried (t.py::x)" in format_summary(
        one, estimates={}, color=False
    )
    branchless = dataclasses.replace(bare, change=ChangeRef("/src/shop", "abc"))
    assert "\nchange abc (/src/shop)\n" in format_summary(branchless, estimates={}, color=False)


def test_a_flaky_test_retried_twice_shows_every_attempt_oldest_first() -> None:
    node = "t.py::test_x"
    run = dataclasses.replace(
        retried_run(),
        results=(attempt(node, attempt=3, worker="c:1", machine=""),),
        earlier_attempts=(
            attempt(node, Outcome.CRASHED, attempt=2, worker="", machine="host-b"),
            attempt(node, Outcome.FAILED, worker="", machine=""),
        ),
        flaky=(node,),
    )
    assert (
        f"{node}: 3 attempts, failed on an unknown worker, crashed on host-b, passed on c:1"
        in format_summary(run, estimates={}, color=False)
    )
    assert [a.attempt for a in earlier_by_test(run)[node]] == [1, 2]


def test_long_lists_of_findings_are_cut() -> None:
    many = tuple(f"t.py::test_{i}" for i in range(MAX_NAMED + 3))
    run = dataclasses.replace(
        retried_run(),
        results=tuple(attempt(n, attempt=2) for n in many),
        earlier_attempts=tuple(attempt(n, Outcome.FAILED) for n in many),
        flaky=many,
        quarantined_failures=(),
        new_flaky=(),
    )
    text = format_summary(run, estimates={}, color=False)
    assert f"= {MAX_NAMED + 3} flaky tests =" in text
    assert f"t.py::test_{MAX_NAMED - 1}: 2 attempts" in text
    assert f"t.py::test_{MAX_NAMED}:" not in text
    assert "... and 3 more" in text


def test_findings_cannot_drive_the_terminal_and_are_colored_like_the_verdict() -> None:
    evil = "t.py::test_x[\x1b]0;pwned\x07]"
    run = dataclasses.replace(
        retried_run(),
        results=(attempt(evil, attempt=2, worker="w\x1b[2J", machine="m\r"),),
        earlier_attempts=(attempt(evil, Outcome.FAILED),),
        flaky=(evil,),
        quarantined_failures=(evil,),
        new_flaky=(evil,),
        retries=Retries(1, 1, 1, denied=(evil,)),
        suspects=(MachineSuspect(evil, "host\x1bc", 1, 2),),
        change=ChangeRef("repo\x1b[31m", "sha\x07", branch="br\x1b]2;x\x07"),
    )
    colored = format_summary(run, estimates={}, color=True)
    plain = ANSI.sub("", colored)
    assert "\x1b" not in plain and "\x07" not in plain and "\r" not in plain
    assert plain == format_summary(run, estimates={}, color=False)
    assert "\x1b[33m\x1b[1m" + "=" in colored  # section rules: yellow, as a flaky verdict
    assert "\x1b[33mretry budget of 1 ran out" in colored
