"""Chaos: workers, machines, links and Redis lost in the middle of a run.

Each test starts real ``farm worker`` processes (plain subprocesses, or in network
namespace hosts), submits a suite of sleeping tests with short leases, breaks
something while a shard runs, and checks that the run still passes with exactly
one stored result per test, within a lease and a few seconds of its usual time.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from helpers import WorkerProcess, farm_env
from netns_hosts import Host, Network, namespaces_unavailable

from farm.run.embedded import find_redis_server

pytestmark = pytest.mark.integration

NO_NAMESPACES = namespaces_unavailable()
needs_namespaces = pytest.mark.skipif(NO_NAMESPACES is not None, reason=NO_NAMESPACES or "")

LEASE_S = 3.0
# Short leases so that recovery costs seconds, not the default half minute.
FAST = {
    "FARM_LEASE_S": str(LEASE_S),
    "FARM_HEARTBEAT_S": "0.5",
    "FARM_STALL_TIMEOUT_S": "30",
    "FARM_DEBUG": "1",  # a failing run shows its traceback
}
SLACK_S = 5.0  # start-up of fresh test processes, polling, a loaded 2-core machine
RUN_TIMEOUT_S = 50.0

Row = tuple[Any, ...]  # a stored attempt: node id, lease, worker, shard


def write_suite(root: Path, *, modules: int, tests: int, sleep_s: float) -> list[str]:
    """``modules`` files of ``tests`` tests sleeping ``sleep_s`` each; their node ids."""
    root.mkdir(parents=True)
    (root / "pytest.ini").write_text("[pytest]\naddopts = -p no:cacheprovider\n")
    ids = []
    for m in range(modules):
        body = "import time\n\n" + "".join(
            f"def test_{i}():\n    time.sleep({sleep_s})\n\n" for i in range(tests)
        )
        (root / f"test_m{m}.py").write_text(body)
        ids += [f"test_m{m}.py::test_{i}" for i in range(tests)]
    return ids


def descendants(pid: int) -> list[int]:
    """Every live descendant of ``pid``, from /proc, parents first."""
    found: list[int] = []
    todo = [pid]
    while todo:
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{todo.pop()}/task").iterdir():
                kids = [int(k) for k in (task / "children").read_text().split()]
                found += kids
                todo += kids
    return found


class Worker(WorkerProcess):
    """One ``farm worker -c 1``, killable with all it started, its test processes too."""

    def __init__(
        self, home: Path, name: str, env: Mapping[str, str], host: Host | None = None
    ) -> None:
        home.mkdir(parents=True)
        super().__init__(
            home / "worker.log", "-c", "1", "--name", name, "--cache", str(home / "cache"),
            cwd=home, env=env, host=host,
        )  # fmt: skip
        self.strays: list[int] = []  # what a killed slot left running, for cleanup

    def kill_slot(self) -> int:
        """SIGKILL the pool process (the one slot of ``-c 1``), as the OOM killer would."""
        main = self.process.pid  # a plain subprocess: the Celery main process itself
        # The pool is forked from it (same command line); test processes are exec'd.
        command = Path(f"/proc/{main}/cmdline").read_bytes()
        slots = []
        for task in Path(f"/proc/{main}/task").iterdir():
            for pid in (task / "children").read_text().split():
                with contextlib.suppress(OSError):
                    if Path(f"/proc/{pid}/cmdline").read_bytes() == command:
                        slots.append(int(pid))
        assert len(slots) == 1, f"expected one pool process under {main}, found {slots}"
        self.strays += descendants(slots[0])  # its orphaned test processes, for cleanup
        os.kill(slots[0], signal.SIGKILL)
        return slots[0]

    def kill(self) -> None:
        # Test processes lead sessions of their own: the group kill misses them.
        for pid in [*descendants(self.process.pid), *self.strays]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        super().kill()


class Submission:
    """``farm run`` in the background, its output in files, its report and database."""

    def __init__(self, suite: Path, tmp: Path, broker: str, env: Mapping[str, str], *args: str):
        self.state, self.report = tmp / "state", tmp / "report.json"
        self.out_path = tmp / "submitter.log"
        self.started_at = time.monotonic()
        with open(self.out_path, "wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "farm", "run", "--broker", broker, "--state-dir",
                 str(self.state), "--json", str(self.report), *args],
                cwd=suite, env=dict(env), stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip

    @property
    def output(self) -> str:
        return self.out_path.read_text(errors="replace")

    def rows(self, where: str = "") -> list[Row]:
        """Stored attempts as (node id, lease, worker, shard), ``where`` an SQL filter."""
        query = f"SELECT node_id, lease, worker, shard_id FROM attempts {where}"
        db = self.state / "farm.db"
        if not db.exists():
            return []
        try:
            with contextlib.closing(sqlite3.connect(db, timeout=5)) as connection:
                return [tuple(row) for row in connection.execute(query)]
        except sqlite3.OperationalError:
            return []  # not migrated yet

    def wait(self, timeout_s: float = RUN_TIMEOUT_S) -> tuple[dict[str, Any], float]:
        """The JSON report and the wall seconds of the run, once it exits."""
        try:
            self.process.wait(timeout=max(1.0, self.started_at + timeout_s - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"farm run did not end within {timeout_s:g}s:\n{self.output[-3000:]}")
        wall_s = time.monotonic() - self.started_at
        assert self.process.returncode == 0, self.output[-3000:]
        return json.loads(self.report.read_text()), wall_s

    def kill(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


def wait_for(what: str, check: Callable[[], object], timeout_s: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while not (found := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
    return found


def assert_each_test_once(run: Submission, report: dict[str, Any], ids: list[str]) -> list[Row]:
    """Verdict passed, the report lists each test once, the store holds one attempt each."""
    assert report["verdict"] == "passed", run.output[-3000:]
    listed = Counter(t["node_id"] for t in report["tests"])
    assert sorted(listed) == sorted(ids) and set(listed.values()) == {1}, listed
    assert {t["outcome"] for t in report["tests"]} == {"passed"}
    rows = run.rows(f"WHERE run_id = '{report['run_id']}'")
    stored = Counter(row[0] for row in rows)
    duplicates = {node: n for node, n in stored.items() if n > 1}
    assert not duplicates, f"stored more than once: {duplicates}"
    assert sorted(stored) == sorted(ids)
    return rows


@contextlib.contextmanager
def workers_killed_after(workers: list[Worker]) -> Iterator[list[Worker]]:
    try:
        # All ready before the run, so that each takes a shard of the first round.
        wait_for("workers ready", lambda: all(w.events("worker.ready") for w in workers))
        yield workers
    finally:
        for worker in workers:
            worker.kill()


def shard_of_worker(run: Submission, name: str, at_least: int) -> tuple[int, set[Row]]:
    """Once ``at_least`` results of a shard run by worker ``name`` are stored: that
    shard, and its rows stored so far."""

    def found() -> list[tuple[int, set[Row]]]:
        rows = [r for r in run.rows() if str(r[2]).startswith(name + ":")]
        counts = Counter(r[3] for r in rows)
        return [(s, {r for r in rows if r[3] == s}) for s, n in counts.items() if n >= at_least]

    shards: list[tuple[int, set[Row]]] = wait_for(f"{at_least} results from {name}", found)
    return shards[0]


def test_a_killed_slot_keeps_its_results_and_its_other_tests_run_elsewhere(
    tmp_path: Path, redis_url: str, key_prefix: str
) -> None:
    ids = write_suite(tmp_path / "suite", modules=4, tests=6, sleep_s=0.5)
    env = farm_env(FARM_KEY_PREFIX=key_prefix, FARM_QUEUE=key_prefix + "q", **FAST)
    worker_env = {**env, "FARM_BROKER_URL": redis_url}
    with workers_killed_after(
        [Worker(tmp_path / name, name, worker_env) for name in ("alpha", "beta")]
    ) as workers:
        # Two shards of 12 tests (6 s), one per worker.
        run = Submission(tmp_path / "suite", tmp_path, redis_url, env, "-n", "2",
                         "--strategy", "modules")  # fmt: skip
        try:
            shard, before = shard_of_worker(run, "alpha", at_least=4)
            slot = f"alpha:{workers[0].kill_slot()}"
            report, wall_s = run.wait()
        finally:
            run.kill()
    assert {r[2] for r in before} == {slot}
    rows = assert_each_test_once(run, report, ids)
    assert before <= set(rows)  # what the killed slot had sent is kept as it was
    by_slot = [r for r in rows if r[2] == slot]
    rest = [r for r in rows if r[3] == shard and r[2] != slot]
    assert rest and len(by_slot) + len(rest) == 12, rest  # the rest ran on another slot
    print(f"slot killed; run took {wall_s:.1f}s, makespan {report['makespan_s']:.1f}s")
    assert report["makespan_s"] < 6.0 + LEASE_S + SLACK_S


@needs_namespaces
def test_a_dead_host_loses_nothing(tmp_path: Path) -> None:
    ids = write_suite(tmp_path / "suite", modules=6, tests=5, sleep_s=0.6)
    env = farm_env(**FAST)
    with Network(3) as net, workers_killed_after(
        [Worker(tmp_path / h.name, h.name, {**env, "FARM_BROKER_URL": net.broker_url}, h)
         for h in net.hosts]
    ):  # fmt: skip
        # Six shards of 3 s for three one-slot hosts: two rounds, 6 s.
        run = Submission(tmp_path / "suite", tmp_path, net.broker_url, env, "-n", "6",
                         "--strategy", "modules")  # fmt: skip
        try:
            victim = net.hosts[0]
            shard, before = shard_of_worker(run, victim.name, at_least=2)
            assert victim.kill_all() > 0
            report, wall_s = run.wait()
        finally:
            run.kill()
    rows = assert_each_test_once(run, report, ids)
    assert before <= set(rows)
    # A result the victim sent between the look and the kill is kept as it was.
    on_victim = [r for r in rows if r[3] == shard and r[2].startswith(victim.name + ":")]
    rest = [r for r in rows if r[3] == shard and r not in on_victim]
    assert before <= set(on_victim) and all(r[1] == 1 for r in on_victim), on_victim
    assert rest, "the dead host's shard had nothing left to run"
    assert all(r[1] == 2 for r in rest), rest  # the rest ran under a second lease, elsewhere
    print(f"host killed; run took {wall_s:.1f}s, makespan {report['makespan_s']:.1f}s")
    # 18 s of tests on the two hosts left, plus a lease before the lost tests go out again.
    assert report["makespan_s"] < 18.0 / 2 + LEASE_S + SLACK_S


@needs_namespaces
def test_a_host_cut_off_past_its_lease_comes_back_fenced(tmp_path: Path) -> None:
    ids = write_suite(tmp_path / "suite", modules=8, tests=5, sleep_s=0.6)
    env = farm_env(**FAST)
    with Network(3) as net, workers_killed_after(
        [Worker(tmp_path / h.name, h.name, {**env, "FARM_BROKER_URL": net.broker_url}, h)
         for h in net.hosts]
    ) as workers:  # fmt: skip
        # Eight shards of 3 s for three one-slot hosts: the run outlasts the cut, so
        # the cut host's late results reach the scheduler while it still reads.
        run = Submission(tmp_path / "suite", tmp_path, net.broker_url, env, "-n", "8",
                         "--strategy", "modules")  # fmt: skip
        try:
            victim = net.hosts[0]
            shard, before = shard_of_worker(run, victim.name, at_least=1)
            victim.link_down()
            try:
                time.sleep(LEASE_S + 2.5)
            finally:
                victim.link_up()
            report, wall_s = run.wait()
        finally:
            run.kill()
        # The cut host ran its shard to the end during the cut and, once back, sent it.
        ended = wait_for(
            "the cut host to send its shard's end",
            lambda: [e for e in workers[0].events("shard.end") if e["shard"] == shard],
            timeout_s=10,
        )
    rows = assert_each_test_once(run, report, ids)
    assert before <= set(rows)
    rest = [r for r in rows if r[3] == shard and r not in before]
    assert rest, "the cut host's shard had nothing left to run"
    assert all(r[1] == 2 and not r[2].startswith(victim.name + ":") for r in rest), rest
    assert ended[0]["ts"] < report["finished_at"], "the late results came after the run"
    assert f"of shard {shard} under lease 1, superseded by lease 2" in run.output
    print(f"link cut; run took {wall_s:.1f}s, makespan {report['makespan_s']:.1f}s")
    assert report["makespan_s"] < 24.0 / 2 + LEASE_S + SLACK_S


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def start_redis(port: int, folder: Path) -> subprocess.Popen[bytes]:
    """An empty, non-persistent redis-server on 127.0.0.1:``port``, answering PING."""
    folder.mkdir(exist_ok=True)
    with open(folder / "redis.log", "ab") as log:
        server = subprocess.Popen(
            [find_redis_server(), "--bind", "127.0.0.1", "--port", str(port), "--save", "",
             "--appendonly", "no", "--dir", str(folder)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
        )  # fmt: skip
    deadline = time.monotonic() + 10
    while True:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return server
        assert server.poll() is None, (folder / "redis.log").read_text()
        assert time.monotonic() < deadline, "redis-server did not listen within 10s"
        time.sleep(0.02)


@pytest.mark.parametrize(
    "outage_s",
    [
        pytest.param(1.0),
        pytest.param(LEASE_S + 2),
    ],
    ids=["short", "past-the-lease"],
)
def test_redis_killed_and_restarted_empty_loses_nothing(tmp_path: Path, outage_s: float) -> None:
    ids = write_suite(tmp_path / "suite", modules=4, tests=6, sleep_s=0.5)
    port = free_port()
    broker = f"redis://127.0.0.1:{port}/0"
    servers = [start_redis(port, tmp_path / "redis")]
    env = farm_env(**FAST)
    try:
        with workers_killed_after(
            [Worker(tmp_path / n, n, {**env, "FARM_BROKER_URL": broker}) for n in ("a", "b")]
        ):
            # Four shards of 3 s for two one-slot workers: two rounds, 6 s.
            run = Submission(tmp_path / "suite", tmp_path, broker, env, "-n", "4",
                             "--strategy", "modules")  # fmt: skip
            try:
                wait_for("3 results stored", lambda: len(run.rows()) >= 3)
                os.killpg(servers[0].pid, signal.SIGKILL)
                servers[0].wait()
                time.sleep(outage_s)
                servers.append(start_redis(port, tmp_path / "redis"))
                report, wall_s = run.wait()
            finally:
                run.kill()
    finally:
        for server in servers:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.pid, signal.SIGKILL)
            server.wait()
    assert_each_test_once(run, report, ids)
    assert "Redis restarted" in run.output
    print(f"redis restarted; run took {wall_s:.1f}s, makespan {report['makespan_s']:.1f}s")
    assert report["makespan_s"] < 12.0 / 2 + outage_s + LEASE_S + SLACK_S
