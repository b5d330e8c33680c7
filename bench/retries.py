#!/usr/bin/env python3
"""How soon a failure shows, and what retrying it costs: ``python bench/retries.py``.

Writes make_suite.py's default suite (2,000 sleeping tests of log-normal durations,
40 modules each with a 0.2 s module fixture, see makespan.py) with ``--fail 3``:
three tests that fail on every attempt. Each round, in a state folder of its own
holding the suite's imported history.json, it times three whole commands from
launch to exit, one after the other so machine noise hits them alike:

* ``farm run . -n W --change SHA1 --branch B`` (run 1: no earlier run of the
  branch, so the failing tests are wherever the plan put them; cold collection);
* ``farm run . -n W --change SHA2 --branch B`` (run 2, the next commit of the
  same branch: the tests that failed in run 1 go first; warm collection);
* ``pytest -n W --reruns 1 -p no:cacheprovider -q`` (pytest-xdist with
  pytest-rerunfailures, which reruns a failed test at once in the same process).

farm retries each failure once on another worker slot (``--retries`` default 1).
For every run it reports the **first failure**, seconds from launch until the
command knew a test had failed, and the **total**, seconds from launch to exit.
farm's first failure is its JSON report's ``started_at`` (when the run was asked
for) less the launch time, plus ``first_failure_s`` (to its first failing
attempt). pytest's is when its xdist controller receives the first report of a
failed call, as recorded by a plugin this benchmark writes into its temporary
folder and loads with ``-p``; pytest-rerunfailures reports an attempt it will
rerun as ``rerun``, not failed, so that is the first test to fail both attempts.
``--json OUT`` also gives each run's parts: farm's ``started_s`` (launch to
``started_at``) and ``makespan_s``, pytest's ``first_rerun_s`` (launch to its first
rerun report, the first failing attempt).

The lower bound, from the true durations in durations.json, counts the failing
tests twice:

    total >= max((sum of durations + one module setup per module
                  + the failing tests' durations) / W,
                 longest test, twice the longest failing test)
    first failure >= shortest failing test + one module setup

Every run must fail exactly the suite's failing tests, each after a retry (farm:
exit 1, verdict failed, the JSON report's failed tests with two attempts each;
pytest: exit 1, its FAILED lines and ``3 rerun``), else the benchmark exits 1 with
the command's output.

``--repeat R`` runs R rounds and shows each command's medians; the default is 1
because a round at full size takes minutes. The suite must not be inside a git work
tree (``--out``): the runs name their changes with ``--change``, which farm would
look up there.

Usage: retries.py [--workers 16] [--scale 1.0] [--tests 2000] [--repeat 1]
                  [--out DIR] [--json OUT]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from _common import (
    durations_of,
    fail,
    import_history,
    load_average,
    lower_bound_s,
    make_suite,
    median,
    print_table,
    script,
    timed,
)

FAILING = 3  # make_suite --fail
SETUP_S = 0.2  # make_suite.py's default module fixture setup, before --scale
BRANCH = "bench-retries"
PROBE = "farm_bench_first_failure"  # the pytest plugin's module name
PROBE_FILE = "BENCH_FIRST_FAILURE_FILE"  # where it appends "<kind> <unix time>" lines
PROBE_SOURCE = '''"""Written by farm's bench/retries.py: when the xdist controller first hears
of a failed test call and of a rerun one, as "<kind> <unix time>" lines."""

import os
import time

_seen = set()
_controller = [True]


def pytest_configure(config):
    _controller[0] = not hasattr(config, "workerinput")


def pytest_runtest_logreport(report):
    if not _controller[0] or report.when != "call":
        return
    kind = "failed" if report.failed else report.outcome
    if kind in ("failed", "rerun") and kind not in _seen:
        _seen.add(kind)
        with open(os.environ["BENCH_FIRST_FAILURE_FILE"], "a") as f:
            f.write(f"{kind} {time.time()!r}\\n")
'''


@dataclass(frozen=True)
class FailureTiming:
    """One timed run of the failing suite, seconds from its launch."""

    first_failure_s: float  # to the first failure the command knew of
    total_s: float  # to its exit
    started_s: float | None = None  # farm: to when the run was asked for (start-up)
    makespan_s: float | None = None  # farm: first dispatch to last result
    first_rerun_s: float | None = None  # pytest: to the first attempt it would rerun


def commit_sha(round_: int, run: int) -> str:
    """A made-up commit sha for ``run`` (1 or 2) of round ``round_``."""
    return hashlib.sha1(f"bench/retries.py round {round_} run {run}".encode()).hexdigest()


def failed_report(
    done: subprocess.CompletedProcess[str], report: Path, failing: Sequence[str], tests: int
) -> dict[str, Any]:
    """The JSON ``report`` of ``farm run`` (``done``), read then removed; ends the
    benchmark unless the run failed exactly ``failing``, each on two attempts, and
    passed the other tests."""
    if not report.exists():
        fail("farm run", done, "no JSON report was written")
    data: dict[str, Any] = json.loads(report.read_text())
    report.unlink()
    failed = [t for t in data["tests"] if t["outcome"] == "failed"]
    names = sorted(t["node_id"] for t in failed)
    attempts = sorted({len(t["attempts"]) for t in failed})
    passed = data["counts"]["passed"]
    if (
        done.returncode != 1
        or data["verdict"] != "failed"
        or names != sorted(failing)
        or attempts != [2]
        or passed != tests - len(failing)
        or data["first_failure_s"] is None
    ):
        fail(
            "farm run",
            done,
            f"verdict {data['verdict']}, {passed} passed, failed {names} "
            f"(attempts {attempts}), first failure {data['first_failure_s']}; "
            f"expected failed {sorted(failing)} on 2 attempts each",
        )
    return data


def run_farm(
    suite: Path,
    workers: int,
    state_dir: Path,
    change: str,
    env: Mapping[str, str],
    expected: tuple[Sequence[str], int],
) -> FailureTiming:
    """Time ``farm run`` of ``change`` on BRANCH; check it failed the ``expected``
    (failing tests, total tests)."""
    report = state_dir.parent / "farm-report.json"
    command = [script("farm"), "run", ".", "-n", str(workers), "--state-dir", str(state_dir)]
    command += ["--change", change, "--branch", BRANCH, "--json", str(report)]
    launched_at = time.time()
    total_s, done = timed(command, suite, env)
    data = failed_report(done, report, *expected)
    started_s = data["started_at"] - launched_at
    first_s = started_s + data["first_failure_s"]
    makespan_s = float(data["makespan_s"])
    return FailureTiming(first_s, total_s, started_s=started_s, makespan_s=makespan_s)


def run_pytest(
    suite: Path, workers: int, env: Mapping[str, str], expected: tuple[Sequence[str], int]
) -> FailureTiming:
    """Time pytest-xdist with pytest-rerunfailures and the probe plugin; check it failed
    the ``expected`` (failing tests, total tests) after rerunning each once."""
    failing, tests = expected
    probe = Path(env[PROBE_FILE])
    probe.unlink(missing_ok=True)
    command = [script("pytest"), "-n", str(workers), "--reruns", "1", "-p", "no:cacheprovider"]
    command += ["-q", "-p", PROBE]
    launched_at = time.time()
    total_s, done = timed(command, suite, env)
    out = done.stdout.strip().splitlines()
    last = out[-1] if out else ""
    names = sorted(re.findall(r"^FAILED (\S+)", done.stdout, re.MULTILINE))
    counts = {word: int(n) for n, word in re.findall(r"(\d+) (failed|passed|rerun)\b", last)}
    lines = probe.read_text().splitlines() if probe.exists() else []
    seen = {kind: float(at) for kind, at in (line.split() for line in lines)}
    wanted = {"failed": len(failing), "passed": tests - len(failing), "rerun": len(failing)}
    if done.returncode != 1 or names != sorted(failing) or counts != wanted or "failed" not in seen:
        fail(
            f"pytest -n {workers} --reruns 1",
            done,
            f"summary {last!r}, failed {names}, probe saw {sorted(seen)}; expected "
            f"failed {sorted(failing)}, {wanted}",
        )
    rerun_s = seen["rerun"] - launched_at if "rerun" in seen else None
    return FailureTiming(seen["failed"] - launched_at, total_s, first_rerun_s=rerun_s)


def environments(tmp: Path) -> tuple[dict[str, str], dict[str, str]]:
    """The environments of farm and of pytest: the suite's flaky state under ``tmp``,
    and for pytest the probe plugin on PYTHONPATH and where it writes."""
    farm_env = {**os.environ, "FLAKY_STATE_DIR": str(tmp / "flaky")}
    plugins = tmp / "plugins"
    plugins.mkdir()
    (plugins / f"{PROBE}.py").write_text(PROBE_SOURCE)
    path = os.pathsep.join(p for p in [str(plugins), os.environ.get("PYTHONPATH", "")] if p)
    pytest_env = {**farm_env, "PYTHONPATH": path, PROBE_FILE: str(tmp / "first-failure.txt")}
    return farm_env, pytest_env


def measure(
    a: argparse.Namespace, suite: Path, tmp: Path, failing: Sequence[str]
) -> dict[str, list[FailureTiming]]:
    """Every timed run by command: farm run 1, farm run 2, pytest, round by round."""
    runs: dict[str, list[FailureTiming]] = {"farm1": [], "farm2": [], "pytest": []}
    farm_env, pytest_env = environments(tmp)
    expected = (failing, a.tests)
    for round_ in range(1, a.repeat + 1):
        state_dir = tmp / f"state-{round_}"
        import_history(suite, state_dir)
        for run in (1, 2):
            change = commit_sha(round_, run)
            timing = run_farm(suite, a.workers, state_dir, change, farm_env, expected)
            runs[f"farm{run}"].append(timing)
        runs["pytest"].append(run_pytest(suite, a.workers, pytest_env, expected))
        shown = ", ".join(
            f"{name} {t[-1].first_failure_s:.2f}s/{t[-1].total_s:.2f}s" for name, t in runs.items()
        )
        print(f"round {round_} (first failure/total): {shown}", file=sys.stderr, flush=True)
    return runs


def row_of(label: str, timings: Sequence[FailureTiming], bound_s: float) -> dict[str, Any]:
    """One command's row: its runs, its median first failure and total, the total's
    ratio to the lower bound."""
    total_s = median([t.total_s for t in timings])
    return {
        "command": label,
        "first_failure_s": round(median([t.first_failure_s for t in timings]), 3),
        "total_s": round(total_s, 3),
        "ratio_lower_bound": round(total_s / bound_s, 3),
        "runs": [
            {name: None if v is None else round(v, 3) for name, v in asdict(t).items()}
            for t in timings
        ],
    }


def row_cells(row: Mapping[str, Any]) -> list[str]:
    """A ``row_of`` as table cells."""
    runs = " ".join(f"{r['first_failure_s']:.2f}/{r['total_s']:.2f}" for r in row["runs"])
    return [
        row["command"],
        f"{row['first_failure_s']:.2f}",
        f"{row['total_s']:.2f}",
        f"{row['ratio_lower_bound']:.2f}",
        runs,
    ]


def in_git_work_tree(folder: Path) -> bool:
    """Whether ``folder`` (or the nearest folder above it that exists) is in a git
    work tree."""
    git = shutil.which("git")
    existing = next(p for p in [folder, *folder.parents] if p.exists())
    if git is None:
        return False
    command = [git, "-C", str(existing), "rev-parse", "--is-inside-work-tree"]
    done = subprocess.run(command, capture_output=True, text=True)
    return done.stdout.strip() == "true"


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--workers", type=int, default=16, help="farm and xdist workers")
    p.add_argument("--scale", type=float, default=1.0, help="make_suite --scale (0.1: quick)")
    p.add_argument("--tests", type=int, default=2000, help="make_suite --tests")
    p.add_argument("--repeat", type=int, default=1, help="rounds of the three commands")
    p.add_argument("--out", type=Path, help="write the suite here [a temporary folder]")
    p.add_argument("--json", type=Path, help="write the results here as JSON")
    a = p.parse_args()
    if a.repeat < 1 or a.workers < 1:
        p.error("--workers and --repeat must be at least 1")
    if a.tests < 40 or a.scale <= 0:
        p.error("--tests must be at least 40 (one per module) and --scale above 0")

    with tempfile.TemporaryDirectory(prefix="farm-bench-retries-") as name:
        tmp = Path(name)
        suite = a.out.resolve() if a.out else tmp / "suite"
        if in_git_work_tree(suite):
            p.error(f"{suite} is in a git work tree: --out must be outside one")
        load_before = load_average()
        options = ["--tests", str(a.tests), "--scale", str(a.scale), "--fail", str(FAILING)]
        summary = make_suite(suite, options)
        failing: list[str] = json.loads((suite / "expected.json").read_text())["fail"]
        durations = durations_of(suite)
        bound_s = lower_bound_s(suite, a.workers, SETUP_S * a.scale, retried=failing)
        first_bound_s = min(durations[n] for n in failing) + SETUP_S * a.scale
        runs = measure(a, suite, tmp, failing)

    rows = [
        row_of(f"farm run -n {a.workers} (run 1)", runs["farm1"], bound_s),
        row_of(f"farm run -n {a.workers} (run 2, failed-first)", runs["farm2"], bound_s),
        row_of(f"pytest -n {a.workers} --reruns 1", runs["pytest"], bound_s),
    ]
    print(
        f"{a.tests} tests in 40 modules, {len(failing)} failing, {summary['total_s']:.1f}s "
        f"of tests, longest {summary['max_s']:.2f}s, scale {a.scale}, {a.workers} workers, "
        f"{a.repeat} round(s); load average {load_before:.2f} before, "
        f"{load_average():.2f} after"
    )
    print_table(
        ["command", "first failure s", "total s", "x lower bound", "runs (first/total s)"],
        [row_cells(r) for r in rows]
        + [["lower bound", f"{first_bound_s:.2f}", f"{bound_s:.2f}", "1.00", "-"]],
    )
    if a.json:
        result = {
            "benchmark": "retries",
            "suite": summary,
            "scale": a.scale,
            "workers": a.workers,
            "failing": sorted(failing),
            "lower_bound_s": round(bound_s, 3),
            "lower_bound_first_failure_s": round(first_bound_s, 3),
            "load_average": [load_before, load_average()],
            "rows": rows,
        }
        a.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
