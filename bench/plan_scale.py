#!/usr/bin/env python3
"""How fast and how lean planning is at scale: ``python bench/plan_scale.py``.

Generates N synthetic node ids across modules with heavy-tailed durations (the law
of make_suite.py: log-normal, median 0.05 s, sigma 1.6, cap 20 s; 10% of tests with
no history), writes them to a test ids file and a durations file in a temporary
folder, then measures:

* ``in-process``: load_test_ids + load_durations + estimate + make_plan, timed in
  this process (peak RSS is this process's, so it includes the generator);
* ``cli``: ``farm plan --tests FILE --durations FILE -n W --json`` as a child
  process, wall seconds and the child's peak RSS, when the ``farm`` console script
  has a ``plan`` command.

Usage: plan_scale.py [--tests 100000] [--workers 64] [--modules-per 50] [--seed 1]
"""

from __future__ import annotations

import argparse
import json
import math
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from farm.core.domain import History
from farm.report.history_io import read_history_file
from farm.scheduler.estimate import estimate
from farm.scheduler.plan import make_plan
from farm.scheduler.test_ids import load_test_ids


def write_suite(folder: Path, tests: int, per_module: int, seed: int) -> tuple[Path, Path]:
    """A test ids file and a durations file for ``tests`` synthetic tests."""
    rng = random.Random(seed)
    ids: list[str] = []
    durations: dict[str, float] = {}
    for i in range(tests):
        node_id = (
            f"tests/pkg{i // (per_module * 100):03d}/test_m{i // per_module:06d}.py::test_{i:07d}"
        )
        ids.append(node_id)
        if rng.random() >= 0.1:
            durations[node_id] = round(min(20.0, 0.05 * math.exp(rng.gauss(0, 1.6))), 4)
    tests_file, durations_file = folder / "tests.txt", folder / "durations.json"
    tests_file.write_text("\n".join(ids) + "\n")
    durations_file.write_text(json.dumps(durations))
    return tests_file, durations_file


def rss_mib(kib: int) -> float:
    # ru_maxrss is KiB on Linux, bytes on macOS.
    return kib / (1024 * 1024) if sys.platform == "darwin" else kib / 1024


def in_process(tests_file: Path, durations_file: Path, workers: int) -> dict[str, float]:
    t0 = time.perf_counter()
    node_ids = load_test_ids(tests_file)
    history = History(read_history_file(durations_file), {})
    t1 = time.perf_counter()
    estimates = estimate(node_ids, history)
    t2 = time.perf_counter()
    plan = make_plan(node_ids, estimates, workers)
    t3 = time.perf_counter()
    json.dumps(plan.to_json())
    t4 = time.perf_counter()
    return {
        "load_s": t1 - t0,
        "estimate_s": t2 - t1,
        "plan_s": t3 - t2,
        "json_s": t4 - t3,
        "total_s": t4 - t0,
        "shards": len(plan.shards),
        "makespan_ratio": plan.estimated_makespan_s / plan.lower_bound_s,
        "rss_mib": rss_mib(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss),
    }


def farm_has_plan() -> bool:
    farm = shutil.which("farm")
    if farm is None:
        return False
    probe = subprocess.run([farm, "plan", "--help"], capture_output=True, text=True)
    return probe.returncode == 0


def via_cli(tests_file: Path, durations_file: Path, workers: int) -> dict[str, float]:
    command = ["farm", "plan", "--tests", str(tests_file), "--durations", str(durations_file)]
    command += ["-n", str(workers), "--json"]
    t0 = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    wall_s = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"farm plan failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    shards = len(json.loads(done.stdout)["shards"])
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {"total_s": wall_s, "shards": shards, "rss_mib": rss_mib(peak)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tests", type=int, default=100_000)
    p.add_argument("--workers", type=int, default=64)
    p.add_argument("--modules-per", type=int, default=50, help="tests per module")
    p.add_argument("--seed", type=int, default=1)
    a = p.parse_args()

    with tempfile.TemporaryDirectory(prefix="farm-plan-scale-") as tmp:
        tests_file, durations_file = write_suite(Path(tmp), a.tests, a.modules_per, a.seed)
        rows = [("in-process", in_process(tests_file, durations_file, a.workers))]
        if farm_has_plan():
            rows.append(("cli", via_cli(tests_file, durations_file, a.workers)))
        else:
            print("farm plan: not available yet, CLI row skipped", file=sys.stderr)

    print(f"{a.tests} tests, {a.workers} workers, {a.modules_per} tests per module")
    print(f"{'path':<11} {'wall s':>7} {'peak MiB':>9} {'shards':>7}  detail")
    for name, r in rows:
        detail = ""
        if "plan_s" in r:
            detail = (
                f"load {r['load_s']:.2f}s, estimate {r['estimate_s']:.2f}s, "
                f"plan {r['plan_s']:.2f}s, json {r['json_s']:.2f}s, "
                f"est. makespan {r['makespan_ratio']:.3f}x lower bound"
            )
        print(f"{name:<11} {r['total_s']:7.2f} {r['rss_mib']:9.0f} {r['shards']:7.0f}  {detail}")


if __name__ == "__main__":
    main()
