#!/usr/bin/env python3
"""What losing workers mid-run costs: ``python bench/chaos.py``.

Writes make_suite.py's default suite (2,000 sleeping tests, 40 modules), imports
its history.json into a fresh state folder, starts W separate ``farm worker -c 1``
processes (plain subprocesses, default 8) against one Redis (a redis-server of
its own on 127.0.0.1, or ``--broker URL``), then runs the suite twice:

* **no losses**: every worker lives; its makespan is the *expected* makespan;
* **2 killed**: one worker killed (SIGKILL to its process group and to the test
  processes it started, as when its machine dies) at 30% of the expected makespan
  and another at 60%, both counted from the first shard's start; each time the
  victim is a worker in the middle of a shard, so work is lost and must be
  handed out again once its lease (``--lease``) lapses.

Printed: each run's makespan (farm's own, first dispatch to last result) and wall
time, the ratio of the two makespans, and the lower bounds

    lower_bound = max((sum of durations + one module setup per module) / W, longest test)

and the same with the lost capacity (W workers until the first kill, W-1 until
the second, W-2 after). Each run must pass with every test reported once and
stored once (one attempt per test in the run's database), else exit 1.

Usage: chaos.py [--workers 8] [--tests 2000] [--scale 1.0] [--lease 10]
                [--heartbeat 2] [--broker URL] [--out DIR] [--json OUT]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _common import (
    RUN_TIMEOUT_S,
    cell,
    fail,
    import_history,
    load_average,
    lower_bound_s,
    make_suite,
    passed_report,
    print_table,
    script,
)

from farm.core.broker import redis_py_url
from farm.run.embedded import find_redis_server

SETUP_S = 0.2  # make_suite.py's default module fixture setup, before --scale
KILL_AT = (0.3, 0.6)  # of the expected makespan, from the first shard's start
READY_TIMEOUT_S = 60.0


def descendants(pid: int) -> list[int]:
    """Every live descendant of ``pid``, from /proc."""
    found: list[int] = []
    todo = [pid]
    while todo:
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{todo.pop()}/task").iterdir():
                kids = [int(k) for k in (task / "children").read_text().split()]
                found += kids
                todo += kids
    return found


@dataclass
class Worker:
    name: str
    log: Path
    process: subprocess.Popen[bytes]

    def events(self, name: str) -> list[dict[str, Any]]:
        found = []
        for line in self.log.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if isinstance(record, dict) and record.get("event") == name:
                    found.append(record)
        return found

    def busy(self) -> bool:
        return len(self.events("shard.start")) > len(self.events("shard.end"))

    def kill(self) -> None:
        # Test processes lead sessions of their own: a machine's death takes them too.
        strays = descendants(self.process.pid)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        for pid in strays:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.process.wait()


@dataclass
class Farm:
    """One Redis, W one-slot workers, and the environment every farm command gets."""

    broker: str
    env: dict[str, str]
    root: Path
    redis: subprocess.Popen[bytes] | None = None
    workers: list[Worker] = field(default_factory=list)

    def start_workers(self, count: int) -> None:
        for i in range(count):
            home = self.root / f"w{i}"
            home.mkdir(parents=True)
            with open(home / "worker.log", "wb") as log:
                process = subprocess.Popen(
                    [script("farm"), "worker", "-c", "1", "--name", f"w{i}",
                     "--cache", str(home / "cache"), "--test-user", "self"],
                    cwd=home, env={**self.env, "FARM_BROKER_URL": self.broker},
                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                    start_new_session=True,
                )  # fmt: skip
            self.workers.append(Worker(f"w{i}", home / "worker.log", process))
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not all(w.events("worker.ready") for w in self.workers):
            dead = [w.name for w in self.workers if w.process.poll() is not None]
            if dead or time.monotonic() > deadline:
                raise SystemExit(f"bench: error: workers not ready in time (exited: {dead})")
            time.sleep(0.1)

    def alive(self) -> list[Worker]:
        return [w for w in self.workers if w.process.poll() is None]

    def close(self) -> None:
        for worker in self.workers:
            worker.kill()
        if self.redis is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.redis.pid, signal.SIGKILL)
            self.redis.wait()
        else:  # a shared server: remove this benchmark's keys, and only those
            import redis

            client = redis.Redis.from_url(redis_py_url(self.broker))
            prefix = self.env["FARM_KEY_PREFIX"]
            for key in client.scan_iter(match=f"{prefix}*", count=1000):
                client.delete(key)
            client.close()


def start_redis(folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    """A non-persistent redis-server on a free 127.0.0.1 port; it and its URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    folder.mkdir(parents=True)
    with open(folder / "redis.log", "wb") as log:
        server = subprocess.Popen(
            [find_redis_server(), "--bind", "127.0.0.1", "--port", str(port), "--save", "",
             "--appendonly", "no", "--dir", str(folder)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
        )  # fmt: skip
    deadline = time.monotonic() + 10
    while True:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return server, f"redis://127.0.0.1:{port}/0"
        if server.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"bench: error: redis-server did not start on port {port}")
        time.sleep(0.02)


def first_start(farm: Farm, since: float) -> float | None:
    """The unix time the first shard started on any worker after ``since``."""
    times = [e["ts"] for w in farm.workers for e in w.events("shard.start") if e["ts"] >= since]
    return min(times) if times else None


def run(farm: Farm, suite: Path, state: Path, tests: int, kill_at_s: list[float]) -> dict[str, Any]:
    """One ``farm run``, killing a busy worker at each of ``kill_at_s`` (seconds from
    the first shard's start); checks the run and returns its figures."""
    report = state.parent / "report.json"
    out = state.parent / "submitter.log"
    command = [script("farm"), "run", ".", "--broker", farm.broker, "-n", str(len(farm.workers)),
               "--state-dir", str(state), "--json", str(report)]  # fmt: skip
    submitted = time.time()
    started = time.perf_counter()
    killed: list[tuple[str, float]] = []
    with open(out, "wb") as log:
        process = subprocess.Popen(
            command, cwd=suite, env=farm.env, stdin=subprocess.DEVNULL, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        t0 = None
        pending = sorted(kill_at_s)
        while pending and process.poll() is None:
            t0 = t0 or first_start(farm, submitted)
            if t0 is not None and time.time() - t0 >= pending[0]:
                live = farm.alive()
                victim = next((w for w in live if w.busy()), live[0])
                victim.kill()
                killed.append((victim.name, time.time() - t0))
                pending.pop(0)
            time.sleep(0.05)
        process.wait(timeout=RUN_TIMEOUT_S)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    wall_s = time.perf_counter() - started
    done = subprocess.CompletedProcess(command, process.returncode, out.read_text(), "")
    data = passed_report(done, report, tests)
    listed = [t["node_id"] for t in data["tests"]]
    if len(listed) != len(set(listed)) or len(listed) != tests:
        fail("farm run", done, f"the report lists {len(listed)} results for {tests} tests")
    with contextlib.closing(sqlite3.connect(state / "farm.db")) as db:
        stored, distinct = db.execute(
            "SELECT COUNT(*), COUNT(DISTINCT node_id) FROM attempts WHERE run_id = ?",
            (data["run_id"],),
        ).fetchone()
    if stored != tests or distinct != tests:
        fail("farm run", done, f"{stored} attempts stored for {distinct} of {tests} tests")
    return {
        "makespan_s": float(data["makespan_s"]),
        "wall_s": wall_s,
        "killed": killed,
        "reissued": done.stdout.count("handed out again"),
    }


def lossy_bound_s(work_s: float, longest_s: float, workers: int, kills_s: list[float]) -> float:
    """The least time ``work_s`` takes on ``workers`` that lose one at each of ``kills_s``."""
    done_s, at_s, slots = 0.0, 0.0, workers
    for kill_s in sorted(kills_s):
        if done_s + slots * (kill_s - at_s) >= work_s:
            break
        done_s, at_s, slots = done_s + slots * (kill_s - at_s), kill_s, slots - 1
    return max(at_s + (work_s - done_s) / max(slots, 1), longest_s)


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--workers", type=int, default=8, help="farm worker -c 1 processes")
    p.add_argument("--tests", type=int, default=2000, help="make_suite --tests")
    p.add_argument("--scale", type=float, default=1.0, help="make_suite --scale (0.2: quick)")
    p.add_argument("--lease", type=float, default=10.0, help="FARM_LEASE_S, seconds")
    p.add_argument("--heartbeat", type=float, default=2.0, help="FARM_HEARTBEAT_S, seconds")
    p.add_argument("--broker", help="an existing Redis URL [a redis-server of its own]")
    p.add_argument("--out", type=Path, help="keep the suite, logs and state here")
    p.add_argument("--json", type=Path, help="write the results here as JSON")
    a = p.parse_args()
    if a.workers < 3:
        p.error("--workers must be at least 3: two of them are killed")

    with tempfile.TemporaryDirectory(prefix="farm-bench-chaos-") as tmp:
        work = a.out.resolve() if a.out else Path(tmp)
        suite, state = work / "suite", work / "state"
        summary = make_suite(suite, ["--tests", str(a.tests), "--scale", str(a.scale)])
        tests = int(summary["tests"])
        import_history(suite, state)
        env = {k: v for k, v in os.environ.items() if not k.startswith("FARM_")}
        # A prefix of its own, so a shared Redis is left as it was found.
        env.update(FARM_LEASE_S=str(a.lease), FARM_HEARTBEAT_S=str(a.heartbeat),
                   FARM_KEY_PREFIX=f"bench-chaos-{uuid.uuid4().hex[:8]}:")  # fmt: skip
        env["FARM_QUEUE"] = env["FARM_KEY_PREFIX"] + "q"
        server, broker = (None, a.broker) if a.broker else start_redis(work / "redis")
        farm = Farm(broker, env, work / "workers", redis=server)
        load_before = load_average()
        try:
            farm.start_workers(a.workers)
            clean = run(farm, suite, state, tests, [])
            print(f"bench: no losses: makespan {clean['makespan_s']:.2f}s", file=sys.stderr)
            kills = [share * clean["makespan_s"] for share in KILL_AT]
            lossy = run(farm, suite, state, tests, kills)
        finally:
            farm.close()
        bound_s = lower_bound_s(suite, a.workers, SETUP_S * a.scale)
        durations = json.loads((suite / "durations.json").read_text())
    modules = len({node_id.split("::")[0] for node_id in durations})
    work_s = sum(durations.values()) + SETUP_S * a.scale * modules
    kills_s = [at_s for _, at_s in lossy["killed"]]
    lossy_s = lossy_bound_s(work_s, max(durations.values()), a.workers, kills_s)
    ratio = lossy["makespan_s"] / clean["makespan_s"]
    print(f"{tests} tests in {modules} modules, {summary['total_s']:.1f}s of tests, longest "
          f"{summary['max_s']:.2f}s, scale {a.scale}; {a.workers} workers (farm worker -c 1 each) "
          f"on {'--broker' if a.broker else 'a redis-server of its own'}; lease {a.lease:g}s, "
          f"heartbeat {a.heartbeat:g}s; load average {load_before:.2f} before, "
          f"{load_average():.2f} after")  # fmt: skip
    kills_text = ", ".join(f"{name} at {at_s:.1f}s" for name, at_s in lossy["killed"])
    rows = [
        ["no losses", cell(clean["makespan_s"], ".2f"), cell(clean["makespan_s"] / bound_s, ".2f"),
         cell(clean["wall_s"], ".2f"), "-", str(clean["reissued"])],
        [f"{len(lossy['killed'])} killed", cell(lossy["makespan_s"], ".2f"),
         cell(lossy["makespan_s"] / lossy_s, ".2f"), cell(lossy["wall_s"], ".2f"), kills_text,
         str(lossy["reissued"])],
    ]  # fmt: skip
    print_table(
        ["run", "makespan s", "x its lower bound", "wall s", "killed", "shards handed out again"],
        rows,
    )
    print(f"lower bound: {bound_s:.2f}s with {a.workers} workers, {lossy_s:.2f}s with the losses")
    print(f"ratio (2 killed / no losses makespan): {ratio:.2f}")
    if a.json:
        result = {
            "benchmark": "chaos", "suite": summary, "scale": a.scale, "workers": a.workers,
            "lease_s": a.lease, "heartbeat_s": a.heartbeat, "lower_bound_s": round(bound_s, 3),
            "lossy_lower_bound_s": round(lossy_s, 3), "no_losses": clean, "killed": lossy,
            "ratio": round(ratio, 3),
        }  # fmt: skip
        a.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
