#!/usr/bin/env python3
"""farm against pytest-xdist on a heavy-tailed suite: ``python bench/makespan.py``.

Writes make_suite.py's default suite (2,000 sleeping tests of log-normal durations,
40 modules each with a 0.2 s module fixture, a noisy history.json with 10% of tests
missing), imports history.json into a fresh farm state folder, then times whole
commands in the same run, from launch to exit:

* ``farm run . -n W --state-dir STATE`` (run 1 is *cold*: history only from the
  import, no collection cache; later runs are *warm*, reported as their median);
* ``pytest -n W --dist worksteal -p no:cacheprovider -q``;
* ``pytest -n W --dist load -p no:cacheprovider -q``.

Commands are interleaved round by round so machine noise hits them alike. Each is
compared with the lower bound, from the true durations in durations.json:

    lower_bound = max((sum of durations + one module setup per module) / W, longest test)

and with worksteal's median in the same run. Measured before farm existed: worksteal
1.41x the lower bound, load 1.79x, pytest-split least_duration (16 groups) 1.70x.
Target: farm at most 1.25x the lower bound, and faster than worksteal.

Every run must pass all the suite's tests (farm: verdict passed), else exit 1.

Usage: makespan.py [--workers 16] [--scale 1.0] [--tests 2000] [--repeat 1]
                   [--farm-repeat 3] [--out DIR] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from _common import (
    Timing,
    import_history,
    load_average,
    lower_bound_s,
    make_suite,
    median,
    print_table,
    run_farm,
    run_pytest,
    summary_cells,
    summary_row,
)

SETUP_S = 0.2  # make_suite.py's default module fixture setup, before --scale
TARGET_RATIO = 1.25


def measure(a: argparse.Namespace, suite: Path, state_dir: Path) -> dict[str, list[Timing]]:
    """Every timed run by command, in the interleaved order they were made."""
    runs: dict[str, list[Timing]] = {"farm": [], "worksteal": [], "load": []}
    report = state_dir.parent / "farm-report.json"
    for round_ in range(max(a.repeat, a.farm_repeat)):
        if round_ < a.farm_repeat:
            runs["farm"].append(run_farm(suite, a.workers, state_dir, report, a.tests))
        if round_ < a.repeat:
            for dist in ("worksteal", "load"):
                options = ["-n", str(a.workers), "--dist", dist]
                runs[dist].append(run_pytest(suite, options, a.tests))
        done = [(name, timings) for name, timings in runs.items() if len(timings) > round_]
        walls = ", ".join(f"{name} {timings[round_].wall_s:.2f}s" for name, timings in done)
        print(f"round {round_ + 1}: {walls}", file=sys.stderr, flush=True)
    return runs


def rows_of(
    runs: dict[str, list[Timing]], bound_s: float, a: argparse.Namespace
) -> list[dict[str, Any]]:
    """One row per command: label, its runs, the median wall and both ratios."""
    farm = runs["farm"]
    groups = [
        ("farm run (cold, run 1)", farm[:1]),
        (f"farm run (warm, median of {len(farm) - 1})", farm[1:]),
        (f"pytest -n {a.workers} --dist worksteal", runs["worksteal"]),
        (f"pytest -n {a.workers} --dist load", runs["load"]),
    ]
    worksteal_s = median([t.wall_s for t in runs["worksteal"]])
    references = {"ratio_lower_bound": bound_s, "ratio_worksteal": worksteal_s}
    rows = [summary_row(label, timings, references) for label, timings in groups if timings]
    return rows


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--workers", type=int, default=16, help="farm and xdist workers")
    p.add_argument("--scale", type=float, default=1.0, help="make_suite --scale (0.2: quick)")
    p.add_argument("--tests", type=int, default=2000, help="make_suite --tests")
    p.add_argument("--repeat", type=int, default=1, help="runs of each pytest command")
    p.add_argument("--farm-repeat", type=int, default=3, help="farm runs: 1 cold, then warm")
    p.add_argument("--out", type=Path, help="write the suite here [a temporary folder]")
    p.add_argument("--json", type=Path, help="write the results here as JSON")
    a = p.parse_args()
    if a.repeat < 1 or a.farm_repeat < 1 or a.workers < 1:
        p.error("--workers, --repeat and --farm-repeat must be at least 1")

    with tempfile.TemporaryDirectory(prefix="farm-bench-makespan-") as tmp:
        suite = a.out.resolve() if a.out else Path(tmp) / "suite"
        state_dir = Path(tmp) / "state"
        load_before = load_average()
        summary = make_suite(suite, ["--tests", str(a.tests), "--scale", str(a.scale)])
        import_history(suite, state_dir)
        bound_s = lower_bound_s(suite, a.workers, SETUP_S * a.scale)
        runs = measure(a, suite, state_dir)
    rows = rows_of(runs, bound_s, a)

    print(
        f"{a.tests} tests in 40 modules, {summary['total_s']:.1f}s of tests, longest "
        f"{summary['max_s']:.2f}s, scale {a.scale}, {a.workers} workers; load average "
        f"{load_before:.2f} before, {load_average():.2f} after"
    )
    print_table(
        ["command", "wall s", "x lower bound", "x worksteal", "farm makespan s", "runs (wall s)"],
        [["lower bound", f"{bound_s:.2f}", "1.00", "-", "-", "-"]]
        + [summary_cells(r, ["ratio_lower_bound", "ratio_worksteal"]) for r in rows],
    )
    farm = rows[1] if len(runs["farm"]) > 1 else rows[0]
    met = farm["ratio_lower_bound"] <= TARGET_RATIO and farm["ratio_worksteal"] < 1.0
    print(
        f"target (farm <= {TARGET_RATIO}x lower bound and faster than worksteal): "
        f"{'met' if met else 'missed'} by {farm['command']}"
    )
    if a.json:
        result = {
            "benchmark": "makespan",
            "suite": summary,
            "scale": a.scale,
            "workers": a.workers,
            "lower_bound_s": round(bound_s, 3),
            "load_average": [load_before, load_average()],
            "rows": rows,
            "target_met": met,
        }
        a.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
