"""pytest's end-of-run sections, laid out from what the test processes sent.

The expected texts are pytest's own for the same reports (pytest 9's terminal
reporter, 80 columns): the entries of ERRORS and FAILURES, the warnings summary,
the slowest durations, the short test summary, the last line, the ``-v`` lines.
"""

from __future__ import annotations

import dataclasses
import io

import pytest
from report_fixtures import ROOT, attempt, sections_run

from farm.core.domain import CollectWarning, Outcome, RunSummary
from farm.core.messages import decode_event, encode_event
from farm.core.pytest_report import Place, PytestReport, ResultDetail
from farm.core.wire_fields import MessageError
from farm.report.progress import Progress
from farm.report.summary import format_summary
from farm.report.test_lines import verbose_lines
from farm.report.text import Where


def text(run: RunSummary, **kwargs: object) -> str:
    return format_summary(run, estimates={}, color=False, **kwargs)  # type: ignore[arg-type]


def section(output: str, title: str) -> list[str]:
    """The lines of the section ``title``, up to the next rule of ``=``."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if f" {title} " in line and line[0] in "=!")
    end = next(
        (i for i in range(start + 1, len(lines)) if lines[i].startswith("=")), len(lines) - 1
    )
    return lines[start + 1 : end]


def titles(output: str) -> list[str]:
    return [line.strip("= ") for line in output.splitlines() if line.startswith("==")]


# --- ERRORS, FAILURES, PASSES ---------------------------------------------------


def test_errors_then_failures_in_pytests_shape() -> None:
    out = text(sections_run())
    assert section(out, "ERRORS") == [
        "_________________________ ERROR at setup of test_error _________________________",
        "",
        "    @pytest.fixture",
        "    def broken():",
        ">       raise RuntimeError('boom')",
        "E       RuntimeError: boom",
        "",
        "tests/conftest.py:10: RuntimeError",
        "______________________ ERROR at teardown of TestK.test_td ______________________",
        "",
        ">       raise ValueError('teardown boom')",
        "E       ValueError: teardown boom",
        "--------------------------- Captured stdout teardown ---------------------------",
        "tearing down",
    ]
    assert section(out, "FAILURES")[:12] == [
        "__________________________________ test_fail ___________________________________",
        "",
        "    def test_fail():",
        ">       assert 1 == 2",
        "E       assert 1 == 2",
        "",
        "tests/test_r.py:14: AssertionError",
        "----------------------------- Captured stdout call -----------------------------",
        "in call",
        "--------------------------- Captured stdout teardown ---------------------------",
        "bye",
        "__________________________________ test_long ___________________________________",
    ]
    assert "on worker" not in out  # farm's line of where it ran is not pytest's


def test_tb_line_prints_each_failure_and_its_crash_line() -> None:
    out = text(sections_run(tbstyle="line"))
    failures = section(out, "FAILURES")
    assert failures[:7] == [
        "",
        "    def test_fail():",
        ">       assert 1 == 2",
        "E       assert 1 == 2",
        "",
        "tests/test_r.py:14: AssertionError",
        "----------------------------- Captured stdout call -----------------------------",
    ]
    assert failures[8] == f"{ROOT}/tests/test_r.py:14: assert 1 == 2"
    assert "ERROR at setup of test_error" in section(out, "ERRORS")[0]


def test_tb_no_prints_no_report_sections() -> None:
    out = text(sections_run(tbstyle="no", reportchars="wPpsxXEf"))
    assert titles(out) == ["warnings summary", "slowest 10 tests", "short test summary info"]


def test_passes_and_xpasses_only_under_their_characters() -> None:
    out = text(sections_run(reportchars="wPX"))
    assert section(out, "PASSES") == [
        "_________________________________ test_prints __________________________________",
        "----------------------------- Captured stdout call -----------------------------",
        "hello",
    ]
    assert section(out, "XPASSES") == []  # a rule: an xpass, with no output
    assert "PASSES" not in text(sections_run(reportchars="wfE"))


def test_xfail_tracebacks_only_under_xfail_tb() -> None:
    report = PytestReport("xfailed", "call", "XFAIL", "test_x", message="known", text="E  no\n")
    run = dataclasses.replace(
        sections_run(xfail_tb=True),
        results=(attempt("t.py::test_x", Outcome.XFAILED, detail=ResultDetail((report,))),),
    )
    assert section(text(run), "XFAILURES") == [rule_("test_x"), "E  no"]
    assert "XFAILURES" not in text(dataclasses.replace(run, options=sections_run().options))


def rule_(title: str) -> str:
    room = 80 - len(title) - 2
    return f"{'_' * (room // 2)} {title} {'_' * (room - room // 2)}"


def test_a_result_without_detail_keeps_farms_entry() -> None:
    run = dataclasses.replace(
        sections_run(),
        results=(attempt("t.py::test_hang", Outcome.TIMEOUT, longrepr="timed out after 5s"),),
    )
    assert section(text(run), "FAILURES") == [
        rule_("t.py::test_hang"),
        "timeout on worker a:11 (shard 1, attempt 1) after 0.50s",
        "timed out after 5s",
    ]
    assert section(text(run), "short test summary info") == [
        "TIMEOUT t.py::test_hang - timed out after 5s"
    ]


# --- warnings summary -----------------------------------------------------------


def test_warnings_summary_groups_by_message_collection_first() -> None:
    assert section(text(sections_run()), "warnings summary") == [
        "tests/test_r.py:64",
        "  /src/shop/tests/test_r.py:64: UnknownMark",
        "",
        "tests/test_r.py::test_warn",
        "  /src/shop/tests/test_r.py:22: UserWarning: careful",
        "    warnings.warn('careful')",
        "",
        "-- Docs: https://docs.pytest.org/en/stable/how-to/capture-warnings.html",
    ]


def test_ten_places_of_one_warning_are_counted_by_file() -> None:
    warned = tuple(
        attempt(
            f"tests/{'ab'[i % 2]}.py::t{i}", detail=ResultDetail(warnings=(Place("", None, "W"),))
        )
        for i in range(10)
    )
    run = dataclasses.replace(sections_run(), results=warned, collection_warnings=())
    assert section(text(run), "warnings summary")[:3] == [
        "tests/a.py: 5 warnings",
        "tests/b.py: 5 warnings",
        "  W",
    ]


def test_no_warnings_summary_when_disabled_or_empty() -> None:
    assert "warnings summary" not in text(sections_run(reportchars="fE"))
    bare = dataclasses.replace(sections_run(), results=(), collection_warnings=())
    assert "warnings summary" not in text(bare)


# --- durations ------------------------------------------------------------------


def test_pytests_durations_replace_farms_slowest_tests() -> None:
    out = text(sections_run(durations=5))
    assert section(out, "slowest 5 durations") == [
        "1.50s setup    tests/test_r.py::test_error",
        "0.25s call     tests/test_r.py::test_fail",
        "0.01s call     tests/test_r.py::test_warn",
        "",
        "(2 durations < 0.005s hidden.  Use -vv to show these durations.)",
    ]
    assert "slowest 5 tests" not in out and "slowest" in text(sections_run())


def test_durations_all_and_minimum() -> None:
    every = section(text(sections_run(durations=0, verbose=2)), "slowest durations")
    assert len(every) == 6 and every[-1] == "0.00s teardown tests/test_r.py::test_error"
    hidden = section(text(sections_run(durations=2, durations_min=1.0)), "slowest 2 durations")
    assert hidden == [
        "1.50s setup    tests/test_r.py::test_error",
        "",
        "(1 durations < 1s hidden.)",
    ]


def test_no_farm_table_under_quiet() -> None:
    assert "slowest" not in text(sections_run(verbose=-1))


# --- short test summary ---------------------------------------------------------


SHORT_A = [
    "PASSED tests/test_r.py::test_pass",
    "PASSED tests/test_r.py::TestK::test_td",
    "PASSED tests/test_r.py::test_warn",
    "PASSED tests/test_r.py::test_prints",
    "SKIPPED [1] tests/test_skipped_module.py:3: could not import 'x'",
    "SKIPPED [2] tests/test_r.py:31: nah",
    "SKIPPED [1] tests/test_r.py: marked",
    "XFAIL tests/test_r.py::test_xfail - known",
    "XFAIL at setup of tests/test_r.py::test_xfail_setup - reason: later",
    "XPASS tests/test_r.py::test_xpass - maybe",
    "ERROR tests/test_r.py::test_error - RuntimeError: boom",
    "ERROR tests/test_r.py::TestK::test_td - ValueError: teardown boom",
    "FAILED tests/test_r.py::test_fail - assert 1 == 2",
    "FAILED tests/test_long.py::test_long - AssertionError: aaaaaaaaaaaaaaaaaaaaaa...",
]


def test_short_summary_in_the_order_of_the_characters() -> None:
    out = text(sections_run(reportchars="wPpsxXEf"))
    assert section(out, "short test summary info") == SHORT_A
    fe = section(text(sections_run(reportchars="wEf")), "short test summary info")
    assert fe == SHORT_A[10:]


def test_short_summary_unfolded_skips() -> None:
    out = text(sections_run(reportchars="s", foldskipped=False))
    assert section(out, "short test summary info") == [
        "SKIPPED tests/test_skipped_module.py - could not import 'x'",
        "SKIPPED tests/test_r.py::test_skip[1] - Skipped: nah",
        "SKIPPED tests/test_r.py::test_skip[2] - Skipped: nah",
        "SKIPPED tests/test_r.py::test_marked - marked",
    ]


@pytest.mark.parametrize(
    ("options", "ci", "whole"),
    [
        ({}, True, True),
        ({"verbose": 2}, False, True),
        ({"verbose": 2, "force_short_summary": True}, False, False),
        ({}, False, False),
    ],
)
def test_whole_messages_on_ci_and_under_vv(
    options: dict[str, object], ci: bool, whole: bool
) -> None:
    out = text(sections_run(reportchars="f", **options), ci=ci)
    long = section(out, "short test summary info")[1]
    if whole:
        assert long == "FAILED tests/test_long.py::test_long - AssertionError: " + "a" * 100
    else:
        assert long == SHORT_A[-1]


def test_short_summary_fits_a_narrow_terminal() -> None:
    out = text(sections_run(reportchars="f"), width=50)
    assert section(out, "short test summary info") == [
        "FAILED tests/test_r.py::test_fail - assert 1 == 2",
        "FAILED tests/test_long.py::test_long - Assertio...",
    ]


def test_node_ids_and_skips_relative_to_where_pytest_ran() -> None:
    run = dataclasses.replace(sections_run(reportchars="sf"), invocation_dir=f"{ROOT}/tests")
    lines = section(text(run), "short test summary info")
    assert lines[0] == "SKIPPED [1] test_skipped_module.py:3: could not import 'x'"
    assert "FAILED test_r.py::test_fail - assert 1 == 2" in lines


# --- the last line --------------------------------------------------------------


def test_last_line_has_pytests_rule_but_not_under_quiet() -> None:
    counts = "2 failed, 4 passed, 4 skipped, 2 xfailed, 1 xpassed, 2 warnings, 2 errors in 2.50s"
    assert text(sections_run()).splitlines()[-1].startswith(f"= {counts} (plan estimate")
    quiet = text(sections_run(verbose=-1)).splitlines()[-1]
    assert quiet == f"{counts} (plan estimate 2.00s, 2 workers), verdict FAILED"
    assert text(sections_run(verbose=-2)).splitlines()[-1] == "farm: verdict FAILED"


def test_no_summary_drops_pytests_own_sections() -> None:
    out = text(sections_run(no_summary=True, durations=1))
    assert titles(out) == ["slowest 1 durations"]


# --- -v lines -------------------------------------------------------------------


def test_verbose_lines_use_pytests_words_and_reasons() -> None:
    run = sections_run()
    where = Where(ROOT, ROOT)
    by_id = {r.node_id: r for r in run.results}
    assert verbose_lines(by_id["tests/test_r.py::TestK::test_td"], 7, 80, 1, where) == [
        "tests/test_r.py::TestK::test_td PASSED                                   [  7%]",
        "tests/test_r.py::TestK::test_td ERROR                                    [  7%]",
    ]
    assert verbose_lines(by_id["tests/test_r.py::test_xfail_setup"], 100, 80, 1, where) == [
        "tests/test_r.py::test_xfail_setup XFAIL (later)                          [100%]"
    ]
    assert verbose_lines(by_id["tests/test_skipped_module.py"], 50, 80, 1, where) == []
    farm_made = attempt("t.py::test_hang", Outcome.TIMEOUT)
    assert (
        verbose_lines(farm_made, 1, 40, 1, Where())[0] == "t.py::test_hang TIMEOUT          [  1%]"
    )


def test_long_reasons_are_cut_unless_vv() -> None:
    skip = PytestReport("skipped", "call", "SKIPPED", message="Skipped: " + "x" * 100)
    result = attempt("t.py::test_s", Outcome.SKIPPED, detail=ResultDetail((skip,)))
    (line,) = verbose_lines(result, 10, 80, 1, Where())
    assert line.endswith("...) [ 10%]") and len(line) == 79
    (whole,) = verbose_lines(result, 10, 80, 2, Where())
    assert "x" * 100 + ")" in whole


def test_progress_prints_verbose_lines_instead_of_its_own() -> None:
    stream = io.StringIO()
    progress = Progress(
        stream, total=2, estimated_total_s=1.0, workers=1, is_tty=False, verbosity=1
    )
    progress.render(now=0.0)
    progress.add(attempt("t.py::a"), 0.5)
    progress.render(now=10.0)
    progress.add(attempt("t.py::b", Outcome.FAILED), 0.5)
    progress.close(now=11.0)
    assert stream.getvalue().splitlines() == [
        "t.py::a PASSED" + " " * 59 + "[ 50%]",
        "t.py::b FAILED" + " " * 59 + "[100%]",
        "",
    ]


@pytest.mark.parametrize(
    ("verbosity", "tty", "shown"), [(-1, False, 0), (-1, True, 1), (-2, True, 0)]
)
def test_quiet_progress(verbosity: int, tty: bool, shown: int) -> None:
    stream = io.StringIO()
    progress = Progress(stream, 1, 1.0, 1, is_tty=tty, verbosity=verbosity)
    progress.render(now=0.0)
    progress.add(attempt("t.py::a"), 0.5)
    progress.close(now=1.0)
    assert stream.getvalue().count("passed 1") == shown


# --- the wire -------------------------------------------------------------------


def test_a_results_detail_survives_the_wire() -> None:
    for result in sections_run().results:
        assert decode_event(encode_event(result)) == result
    old = attempt("t.py::a")
    assert "detail" not in encode_event(old)  # nothing to show: nothing sent
    assert decode_event(encode_event(old)) == old  # as an older worker sends it


@pytest.mark.parametrize(
    "bad",
    [
        '"x"',
        '{"reports": [{"category": "failed"}]}',
        '{"reports": [{"category": "failed", "when": "call", "word": "F", "message": 3}]}',
        '{"warnings": [["p", "12", "w"]]}',
        '{"durations": [["call", "NaN"]]}',
        '{"reports": [{"category": "f", "when": "c", "word": "F", "sections": [["a"]]}]}',
    ],
)
def test_a_malformed_detail_is_refused(bad: str) -> None:
    raw = encode_event(attempt("t.py::a")).removesuffix("}") + f',"detail":{bad}}}'
    with pytest.raises(MessageError, match="detail"):
        decode_event(raw)


def test_collection_warnings_without_location_show_the_message_alone() -> None:
    run = dataclasses.replace(
        sections_run(), results=(), collection_warnings=(CollectWarning("", "config warning\n"),)
    )
    assert section(text(run), "warnings summary")[:2] == ["config warning", ""]
