"""The JSON report: stable keys, counts, and text that any JSON reader accepts."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from report_fixtures import (
    BROKEN,
    DENIED,
    FLAKY,
    FLAKY_ERROR,
    HOSTILE,
    NEW,
    QUARANTINED,
    pytest_like_run,
    retried_run,
)

from farm.core.domain import CodeInfo, Outcome, RunSummary, ShardTimeline, TestResult, Verdict
from farm.report.json_report import FORMAT_VERSION, report_dict, write_json_report


def result(node_id: str, outcome: Outcome = Outcome.PASSED, **fields: object) -> TestResult:
    values: dict[str, object] = {
        "run_id": "r1",
        "shard_id": 3,
        "lease": 1,
        "node_id": node_id,
        "outcome": outcome,
        "duration_s": 0.25,
        "worker": "host-a/1",
    }
    values.update(fields)
    return TestResult(**values)  # type: ignore[arg-type]


def summary(*results: TestResult, missing: tuple[str, ...] = (), **fields: object) -> RunSummary:
    values: dict[str, object] = {
        "run_id": "r1",
        "verdict": Verdict.FAILED,
        "collected": len(results) + len(missing),
        "results": results,
        "missing": missing,
        "makespan_s": 24.1,
        "estimated_makespan_s": 22.8,
        "workers": 16,
    }
    values.update(fields)
    return RunSummary(**values)  # type: ignore[arg-type]


def test_report_has_every_documented_key(tmp_path: Path) -> None:
    # A run without retries: every key of format 2 keeps its value.
    run = summary(
        result("t.py::a", attempt=2, module_setup_s=1.5, longrepr="boom", output="out"),
        result("t.py::b", Outcome.FAILED),
        missing=("t.py::c",),
        message="",
        started_at=1_700_000_000.0,
        finished_at=1_700_000_024.1,
    )
    path = tmp_path / "report.json"
    write_json_report(path, run)
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data == {
        "format_version": FORMAT_VERSION,
        "run_id": "r1",
        "verdict": "failed",
        "exit_code": 1,
        "message": "",
        "collected": 3,
        "counts": {
            "passed": 1,
            "failed": 1,
            "skipped": 0,
            "xfailed": 0,
            "xpassed": 0,
            "error": 0,
            "timeout": 0,
            "crashed": 0,
            "missing": 1,
        },
        "makespan_s": 24.1,
        "estimated_makespan_s": 22.8,
        "workers": 16,
        "started_at": 1_700_000_000.0,
        "finished_at": 1_700_000_024.1,
        "tests": [
            {
                "node_id": "t.py::a",
                "outcome": "passed",
                "duration_s": 0.25,
                "module_setup_s": 1.5,
                "worker": "host-a/1",
                "shard": 3,
                "attempt": 2,
                "started_at": None,
                "finished_at": None,
                "longrepr": "boom",
                "output": "out",
                "attempts": [
                    {
                        "attempt": 2,
                        "outcome": "passed",
                        "duration_s": 0.25,
                        "worker": "host-a/1",
                        "machine": "",
                        "started_at": None,
                        "finished_at": None,
                        "longrepr": "boom",
                        "output": "out",
                        "modules_before": None,
                        "modules_after": [],
                    }
                ],
                "flaky": False,
            },
            {
                "node_id": "t.py::b",
                "outcome": "failed",
                "duration_s": 0.25,
                "module_setup_s": 0.0,
                "worker": "host-a/1",
                "shard": 3,
                "attempt": 1,
                "started_at": None,
                "finished_at": None,
                "longrepr": "",
                "output": "",
                "attempts": [
                    {
                        "attempt": 1,
                        "outcome": "failed",
                        "duration_s": 0.25,
                        "worker": "host-a/1",
                        "machine": "",
                        "started_at": None,
                        "finished_at": None,
                        "longrepr": "",
                        "output": "",
                        "modules_before": None,
                        "modules_after": [],
                    }
                ],
                "flaky": False,
            },
        ],
        "missing": ["t.py::c"],
        "shards": [],
        "snapshot": None,
        "flaky": [],
        "quarantined_failures": [],
        "new_flaky": [],
        "retries": {"allowed": 0, "budget": 0, "spent": 0, "denied": [], "exhausted": False},
        "first_failure_s": None,
        "suspects": [],
        "change": None,
        "order_dependent": [],
        "coverage": None,
        "seeds": {},
    }


def test_exit_code_follows_the_verdict() -> None:
    assert report_dict(summary(verdict=Verdict.FLAKY))["exit_code"] == 0
    assert report_dict(summary(verdict=Verdict.ERROR))["exit_code"] == 3
    assert report_dict(summary(verdict=Verdict.NO_TESTS))["exit_code"] == 5


def test_unknown_times_are_null() -> None:
    data = report_dict(summary(result("t.py::a", duration_s=float("inf")), makespan_s=float("nan")))
    assert data["started_at"] is None and data["finished_at"] is None
    assert data["makespan_s"] is None
    assert data["tests"][0]["duration_s"] is None


def test_hostile_text_is_written_as_valid_utf8_json(tmp_path: Path) -> None:
    hostile = 'esc\x1b[2J nul\x00 surrogate\udc80 中文 \U0001f600 quote" backslash\\'
    path = tmp_path / "report.json"
    write_json_report(path, summary(result(f"t.py::x[{hostile}]", output=hostile)))
    raw = path.read_bytes()
    data = json.loads(raw.decode("utf-8"))  # strict UTF-8: no lone surrogate survived
    test = data["tests"][0]
    # Everything but the lone surrogate comes back exactly as the test wrote it.
    assert test["output"] == hostile.replace("\udc80", "\\udc80")
    assert test["node_id"] == f"t.py::x[{test['output']}]"


def test_write_replaces_the_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "report.json"
    path.write_text("old")
    write_json_report(path, summary())
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]
    assert json.loads(path.read_text())["tests"] == []


def test_each_test_carries_its_times_for_timelines() -> None:
    timed = result("t.py::a", started_at=1_700_000_001.5, finished_at=1_700_000_002.0)
    test = report_dict(summary(timed))["tests"][0]
    assert (test["started_at"], test["finished_at"]) == (1_700_000_001.5, 1_700_000_002.0)


def test_shards_say_which_machine_ran_them_and_the_snapshot_its_cost() -> None:
    run = summary(
        result("t.py::a"),
        shards=(
            ShardTimeline(0, 1, "h1:41", "h1", 1_700_000_001.0, 1_700_000_002.5),
            ShardTimeline(1, 4, "", "", 0.0, 0.0),  # never started
        ),
        code=CodeInfo("ab" * 32, 2048, 0, 0.12, 0.0),
    )
    data = report_dict(run)
    assert data["shards"] == [
        {"shard": 0, "tests": 1, "worker": "h1:41", "machine": "h1",
         "started_at": 1_700_000_001.0, "finished_at": 1_700_000_002.5},
        {"shard": 1, "tests": 4, "worker": "", "machine": "", "started_at": None,
         "finished_at": None},
    ]  # fmt: skip
    assert data["snapshot"] == {
        "digest": "ab" * 32, "size_bytes": 2048, "uploaded_bytes": 0, "pack_s": 0.12,
        "upload_s": 0.0,
    }  # fmt: skip


# --- format 3: attempts, flaky tests, retries, suspects, the change ------------

V3_KEYS = ("flaky", "quarantined_failures", "new_flaky", "retries", "first_failure_s",
           "suspects", "change")  # fmt: skip


def written(tmp_path: Path, run: RunSummary) -> dict[str, Any]:
    path = tmp_path / "report.json"
    write_json_report(path, run)
    data: dict[str, Any] = json.loads(path.read_bytes().decode("utf-8"))
    assert data == report_dict(run)  # the file, written as it is made, says the same
    return data


def test_format_version_is_3() -> None:
    assert FORMAT_VERSION == 3


ATTEMPT_KEYS = ("attempt", "outcome", "duration_s", "worker", "machine", "started_at",
                "finished_at", "longrepr", "output", "modules_before", "modules_after")  # fmt: skip
# Where none was recorded (a passing first attempt), the modules around it are unknown.
NO_ORDER: dict[str, object] = {"modules_before": None, "modules_after": []}


def test_without_retries_each_test_has_one_attempt_itself(tmp_path: Path) -> None:
    data = written(tmp_path, pytest_like_run())
    for test in data["tests"]:
        (only,) = test["attempts"]
        assert only == {key: NO_ORDER.get(key, test.get(key, "host-a")) for key in ATTEMPT_KEYS}
        assert test["flaky"] is False
    assert data["retries"]["exhausted"] is False and data["change"] is None


def test_each_test_lists_every_attempt_in_order(tmp_path: Path) -> None:
    tests = {test["node_id"]: test for test in written(tmp_path, retried_run())["tests"]}
    broken = tests[BROKEN]
    assert [tuple(a) for a in broken["attempts"]] == [ATTEMPT_KEYS] * 3
    assert [(a["attempt"], a["outcome"], a["worker"], a["machine"], a["longrepr"], a["output"])
            for a in broken["attempts"]] == [
        (1, "failed", "b:7", "host-b", "E   first", "out 1"),
        (2, "timeout", "a:11", "host-c", "timed out", ""),
        (3, "failed", "a:11", "host-a", "E   third", "out 3"),
    ]  # fmt: skip
    assert broken["outcome"] == "failed" and broken["attempt"] == 3 and not broken["flaky"]
    flaky = tests[FLAKY]
    assert flaky["flaky"] is True and tests[FLAKY_ERROR]["flaky"] is True
    assert [(a["outcome"], a["machine"]) for a in flaky["attempts"]] == [
        ("failed", "host-a"),
        ("passed", "host-b"),
    ]
    assert flaky["attempts"][0]["output"] == HOSTILE  # JSON holds any text as it is
    assert flaky["attempts"][1]["duration_s"] == flaky["duration_s"] == 0.75
    assert flaky["attempts"][0]["started_at"] == 1_700_000_001.0
    new = tests[NEW]
    assert [a["outcome"] for a in new["attempts"]] == ["passed", "failed", "passed"]
    assert new["flaky"] is False  # new and flaky, listed as such at the top level
    assert [len(t["attempts"]) for t in tests.values() if t["node_id"] in DENIED] == [1] * 7


def test_top_level_says_what_the_run_found(tmp_path: Path) -> None:
    data = written(tmp_path, retried_run())
    assert {key: data[key] for key in V3_KEYS} == {
        "flaky": [FLAKY, FLAKY_ERROR],
        "quarantined_failures": [QUARANTINED],
        "new_flaky": [NEW],
        "retries": {
            "allowed": 2,
            "budget": 5,
            "spent": 5,
            "denied": list(DENIED),
            "exhausted": True,
        },
        "first_failure_s": 3.5,
        "suspects": [{"node_id": FLAKY, "machine": "host-a", "failures": 1, "passes_elsewhere": 1}],
        "change": {
            "repository": "github.com/acme/shop",
            "commit_sha": "0123456789abcdef0123456789abcdef01234567",
            "branch": "main",
            "pull_request": "42",
            "author": "ada",
        },
    }
    start = list(data).index("flaky")  # added at the end of version 2's keys
    assert list(data)[start : start + len(V3_KEYS)] == list(V3_KEYS)


def test_file_is_indented_with_one_test_a_line(tmp_path: Path) -> None:
    path = tmp_path / "report.json"
    run = retried_run()
    write_json_report(path, run)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[:2] == ["{", '  "format_version": 3,']
    assert lines[-1] == "}"
    tests = [line for line in lines if line.startswith('    {"node_id": ')]
    assert len(tests) == len(run.results)
    assert json.loads(tests[0].rstrip(",")) == report_dict(run)["tests"][0]
    write_json_report(path, dataclasses.replace(run, results=(), earlier_attempts=()))
    assert '  "tests": [],' in path.read_text(encoding="utf-8").splitlines()


def test_hostile_text_in_attempts_and_findings_stays_valid_json(tmp_path: Path) -> None:
    nasty = HOSTILE + ' surrogate\udc80 quote" backslash\\ \u2028'
    run = dataclasses.replace(
        retried_run(),
        results=(result(f"t.py::x[{nasty}]", attempt=2),),
        earlier_attempts=(result(f"t.py::x[{nasty}]", Outcome.FAILED, output=nasty),),
        flaky=(f"t.py::x[{nasty}]",),
    )
    data = written(tmp_path, run)
    safe = nasty.replace("\udc80", "\\udc80")
    assert data["tests"][0]["attempts"][0]["output"] == safe
    assert data["flaky"] == [f"t.py::x[{safe}]"]
