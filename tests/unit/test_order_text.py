"""What the reports say of tests that may depend on order: the terminal summary's
section, and the JSON report's ``order_dependent`` and each attempt's modules."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from report_fixtures import attempt, pytest_like_run

from farm.core.domain import AttemptOrder, OrderSign, OrderSuspect, Outcome, RunSummary
from farm.report.json_report import report_dict, write_json_report
from farm.report.order_text import MAX_SUSPECTS, TITLE, attempt_line, modules_text, order_lines
from farm.report.summary import format_summary

NODE = "tests/test_b.py::test_needs_a"
PREVIOUS = AttemptOrder("9f8e7d6c5b4a3210", 1, Outcome.PASSED, "w:7", "host-b",
                        ("tests/test_a.py",), ("tests/test_c.py",), planned=True)  # fmt: skip


def order_run() -> RunSummary:
    """The pytest-like run, with test_b failing twice here after passing before."""
    failed = attempt(NODE, Outcome.FAILED, modules_before=(), longrepr="E   assert None")
    retry = dataclasses.replace(failed, attempt=2, worker="b:3", machine="host-c")
    suspect = OrderSuspect(
        NODE, OrderSign.REGRESSED, (PREVIOUS, AttemptOrder.of(failed), AttemptOrder.of(retry))
    )
    base = pytest_like_run()
    return dataclasses.replace(
        base,
        results=(*base.results, retry),
        earlier_attempts=(failed,),
        order_suspects=(suspect,),
    )


def test_the_section_names_every_attempt_and_the_modules_before_it() -> None:
    assert order_lines(order_run()) == [
        f"{NODE}: it failed here and passed in run 9f8e7d6c5b4a of this change",
        "  run 9f8e7d6c5b4a attempt 1 passed on w:7 (host-b) after tests/test_a.py; "
        "imported, run later: tests/test_c.py (as its shard was planned)",
        "  attempt 1 failed on a:11 (host-a) first in its process",
        "  attempt 2 failed on b:3 (host-c) first in its process",
        f"  to find the module: farm run --isolate {NODE}",
    ]


def test_it_follows_the_short_summary() -> None:
    text = format_summary(order_run(), estimates={}, color=False)
    short = text.index("short test summary info")
    section = text.index(TITLE)
    assert short < section < text.rindex("verdict FAILED")
    assert f"to find the module: farm run --isolate {NODE}" in text


def test_a_run_without_suspects_says_nothing_of_order() -> None:
    assert TITLE not in format_summary(pytest_like_run(), estimates={}, color=False)
    assert order_lines(pytest_like_run()) == []


def test_a_flaky_suspect_and_the_modules_of_an_attempt() -> None:
    flaky = OrderSuspect("t.py::x", OrderSign.FLAKY, ())
    run = dataclasses.replace(pytest_like_run(), order_suspects=(flaky,) * (MAX_SUSPECTS + 2))
    lines = order_lines(run)
    assert lines[0] == "t.py::x: its outcome changed with the modules that ran before it"
    assert lines[-1] == "... and 2 more (the JSON report has them all)"

    def of(before: tuple[str, ...] | None, after: tuple[str, ...] = ()) -> str:
        return modules_text(AttemptOrder("r", 1, Outcome.FAILED, "", "", before, after))

    assert of(None) == "(the modules of its process were not recorded)"
    assert of(()) == "first in its process"
    many = tuple(f"m{i}.py" for i in range(8))
    assert of(many) == "after 8 modules, the last 5: m3.py, m4.py, m5.py, m6.py, m7.py"
    assert of((), many) == (
        "first in its process; imported, run later: m0.py, m1.py, m2.py, m3.py, m4.py and 3 more"
    )
    unknown_place = AttemptOrder("r", 2, Outcome.PASSED, "", "", ())
    assert attempt_line(unknown_place, "r") == (
        "attempt 2 passed on an unknown worker first in its process"
    )


def test_the_json_report_has_the_suspects_and_each_attempt_s_modules(tmp_path: Path) -> None:
    data = report_dict(order_run())
    (suspect,) = data["order_dependent"]
    assert suspect["node_id"] == NODE and suspect["sign"] == "regressed"
    assert suspect["attempts"][0] == {
        "run_id": "9f8e7d6c5b4a3210", "attempt": 1, "outcome": "passed", "worker": "w:7",
        "machine": "host-b", "modules_before": ["tests/test_a.py"],
        "modules_after": ["tests/test_c.py"], "planned": True,
    }  # fmt: skip
    test = next(t for t in data["tests"] if t["node_id"] == NODE)
    assert [a["modules_before"] for a in test["attempts"]] == [[], []]
    ok = next(t for t in data["tests"] if t["node_id"].endswith("test_ok"))
    assert ok["attempts"][0]["modules_before"] is None
    assert ok["attempts"][0]["modules_after"] == []

    path = tmp_path / "r.json"
    write_json_report(path, order_run())
    assert json.loads(path.read_text())["order_dependent"] == data["order_dependent"]
    assert report_dict(pytest_like_run())["order_dependent"] == []
