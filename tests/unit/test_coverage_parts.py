"""Coverage through farm, the pure parts: path mapping, the guarded merge, fencing of a
shard's coverage by its lease, the verdict's and the summary's coverage parts."""

from __future__ import annotations

import base64
import json
import os
import zlib
from collections.abc import Sequence
from pathlib import Path

import pytest
from coverage import CoverageData

from farm.core.coverage_result import CoverageResult
from farm.core.domain import Outcome, RunSummary, TestResult, Verdict
from farm.core.messages import (
    Event,
    ShardCoverage,
    ShardEnd,
    ShardStart,
    decode_event,
    encode_event,
)
from farm.core.pytest_options import PytestOptions
from farm.core.shard_task import ShardTask
from farm.core.verdict import Decision
from farm.report.coverage_text import coverage_lines
from farm.report.json_report import write_json_report
from farm.run.coverage_combine import (
    CoverageCombiner,
    UnreadableCoverage,
    load_untrusted,
    path_mapper,
)
from farm.run.coverage_report import _reports, judged
from farm.scheduler.session import RunSession
from farm.scheduler.tracker import RunTracker
from farm.worker.coverage_capture import CaptureError, read_capture, write_capture

LIMIT = 1 << 20


def dumped(lines: dict[str, list[int]]) -> bytes:
    data = CoverageData(no_disk=True)
    data.add_lines(lines)
    return data.dumps()


def event(shard_id: int, lease: int, root: str, *blobs: bytes, missing: str = "") -> ShardCoverage:
    parts = tuple(base64.b64encode(b).decode() for b in blobs)
    return ShardCoverage("r", shard_id, lease, "w", root, parts, ("platform x",), missing)


def passed(node_id: str, shard_id: int, lease: int = 1) -> TestResult:
    return TestResult("r", shard_id, lease, node_id, Outcome.PASSED, 0.1)


# Paths under a worker's tree name the submitter's files.


def test_paths_under_the_workers_tree_move_to_the_submitters() -> None:
    mapped = path_mapper("/cache/trees/abc", "/home/me/project")
    assert mapped("/cache/trees/abc/pkg/calc.py") == "/home/me/project/pkg/calc.py"
    assert mapped("/cache/trees/abc") == "/home/me/project"


def test_paths_elsewhere_stay_as_they_are() -> None:
    mapped = path_mapper("/cache/trees/abc", "/home/me/project")
    assert mapped("/usr/lib/python3/site.py") == "/usr/lib/python3/site.py"
    assert mapped("/cache/trees/abcdef/x.py") == "/cache/trees/abcdef/x.py"  # not a prefix


def test_a_shared_disk_maps_nothing() -> None:
    mapped = path_mapper("/home/me/project/", "/home/me/project")
    assert mapped("/home/me/project/pkg/a.py") == "/home/me/project/pkg/a.py"


# Data from a test process is read without trusting it.


def test_dumped_data_reads_back() -> None:
    data = load_untrusted(dumped({"/t/a.py": [1, 2, 5]}), limit_bytes=LIMIT)
    assert data.measured_files() == {"/t/a.py"}
    assert sorted(data.lines("/t/a.py") or []) == [1, 2, 5]


def test_data_that_would_attach_a_file_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "planted.db"
    script = f"ATTACH DATABASE '{target}' AS x; CREATE TABLE x.t (a);"
    with pytest.raises(UnreadableCoverage, match="refused"):
        load_untrusted(b"z" + zlib.compress(script.encode()), limit_bytes=LIMIT)
    vacuum = f"CREATE TABLE t (a); VACUUM INTO '{target}';"
    with pytest.raises(UnreadableCoverage, match="refused"):
        load_untrusted(b"z" + zlib.compress(vacuum.encode()), limit_bytes=LIMIT)
    trigger = "CREATE TABLE t (a); CREATE TRIGGER g AFTER INSERT ON t BEGIN DELETE FROM t; END;"
    with pytest.raises(UnreadableCoverage, match="refused"):
        load_untrusted(b"z" + zlib.compress(trigger.encode()), limit_bytes=LIMIT)
    assert not target.exists()


def test_data_that_is_not_a_dump_or_expands_too_far_is_refused() -> None:
    with pytest.raises(UnreadableCoverage, match="not coverage data"):
        load_untrusted(b"SQLite format 3\x00", limit_bytes=LIMIT)
    with pytest.raises(UnreadableCoverage, match="corrupt"):
        load_untrusted(b"z" + b"\x00" * 10, limit_bytes=LIMIT)
    bomb = b"z" + zlib.compress(b"-- " + b"x" * (200 * 1024) + b"\n")
    with pytest.raises(UnreadableCoverage, match="expands past"):
        load_untrusted(bomb, limit_bytes=1024)


# Every shard's data, merged on disk.


def test_shards_merge_mapped_and_as_a_union(tmp_path: Path) -> None:
    local = str(tmp_path / "project")
    combiner = CoverageCombiner(tmp_path / "work", local_root=local)
    try:
        combiner.add(event(0, 1, "/w1/tree", dumped({"/w1/tree/pkg/a.py": [1, 2]})))
        combiner.add(event(1, 1, "/w2/tree", dumped({"/w2/tree/pkg/a.py": [2, 3]})))
        # A retried test's data once more: line data is a set per file, so it adds nothing.
        combiner.add(event(2, 1, "/w1/tree", dumped({"/w1/tree/pkg/a.py": [1, 2]})))
        assert combiner.lost == ""
        assert combiner.platforms == ["platform x"]
        target = os.path.realpath(local) + "/pkg/a.py"
        assert combiner.data.measured_files() == {target}
        assert sorted(combiner.data.lines(target) or []) == [1, 2, 3]
    finally:
        combiner.close()
    assert not (tmp_path / "work").exists()


def test_unreadable_data_is_noted_not_merged(tmp_path: Path) -> None:
    combiner = CoverageCombiner(tmp_path / "work", local_root=str(tmp_path))
    try:
        combiner.add(ShardCoverage("r", 4, 1, "w", "/t", ("not base64!",), (), ""))
        assert combiner.lost.startswith("shard 4:")
        assert combiner.data.measured_files() == set()
    finally:
        combiner.close()


def test_data_over_the_limit_is_noted_not_merged(tmp_path: Path) -> None:
    combiner = CoverageCombiner(tmp_path / "work", local_root=str(tmp_path), limit_bytes=64)
    try:
        combiner.add(event(3, 1, "/t", dumped({f"/t/m{i}.py": [1] for i in range(40)})))
        assert "over the limit" in combiner.lost
    finally:
        combiner.close()


# A shard's coverage counts only under its current lease, like its results.


def test_coverage_of_the_current_lease_is_accepted_and_pays_the_debt() -> None:
    tracker = RunTracker("r", [(0, ("a", "b"))], coverage=True)
    tracker.feed([ShardStart("r", 0, 1, "w", 1.0), passed("a", 0), passed("b", 0)])
    assert tracker.complete and tracker.coverage.pending
    accepted = tracker.feed([event(0, 1, "/t")])
    assert [e.shard_id for e in accepted.coverage] == [0]
    assert not tracker.coverage.pending and tracker.coverage.lost == ""


def test_a_reissued_shards_late_coverage_is_dropped_and_its_tests_coverage_lost() -> None:
    tracker = RunTracker("r", [(0, ("a", "b"))], coverage=True)
    tracker.feed([ShardStart("r", 0, 1, "w", 1.0), passed("a", 0)])
    lease, owed = tracker.reissue(0)  # its worker's lease lapsed
    assert (lease, owed) == (2, ("b",))
    assert "worker was lost" in tracker.coverage.lost
    late = tracker.feed([event(0, 1, "/t"), passed("b", 0, lease=1)])
    assert late.coverage == [] and late.results == []
    tracker.feed([ShardStart("r", 0, 2, "w2", 2.0), passed("b", 0, lease=2)])
    assert tracker.coverage.pending  # the new lease owes its own data
    assert [e.lease for e in tracker.feed([event(0, 2, "/t")]).coverage] == [2]
    assert not tracker.coverage.pending


def test_a_shard_that_ends_without_its_coverage_loses_it() -> None:
    tracker = RunTracker("r", [(0, ("a",))], coverage=True)
    tracker.feed([passed("a", 0), ShardEnd("r", 0, 1, "w", 2.0, 0)])
    assert not tracker.coverage.pending
    assert tracker.coverage.lost == "shard 0: it ended without its coverage data"


def test_missing_process_data_the_worker_reports_is_lost() -> None:
    tracker = RunTracker("r", [(0, ("a",))], coverage=True)
    tracker.feed([passed("a", 0), event(0, 1, "/t", missing="a test timed out")])
    assert tracker.coverage.lost == "shard 0: a test timed out"


def test_a_run_without_coverage_owes_none() -> None:
    tracker = RunTracker("r", [(0, ("a",))])
    tracker.feed([passed("a", 0)])
    assert not tracker.coverage.pending


class _Reader:
    def __init__(self, batches: list[list[Event]]) -> None:
        self.batches = batches

    def read(self, *, block_ms: int, count: int = 5000) -> list[Event]:
        return self.batches.pop(0) if self.batches else []

    def trim(self) -> None:
        pass


class _Quiet:
    def record_results(self, results: Sequence[TestResult]) -> None:
        pass

    def shard_started(self, *args: object, **kwargs: object) -> None:
        pass

    def shard_finished(self, *args: object, **kwargs: object) -> None:
        pass

    def shard_reissued(self, *args: object, **kwargs: object) -> None:
        pass

    def send(self, tasks: Sequence[ShardTask]) -> None:
        pass

    def add(self, result: TestResult, estimate_s: float) -> None:
        pass

    def render(self, now: float) -> None:
        pass


def test_the_session_waits_for_coverage_after_the_last_result() -> None:
    reader = _Reader(
        [
            [ShardStart("r", 0, 1, "w", 1.0), passed("a", 0)],
            [],
            [event(0, 1, "/t", dumped({"/t/a.py": [1]}))],
        ]
    )
    got: list[ShardCoverage] = []
    quiet = _Quiet()
    session = RunSession(
        tasks=[ShardTask("r", 0, 1, "/", ("a",), coverage=True)], reader=reader,
        store=quiet, sender=quiet, progress=quiet, estimates_s={}, sleep=lambda s: None,
        on_coverage=got.append,
    )  # fmt: skip
    final = session.run()
    assert list(final) == ["a"]
    assert [e.shard_id for e in got] == [0]
    assert reader.batches == []


# The verdict and the summary.


def _result(**fields: object) -> CoverageResult:
    base: dict[str, object] = {
        "platforms": ("platform linux, python 3.11.7-final-0",),
        "report": "Name  Stmts\nTOTAL  11\nCoverage XML written to file coverage.xml\n",
        "total": 54.545,
        "total_text": "55",
    }
    return CoverageResult(**{**base, **fields})  # type: ignore[arg-type]


def test_a_total_under_the_requirement_fails_a_passing_run() -> None:
    coverage = _result(fail_under=90, below=True)
    decision = judged(Decision(Verdict.PASSED), coverage)
    assert decision.verdict is Verdict.FAILED
    assert decision.message == "Coverage failure: total of 55 is less than fail-under=90"
    assert judged(Decision(Verdict.FLAKY), coverage).verdict is Verdict.FAILED
    failed = Decision(Verdict.FAILED, message="2 tests failed")
    assert judged(failed, coverage) == failed
    assert judged(Decision(Verdict.PASSED), _result(fail_under=50)).verdict is Verdict.PASSED


def test_incomplete_coverage_fails_only_a_run_that_requires_a_total() -> None:
    lost = CoverageResult(incomplete="shard 3: a test timed out", fail_under=80)
    decision = judged(Decision(Verdict.PASSED), lost)
    assert decision.verdict is Verdict.FAILED
    assert "cannot be shown met: shard 3: a test timed out" in decision.message
    unasked = CoverageResult(incomplete="shard 3: a test timed out")
    assert judged(Decision(Verdict.PASSED), unasked).verdict is Verdict.PASSED


def test_the_summary_part_reads_as_pytest_covs() -> None:
    lines = coverage_lines(_result(fail_under=90, below=True), 80)
    assert lines == [
        "",
        "ERROR: Coverage failure: total of 55 is less than fail-under=90",
        "================================ tests coverage ================================",
        "_______________ coverage: platform linux, python 3.11.7-final-0 ________________",
        "",
        "Name  Stmts",
        "TOTAL  11",
        "Coverage XML written to file coverage.xml",
        "FAIL Required test coverage of 90% not reached. Total coverage: 54.55%",
    ]
    met = coverage_lines(_result(fail_under=50.0), 80)
    assert met[-1] == "Required test coverage of 50.0% reached. Total coverage: 54.55%"


def test_the_summary_names_each_platform_when_they_differ() -> None:
    lines = coverage_lines(_result(platforms=("platform b", "platform a")), 40)
    assert lines[1:7] == [
        "_______________ coverage _______________",
        "",
        f"{' ' * 15}platform a{' ' * 15}",  # pytest-cov pads with spaces both sides
        "",
        f"{' ' * 15}platform b{' ' * 15}",
        "",
    ]


def test_incomplete_coverage_shows_why_and_no_figure() -> None:
    lines = coverage_lines(CoverageResult(incomplete="shard 1: it crashed"), 80)
    assert lines[1] == "coverage incomplete: shard 1: it crashed; no total is shown"
    assert not any("%" in line for line in lines)
    assert coverage_lines(None, 80) == []
    assert coverage_lines(CoverageResult(skipped=True), 80) == []


def test_reports_as_pytest_cov_keeps_them() -> None:
    assert _reports(()) == {"term": None}
    assert _reports(("",)) == {}
    assert _reports(("term-missing:skip-covered", "xml:out/c.xml", "html")) == {
        "term-missing": "skip-covered",
        "xml": "out/c.xml",
        "html": None,
    }


# What travels: options and events.


def test_coverage_options_survive_the_collection_cache() -> None:
    options = PytestOptions(
        cov_sources=("pkg",), cov_reports=("xml:c.xml",), cov_fail_under=90, cov_branch=True
    )
    again = PytestOptions.from_facts(options.to_facts())
    assert again == options and again.coverage
    assert isinstance(again.cov_fail_under, int)  # printed as "90%", as pytest-cov does
    assert PytestOptions.from_facts({}).cov_branch is None
    assert not PytestOptions().coverage and PytestOptions(cov_all=True).coverage


def test_coverage_event_and_task_flag_round_trip() -> None:
    sent = event(2, 3, "/tree", b"zdata", missing="a test timed out")
    assert decode_event(encode_event(sent)) == sent
    task = ShardTask("r", 0, 1, "/", ("a",), coverage=True)
    assert ShardTask.from_json(task.to_json()).coverage
    older = {k: v for k, v in task.to_json().items() if k != "coverage"}
    assert not ShardTask.from_json(older).coverage


# The capture file the runner reads from an untrusted test process.


def test_capture_round_trips_and_refuses_what_it_must(tmp_path: Path) -> None:
    path = tmp_path / "capture"
    write_capture(str(path), {"platform": "p", "error": ""}, b"zdata")
    assert read_capture(str(path), LIMIT) == ({"platform": "p", "error": ""}, b"zdata")
    with pytest.raises(CaptureError, match="over the limit"):
        read_capture(str(path), 2)
    link = tmp_path / "link"
    link.symlink_to(path)
    with pytest.raises(CaptureError, match="cannot open"):
        read_capture(str(link), LIMIT)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(CaptureError, match="not a regular file"):
        read_capture(str(fifo), LIMIT)
    with pytest.raises(CaptureError, match="wrote no coverage data"):
        read_capture(str(tmp_path / "absent"), LIMIT)
    (tmp_path / "headless").write_bytes(b"zdata")
    with pytest.raises(CaptureError, match="no header"):
        read_capture(str(tmp_path / "headless"), LIMIT)


def test_the_json_report_gives_the_total_and_the_reports_written(tmp_path: Path) -> None:
    coverage = _result(fail_under=90, below=True, files=("coverage.xml",), data_file="/p/.coverage")
    run = RunSummary("r1", Verdict.FAILED, 0, (), (), 1.0, 1.0, 2, coverage=coverage)
    write_json_report(tmp_path / "r.json", run)
    data = json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))
    assert data["coverage"] == {
        "total": 54.545,
        "fail_under": 90,
        "reports": ["coverage.xml"],
        "data_file": "/p/.coverage",
        "incomplete": "",
    }
