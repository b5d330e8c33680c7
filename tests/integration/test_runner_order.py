"""What a shard's results say of the order its process ran modules in, on real pytest
processes: only where it can matter, and a fresh process after a crash starts anew."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
from helpers import ResultsSink

from farm.core.domain import Outcome, TestResult
from farm.core.shard_task import ShardTask
from farm.scheduler.collect import collect
from farm.worker.runner import ShardRunner

pytestmark = pytest.mark.integration


def run_shard(folder: Path, node_ids: Sequence[str], attempt: int = 1) -> dict[str, TestResult]:
    collection = collect([], [], cwd=folder)
    task = ShardTask("run1", 0, 1, collection.rootdir, tuple(node_ids), (), collection.inifile)
    sink = ResultsSink()
    ShardRunner(dataclasses.replace(task, attempt=attempt), sink, worker="w:1").run()
    return sink.results


@pytest.fixture
def suite(tmp_path: Path) -> Path:
    (tmp_path / "test_a.py").write_text("def test_a(): pass\n")
    (tmp_path / "test_b.py").write_text(
        "import os\n\ndef test_fails(): assert False\n\n"
        "def test_crashes(): os._exit(9)\n\ndef test_passes(): pass\n"
    )
    (tmp_path / "test_c.py").write_text("def test_c(): assert False\n")
    (tmp_path / "test_d.py").write_text("def test_d(): pass\n")
    return tmp_path


def test_a_failure_names_the_modules_before_and_after_it(suite: Path) -> None:
    order = ["test_a.py::test_a", "test_b.py::test_fails", "test_b.py::test_passes",
             "test_c.py::test_c", "test_d.py::test_d"]  # fmt: skip
    results = run_shard(suite, order)
    failed = results["test_b.py::test_fails"]
    assert (failed.outcome, failed.modules_before) == (Outcome.FAILED, ("test_a.py",))
    assert failed.modules_after == ("test_c.py", "test_d.py")
    assert results["test_c.py::test_c"].modules_before == ("test_a.py", "test_b.py")
    # A passing first attempt, the common case, sends nothing more.
    assert results["test_b.py::test_passes"].modules_before is None
    assert results["test_d.py::test_d"].modules_before is None


def test_every_result_of_a_retry_names_them(suite: Path) -> None:
    results = run_shard(suite, ["test_d.py::test_d", "test_a.py::test_a"], attempt=2)
    assert results["test_d.py::test_d"].modules_before == ()
    assert results["test_d.py::test_d"].modules_after == ("test_a.py",)
    assert results["test_a.py::test_a"].modules_before == ("test_d.py",)


def test_a_crash_names_them_and_the_fresh_process_starts_anew(suite: Path) -> None:
    started = time.time()
    order = ["test_a.py::test_a", "test_b.py::test_crashes", "test_c.py::test_c"]
    results = run_shard(suite, order)
    crashed = results["test_b.py::test_crashes"]
    assert crashed.outcome is Outcome.CRASHED and crashed.finished_at >= started
    assert (crashed.modules_before, crashed.modules_after) == (("test_a.py",), ("test_c.py",))
    # test_c.py ran in the process that replaced the crashed one: nothing before it.
    assert results["test_c.py::test_c"].modules_before == ()
