"""The JSON report: stable keys, counts, and text that any JSON reader accepts."""

from __future__ import annotations

import json
from pathlib import Path

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
            },
        ],
        "missing": ["t.py::c"],
        "shards": [],
        "snapshot": None,
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
