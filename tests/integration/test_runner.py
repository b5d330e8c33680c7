"""The shard runner on real pytest processes: streaming, crashes, scrubbed environment."""

from __future__ import annotations

import json
import sys
import textwrap
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
from helpers import NO_IDLE_PLUGINS, NO_RANDOMLY

from farm.core.domain import Outcome, TestResult
from farm.core.messages import Event, decode_event
from farm.core.shard_task import ShardTask
from farm.scheduler.collect import collect
from farm.worker.runner import ShardRunner
from farm.worker.spawn import Launch, Spawner

pytestmark = pytest.mark.integration


class RecordingSink:
    def __init__(self) -> None:
        self.batches: list[tuple[float, list[Event]]] = []

    def send(self, payloads: Sequence[str | bytes]) -> None:
        events: list[Event] = [decode_event(p) for p in payloads]
        self.batches.append((time.monotonic(), events))

    def cancelled(self) -> bool:
        return False

    @property
    def results(self) -> dict[str, TestResult]:
        return {
            e.node_id: e for _, batch in self.batches for e in batch if isinstance(e, TestResult)
        }


def write(folder: Path, name: str, body: str) -> None:
    (folder / name).write_text(textwrap.dedent(body))


def run(
    folder: Path, node_ids: Sequence[str] | None = None, **env: str
) -> tuple[ShardRunner, RecordingSink, str]:
    collection = collect([], [], cwd=folder)
    ids = tuple(node_ids or collection.node_ids)
    task = ShardTask("run1", 0, 1, collection.rootdir, ids, (), collection.inifile, 4096)
    sink = RecordingSink()
    runner = ShardRunner(
        task,
        sink,
        worker="w:1",
        env={"PYTEST_ADDOPTS": f"{NO_RANDOMLY} {NO_IDLE_PLUGINS}", **env, "PATH": "/usr/bin:/bin"},
    )
    return runner, sink, runner.run()


def test_results_stream_as_each_test_finishes(tmp_path: Path) -> None:
    write(
        tmp_path,
        "test_s.py",
        """
        import time
        def test_fast(): pass
        def test_slow(): time.sleep(1.0)
        def test_fail(): assert 1 == 2
    """,
    )
    _, sink, message = run(tmp_path)
    assert message == ""
    assert {n: r.outcome for n, r in sink.results.items()} == {
        "test_s.py::test_fast": Outcome.PASSED,
        "test_s.py::test_slow": Outcome.PASSED,
        "test_s.py::test_fail": Outcome.FAILED,
    }
    sent_at = {
        e.node_id: t for t, batch in sink.batches for e in batch if isinstance(e, TestResult)
    }
    # test_fast was forwarded while test_slow slept: streamed, not sent at the end (a
    # loaded machine may delay the first send a little, never by the whole second).
    assert sent_at["test_s.py::test_slow"] - sent_at["test_s.py::test_fast"] >= 0.5
    assert "assert 1 == 2" in sink.results["test_s.py::test_fail"].longrepr


def test_shard_order_is_kept_and_other_tests_are_not_run(tmp_path: Path) -> None:
    write(tmp_path, "test_o.py", "def test_a(): pass\ndef test_b(): pass\ndef test_c(): pass\n")
    _, sink, _ = run(tmp_path, ["test_o.py::test_c", "test_o.py::test_a"])
    assert list(sink.results) == ["test_o.py::test_c", "test_o.py::test_a"]


def test_a_crash_is_pinned_on_its_test_and_the_shard_goes_on(tmp_path: Path) -> None:
    write(
        tmp_path,
        "test_c.py",
        """
        import os
        def test_before(): pass
        def test_exit():
            print("last words")
            os._exit(3)
        def test_after(): pass
    """,
    )
    _runner, sink, message = run(tmp_path)
    outcomes = {n: r.outcome for n, r in sink.results.items()}
    assert outcomes == {
        "test_c.py::test_before": Outcome.PASSED,
        "test_c.py::test_exit": Outcome.CRASHED,
        "test_c.py::test_after": Outcome.PASSED,
    }
    assert "exited with code 3" in sink.results["test_c.py::test_exit"].longrepr
    assert "test_exit" in message


def test_a_module_that_breaks_on_the_worker_gives_errors_not_passes(tmp_path: Path) -> None:
    write(tmp_path, "test_m.py", "def test_a(): pass\n")
    collection = collect([], [], cwd=tmp_path)
    write(tmp_path, "test_m.py", "import not_a_module_anywhere\ndef test_a(): pass\n")
    task = ShardTask("run1", 0, 1, collection.rootdir, collection.node_ids, (), "", 4096)
    sink = RecordingSink()
    message = ShardRunner(task, sink, worker="w").run()
    result = sink.results["test_m.py::test_a"]
    assert result.outcome is Outcome.ERROR
    assert "not_a_module_anywhere" in result.longrepr
    assert "not run" in message


def test_tests_do_not_see_farm_or_celery_settings(tmp_path: Path) -> None:
    write(
        tmp_path,
        "test_env.py",
        """
        import json, os
        def test_env(): print("ENV=" + json.dumps(dict(os.environ)))
    """,
    )
    _, sink, _ = run(
        tmp_path,
        FARM_BROKER_URL="redis://:secret@h/0",
        FARM_DATABASE_URL="postgresql://u:pw@db/x",
        CELERY_BROKER_URL="redis://:secret@h/1",
        KEEP_ME="1",
    )
    output = sink.results["test_env.py::test_env"].output
    seen = json.loads(output.split("ENV=", 1)[1].splitlines()[0])
    assert seen["KEEP_ME"] == "1"
    assert not [k for k in seen if k.startswith(("FARM_", "CELERY_"))]
    assert "secret" not in output


def test_huge_output_is_truncated_with_a_marker(tmp_path: Path) -> None:
    write(tmp_path, "test_big.py", 'def test_big():\n    print("x" * 100000)\n    assert 0\n')
    _, sink, _ = run(tmp_path)
    result = sink.results["test_big.py::test_big"]
    assert len(result.output.encode()) < 5000
    assert "[farm: truncated" in result.output


def test_a_segfault_is_a_crash(tmp_path: Path) -> None:
    write(
        tmp_path,
        "test_seg.py",
        """
        import ctypes
        def test_segv(): ctypes.string_at(0)
        def test_after(): pass
    """,
    )
    _, sink, _ = run(tmp_path)
    assert sink.results["test_seg.py::test_segv"].outcome is Outcome.CRASHED
    assert "signal 11" in sink.results["test_seg.py::test_segv"].longrepr
    assert sink.results["test_seg.py::test_after"].outcome is Outcome.PASSED


def test_tests_a_stopped_session_never_ran_are_errors_not_crashes(tmp_path: Path) -> None:
    write(tmp_path, "test_x.py", "def test_a(): assert 0\ndef test_b(): pass\n")
    collection = collect([], [], cwd=tmp_path)
    task = ShardTask("run1", 0, 1, collection.rootdir, collection.node_ids, ("-x",), "", 4096)
    sink = RecordingSink()
    ShardRunner(task, sink, worker="w").run()
    assert sink.results["test_x.py::test_a"].outcome is Outcome.FAILED
    assert sink.results["test_x.py::test_b"].outcome is Outcome.ERROR


def test_the_next_shard_of_a_run_starts_in_the_spare_process(tmp_path: Path) -> None:
    write(
        tmp_path,
        "test_pid.py",
        """
        import os
        def test_a(): print(f"PID={os.getpid()}")
        def test_b(): print(f"PID={os.getpid()}")
    """,
    )
    collection = collect([], [], cwd=tmp_path)
    spawner = Spawner(env={"PATH": "/usr/bin:/bin"})
    try:
        first = ShardTask("run1", 0, 1, collection.rootdir, ("test_pid.py::test_a",))
        ShardRunner(first, RecordingSink(), worker="w", spawner=spawner).run()
        assert spawner.spare is not None
        spare_pid = spawner.spare[1].process.pid
        second = ShardTask("run1", 1, 1, collection.rootdir, ("test_pid.py::test_b",))
        sink = RecordingSink()
        ShardRunner(second, sink, worker="w", spawner=spawner).run()
        assert f"PID={spare_pid}" in sink.results["test_pid.py::test_b"].output
        # A shard of another run never runs in a spare started for this one.
        assert spawner.spare is not None
        old_spare = spawner.spare[1].process
        other = ShardTask("run2", 0, 1, collection.rootdir, ("test_pid.py::test_a",))
        sink = RecordingSink()
        ShardRunner(other, sink, worker="w", spawner=spawner).run()
        assert old_spare.poll() is not None
        assert f"PID={old_spare.pid}" not in sink.results["test_pid.py::test_a"].output
    finally:
        spawner.close()
    assert spawner.spare is None


def test_a_spare_nobody_takes_exits_by_itself(tmp_path: Path) -> None:
    write(tmp_path, "test_idle.py", "def test_a(): pass\n")
    spawner = Spawner(env={"PATH": "/usr/bin:/bin"}, idle_s=0.5)
    command = [sys.executable, "-c", "import sys; sys.path.pop(0); import pytest; "
               "sys.exit(int(pytest.main()))", "-p", "farm.worker.plugin"]  # fmt: skip
    spawner.prepare("k", Launch(command, str(tmp_path)))
    assert spawner.spare is not None
    assert spawner.spare[1].process.wait(timeout=20) == 0
    spawner.close()


def test_a_process_that_will_not_exit_after_its_session_is_killed_later(tmp_path: Path) -> None:
    write(
        tmp_path,
        "test_thread.py",
        """
        import threading, time
        def test_leaves_a_thread():
            threading.Thread(target=time.sleep, args=(3600,)).start()
    """,
    )
    now = [0.0]
    spawner = Spawner(env={"PATH": "/usr/bin:/bin"}, exit_grace_s=30.0, clock=lambda: now[0])
    collection = collect([], [], cwd=tmp_path)
    task = ShardTask("run1", 0, 1, collection.rootdir, collection.node_ids)
    sink = RecordingSink()
    ShardRunner(task, sink, worker="w", spawner=spawner, more_work=lambda: False).run()
    assert sink.results["test_thread.py::test_leaves_a_thread"].outcome is Outcome.PASSED
    ((_, lingering),) = spawner.exiting
    assert lingering.process.poll() is None  # the shard ended; its process still hangs
    now[0] = 31.0
    spawner.reap()
    assert lingering.process.poll() is not None
    assert spawner.exiting == []


def test_a_module_deleted_since_planning_does_not_stop_the_others(tmp_path: Path) -> None:
    write(tmp_path, "test_kept.py", "def test_a(): pass\n")
    write(tmp_path, "test_gone.py", "def test_b(): pass\n")
    collection = collect([], [], cwd=tmp_path)
    (tmp_path / "test_gone.py").unlink()
    task = ShardTask("run1", 0, 1, collection.rootdir, collection.node_ids)
    sink = RecordingSink()
    ShardRunner(task, sink, worker="w").run()
    assert sink.results["test_kept.py::test_a"].outcome is Outcome.PASSED
    assert sink.results["test_gone.py::test_b"].outcome is Outcome.ERROR
