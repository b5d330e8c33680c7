"""GitHub Actions workflow commands for a run's failures (farm.report.workflow_commands)."""

from __future__ import annotations

import dataclasses

from report_fixtures import BROKEN, QUARANTINED, attempt, pytest_like_run, retried_run

from farm.core.domain import Outcome
from farm.report.workflow_commands import (
    command,
    escape_data,
    escape_property,
    failure_commands,
    failure_message,
    resume_commands,
    stop_commands,
)


def test_escaping_follows_githubs_rules() -> None:
    assert escape_data("100% done\r\nnext: a,b") == "100%25 done%0D%0Anext: a,b"
    assert escape_property("t.py::test[a,b]\n") == "t.py%3A%3Atest[a%2Cb]%0A"
    line = command("error", "two\nlines", [("file", "a,b.py"), ("title", "x::y")])
    assert line == "::error file=a%2Cb.py,title=x%3A%3Ay::two%0Alines"
    assert command("notice", "plain") == "::notice::plain"


def test_a_message_cannot_start_a_command_of_its_own() -> None:
    printed = "boom\n::add-mask::x\r::set-env name=A::1"
    hostile = attempt("t.py::test_x", Outcome.FAILED, longrepr=printed)
    line = command("error", failure_message(hostile), [("title", hostile.node_id)])
    # One line: GitHub reads a command only at the start of a line.
    assert line == "::error title=t.py%3A%3Atest_x::boom%0A::add-mask::x%0A::set-env name=A::1"


def test_one_error_per_failure_with_its_place() -> None:
    lines = failure_commands(pytest_like_run())
    assert lines == [
        "::error file=tests/test_a.py,line=3,title=tests/test_a.py%3A%3Atest_bad::assert 1 == 2",
        "::error file=tests/test_b.py,title=tests/test_b.py%3A%3ATestC%3A%3Atest_err[x]"
        "::fixture 'db' not found",
        "::error file=tests/test_c.py,title=tests/test_c.py%3A%3Atest_slow::timed out after 60s",
        "::error file=tests/test_c.py,title=tests/test_c.py%3A%3Atest_lost"
        "::lost: no result came back for this test",
    ]


def test_paths_are_from_the_top_of_the_repository() -> None:
    lines = failure_commands(pytest_like_run(), path_prefix="python")
    assert lines[0].startswith("::error file=python/tests/test_a.py,line=3,")


def test_quarantined_failures_are_not_annotated() -> None:
    lines = failure_commands(retried_run())
    assert not any(QUARANTINED.replace("::", "%3A%3A") in line for line in lines)
    assert any(
        BROKEN.replace("::", "%3A%3A") in line and line.endswith("::third") for line in lines
    )


def test_the_number_of_errors_is_capped_and_the_rest_counted() -> None:
    failing = tuple(
        attempt(f"tests/test_{i}.py::test_x", Outcome.FAILED, longrepr=f"E   no {i}")
        for i in range(7)
    )
    run = dataclasses.replace(pytest_like_run(), results=failing, missing=("t.py::lost",))
    lines = failure_commands(run, limit=5)
    assert len(lines) == 6 and all(line.startswith("::error ") for line in lines[:5])
    assert lines[-1] == (
        "::notice title=farm::5 failing tests are annotated; 3 more failed: "
        "see the log and the summary"
    )


def test_what_an_annotation_says() -> None:
    long = (
        "    def test():\n>       assert f(1) == 3\nE       assert 2 == 3\n"
        "E        +  where 2 = f(1)\n"
    )
    said = failure_message(attempt("t.py::test", Outcome.FAILED, longrepr=long))
    assert said == "assert 2 == 3\n +  where 2 = f(1)"
    crashed = attempt("t.py::test", Outcome.CRASHED, longrepr="\nworker lost\n\nsignal 9\n")
    assert failure_message(crashed) == "worker lost\nsignal 9"
    assert failure_message(attempt("t.py::test", Outcome.TIMEOUT)) == "timeout"
    huge = attempt("t.py::test", Outcome.FAILED, longrepr="E   " + "x" * 10_000)
    assert len(failure_message(huge)) == 4003


def test_commands_stop_and_resume_with_a_token() -> None:
    assert stop_commands("abc123") == "::stop-commands::abc123"
    assert resume_commands("abc123") == "::abc123::"
