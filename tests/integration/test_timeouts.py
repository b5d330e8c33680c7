"""Time and memory limits on real pytest processes, enforced by the shard runner."""

from __future__ import annotations

import os
import re
import textwrap
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
from helpers import ResultsSink

from farm.core.domain import Outcome, TestResult
from farm.core.shard_task import ShardTask
from farm.scheduler.collect import collect
from farm.worker.deadline import MARKER, STOP_GRACE_S, Stopwatch
from farm.worker.runner import ShardRunner
from farm.worker.spawn import TestProcess

pytestmark = pytest.mark.integration


def shard(
    folder: Path,
    body: str,
    *,
    timeout_s: float = 60.0,
    memory_limit_bytes: int = 0,
    pytest_args: tuple[str, ...] = (),
) -> tuple[dict[str, TestResult], str]:
    """Run every test of ``body`` (the module ``test_t.py``) as one shard."""
    (folder / "test_t.py").write_text(textwrap.dedent(body))
    collection = collect([], [], cwd=folder)
    task = ShardTask(
        "run1",
        0,
        1,
        collection.rootdir,
        collection.node_ids,
        pytest_args,
        collection.inifile,
        4096,
        test_timeout_s=timeout_s,
        memory_limit_bytes=memory_limit_bytes,
    )
    sink = ResultsSink()
    message = ShardRunner(task, sink, worker="w", env={"PATH": "/usr/bin:/bin"}).run()
    return sink.results, message


def processes_in(folder: Path) -> list[int]:
    """Live processes working in ``folder``: the test processes and what they started."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.readlink(entry / "cwd") == str(folder):
                    found.append(int(entry.name))
            except OSError:
                continue  # gone, or a zombie
    return found


def running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie is dead, waiting for its parent to notice


@pytest.fixture
def folder(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path
    assert processes_in(tmp_path) == []


def line_of(folder: Path, text: str) -> int:
    lines = (folder / "test_t.py").read_text().splitlines()
    return next(i for i, line in enumerate(lines, 1) if text in line)


def test_a_test_that_sleeps_forever_times_out_with_stack_and_output(folder: Path) -> None:
    results, message = shard(
        folder,
        """
        import subprocess, sys, time
        def test_sleeps():
            child = subprocess.Popen(["sleep", "300"])
            print(f"child {child.pid}, now sleeping")
            sys.stderr.write("on stderr\\n")
            time.sleep(3600)
        def test_after(): pass
        """,
        timeout_s=1.5,
    )
    result = results["test_t.py::test_sleeps"]
    assert result.outcome is Outcome.TIMEOUT
    assert result.longrepr.startswith("timed out after 1.5s (limit 1.5s from the run)")
    assert f'test_t.py", line {line_of(folder, "time.sleep(3600)")} in test_sleeps' in (
        result.longrepr
    )
    assert "now sleeping" in result.output
    assert "on stderr" in result.output
    assert 1.5 <= result.duration_s < 3.0
    assert results["test_t.py::test_after"].outcome is Outcome.PASSED
    assert "test_sleeps timed out" in message
    # The process group went with it: the child the test started is gone too.
    child = re.search(r"child (\d+)", result.output)
    assert child is not None
    assert not running(int(child.group(1)))


def test_a_busy_loop_times_out(folder: Path) -> None:
    results, _ = shard(
        folder,
        """
        def test_spins():
            while True:
                pass
        def test_after(): pass
        """,
        timeout_s=1.0,
    )
    result = results["test_t.py::test_spins"]
    assert result.outcome is Outcome.TIMEOUT
    # The interpreter may be stopped on either line of the loop.
    lines = (line_of(folder, "while True"), line_of(folder, "pass"))
    assert any(f"line {n} in test_spins" in result.longrepr for n in lines)
    assert results["test_t.py::test_after"].outcome is Outcome.PASSED


def test_a_test_sleeping_in_c_is_stopped_with_its_stack(folder: Path) -> None:
    results, _ = shard(
        folder,
        """
        import ctypes
        def test_c_sleep():
            print("into C")
            ctypes.CDLL(None).sleep(100)
            print("back from C")
        """,
        timeout_s=1.0,
    )
    result = results["test_t.py::test_c_sleep"]
    assert result.outcome is Outcome.TIMEOUT
    assert f"line {line_of(folder, 'sleep(100)')} in test_c_sleep" in result.longrepr
    # The signal cut the sleep short; the output handler then held the test still.
    assert "into C" in result.output
    assert "back from C" not in result.output


def test_a_test_that_never_returns_from_c_is_killed_after_the_grace(folder: Path) -> None:
    # sum over a range runs in C and never looks for Python signal handlers, so
    # the output handler never runs: the stack comes from faulthandler alone and
    # the output from pytest's capture file, read by the runner.
    started = time.monotonic()
    results, _ = shard(
        folder,
        """
        def test_sums():
            print("summing")
            sum(range(10**18))
        def test_after(): pass
        """,
        timeout_s=1.0,
    )
    result = results["test_t.py::test_sums"]
    assert result.outcome is Outcome.TIMEOUT
    assert f"line {line_of(folder, 'sum(range')} in test_sums" in result.longrepr
    assert "summing" in result.output
    assert results["test_t.py::test_after"].outcome is Outcome.PASSED
    assert time.monotonic() - started < 10


def test_a_timeout_marker_overrides_the_runs_limit(folder: Path) -> None:
    results, _ = shard(
        folder,
        """
        import time
        import pytest
        @pytest.mark.timeout(1)
        def test_marked(): time.sleep(30)
        @pytest.mark.timeout(timeout=1)
        def test_marked_by_keyword(): time.sleep(30)
        def test_unmarked(): time.sleep(1.5)
        """,
        timeout_s=60.0,
        # The marker is known without pytest-timeout, and farm's runner enforces it.
        pytest_args=("--strict-markers", "-p", "no:timeout"),
    )
    for name in ("test_marked", "test_marked_by_keyword"):
        result = results[f"test_t.py::{name}"]
        assert result.outcome is Outcome.TIMEOUT
        assert "(limit 1s from its timeout marker)" in result.longrepr
        assert 1.0 <= result.duration_s < 2.5
    assert results["test_t.py::test_unmarked"].outcome is Outcome.PASSED


def test_an_exit_in_a_test_is_a_crash_with_its_output(folder: Path) -> None:
    results, _ = shard(
        folder,
        """
        import os
        def test_exit():
            print("last words")
            os._exit(3)
        def test_after(): pass
        """,
    )
    result = results["test_t.py::test_exit"]
    assert result.outcome is Outcome.CRASHED
    assert "exited with code 3" in result.longrepr
    assert "last words" in result.output
    assert results["test_t.py::test_after"].outcome is Outcome.PASSED


def test_a_crash_keeps_its_output_when_the_worker_is_slow_to_open_the_captures(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The process waits until the runner holds its capture files: a worker too busy
    to read the process's first line at once still gets the output of a test that
    ends its process straight away."""
    opened = TestProcess._open_captures

    def busy_worker(test: TestProcess, fds: Mapping[str, int]) -> None:
        time.sleep(0.5)
        opened(test, fds)

    monkeypatch.setattr(TestProcess, "_open_captures", busy_worker)
    results, _ = shard(
        folder,
        """
        import os
        def test_exit():
            print("last words")
            os._exit(3)
        """,
    )
    result = results["test_t.py::test_exit"]
    assert result.outcome is Outcome.CRASHED
    assert "last words" in result.output


def test_a_segfault_is_a_crash(folder: Path) -> None:
    results, _ = shard(
        folder,
        """
        import ctypes
        def test_segv(): ctypes.string_at(0)
        def test_after(): pass
        """,
    )
    assert results["test_t.py::test_segv"].outcome is Outcome.CRASHED
    assert "signal 11" in results["test_t.py::test_segv"].longrepr
    assert results["test_t.py::test_after"].outcome is Outcome.PASSED


def test_unbounded_allocation_under_a_memory_limit_fails_and_the_shard_goes_on(
    folder: Path,
) -> None:
    results, _ = shard(
        folder,
        """
        import resource
        def test_limit():
            print(resource.getrlimit(resource.RLIMIT_AS))
        def test_hog():
            hoard = []
            while True:
                hoard.append(bytearray(16 * 2**20))
        def test_after(): pass
        """,
        memory_limit_bytes=512 * 2**20,
        timeout_s=30.0,
    )
    assert f"({512 * 2**20}, {512 * 2**20})" in results["test_t.py::test_limit"].output
    assert results["test_t.py::test_hog"].outcome in (Outcome.FAILED, Outcome.CRASHED)
    assert results["test_t.py::test_after"].outcome is Outcome.PASSED


def test_the_stopwatch_takes_the_markers_limit_over_the_runs() -> None:
    watch = Stopwatch(default_s=10.0, marker_s={1: 2.0}, since=100.0)
    assert watch.deadline(0) == 110.0
    assert watch.deadline(1) == 102.0
    assert watch.deadline(None) is None
    assert Stopwatch(default_s=0.0, since=100.0).deadline(0) is None  # no run limit
    overrun = watch.stop("t.py::test_b", 1, now=102.5, log_offset=0)
    assert (overrun.ran_s, overrun.limit_s, overrun.source) == (2.5, 2.0, MARKER)
    assert watch.wake_at(1) == 102.5 + STOP_GRACE_S
    assert not watch.done(102.6)
    watch.answer({"index": 1, "output": "so far"})
    assert watch.done(102.6)
    assert overrun.output_text(None, "", 100) == "so far"
    assert overrun.longrepr().startswith("timed out after 2.5s (limit 2s from its timeout marker)")
    # faulthandler lists the newest thread first; the test's own comes first here.
    overrun.stack = (
        'Thread 0x2 (most recent call first):\n  File "/usr/lib/threading.py", line 9 in run\n\n'
        'Current thread 0x1 (most recent call first):\n  File "/r/t.py", line 3 in test_b\n'
    )
    assert overrun.longrepr().split("\n\n")[1].startswith("Current thread 0x1")
