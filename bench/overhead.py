#!/usr/bin/env python3
"""farm's fixed cost on instant tests, against serial pytest: ``python bench/overhead.py``.

Writes ``make_suite.py tiny --tests 10000 --modules 100 --median 0 --setup 0 --sigma 0``
(10,000 tests that do nothing, so every second is overhead: start-up, collection,
dispatch, reporting), imports its history.json into a fresh farm state folder, then
times whole commands from launch to exit, interleaved round by round so machine noise
hits them alike:

* ``pytest -q -p no:cacheprovider`` (serial, the reference);
* ``pytest -n W -q -p no:cacheprovider`` (pytest-xdist);
* ``farm run . -n W --state-dir STATE`` (run 1 is *cold*: history only from the
  import, no collection cache; later runs are *warm*).

Each command is reported by its median over the rounds (farm's cold run on its own),
as a ratio to serial pytest's median. Measured before farm existed: pytest-xdist -n 2
took 1.22x serial pytest. Target: warm farm at most 1.0x serial pytest.

Every run must pass all the suite's tests (farm: verdict passed), else exit 1.

Usage: overhead.py [--tests 10000] [--workers 2] [--repeat 3] [--out DIR] [--json OUT]
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
    make_suite,
    median,
    print_table,
    run_farm,
    run_pytest,
    summary_cells,
    summary_row,
)

TARGET_RATIO = 1.0


def measure(a: argparse.Namespace, suite: Path, state_dir: Path) -> dict[str, list[Timing]]:
    """Every timed run by command: one of each command per round, ``a.repeat`` rounds."""
    runs: dict[str, list[Timing]] = {"serial": [], "xdist": [], "farm": []}
    report = state_dir.parent / "farm-report.json"
    for round_ in range(a.repeat):
        runs["serial"].append(run_pytest(suite, [], a.tests))
        runs["xdist"].append(run_pytest(suite, ["-n", str(a.workers)], a.tests))
        runs["farm"].append(run_farm(suite, a.workers, state_dir, report, a.tests))
        walls = ", ".join(f"{name} {timings[-1].wall_s:.2f}s" for name, timings in runs.items())
        print(f"round {round_ + 1}: {walls}", file=sys.stderr, flush=True)
    return runs


def rows_of(runs: dict[str, list[Timing]], workers: int) -> list[dict[str, Any]]:
    """One row per command: label, its runs, the median wall and its ratio to serial."""
    farm = runs["farm"]
    groups = [
        ("pytest (serial)", runs["serial"]),
        (f"pytest -n {workers}", runs["xdist"]),
        (f"farm run -n {workers} (cold, run 1)", farm[:1]),
        (f"farm run -n {workers} (warm, median of {len(farm) - 1})", farm[1:]),
    ]
    serial_s = median([t.wall_s for t in runs["serial"]])
    references = {"ratio_serial": serial_s}
    rows = [summary_row(label, timings, references) for label, timings in groups if timings]
    return rows


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--tests", type=int, default=10_000, help="make_suite --tests")
    p.add_argument("--workers", type=int, default=2, help="farm and xdist workers")
    p.add_argument("--repeat", type=int, default=3, help="rounds of the three commands")
    p.add_argument("--out", type=Path, help="write the suite here [a temporary folder]")
    p.add_argument("--json", type=Path, help="write the results here as JSON")
    a = p.parse_args()
    if a.repeat < 1 or a.workers < 1:
        p.error("--workers and --repeat must be at least 1")

    with tempfile.TemporaryDirectory(prefix="farm-bench-overhead-") as tmp:
        suite = a.out.resolve() if a.out else Path(tmp) / "tiny"
        state_dir = Path(tmp) / "state"
        load_before = load_average()
        options = ["--tests", str(a.tests), "--modules", "100"]
        summary = make_suite(suite, [*options, "--median", "0", "--setup", "0", "--sigma", "0"])
        import_history(suite, state_dir)
        runs = measure(a, suite, state_dir)
    rows = rows_of(runs, a.workers)

    print(
        f"{a.tests} instant tests in 100 modules, {a.workers} workers, {a.repeat} rounds; "
        f"load average {load_before:.2f} before, {load_average():.2f} after"
    )
    print_table(
        ["command", "wall s", "x serial", "farm makespan s", "runs (wall s)"],
        [summary_cells(r, ["ratio_serial"]) for r in rows],
    )
    farm = rows[-1]
    met = farm["ratio_serial"] <= TARGET_RATIO
    print(
        f"target (farm <= {TARGET_RATIO}x serial pytest): "
        f"{'met' if met else 'missed'} by {farm['command']}"
    )
    if a.json:
        result = {
            "benchmark": "overhead",
            "suite": summary,
            "workers": a.workers,
            "load_average": [load_before, load_average()],
            "rows": rows,
            "target_met": met,
        }
        a.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
