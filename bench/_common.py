"""What the benchmarks share: a suite, its history, timed commands.

Terms used by makespan.py, overhead.py and retries.py:

* a **suite** is a folder written by make_suite.py: test modules, ``durations.json``
  (the true duration of every test, seconds, keyed by node id) and ``history.json``
  (the same with noise and gaps, in pytest-split's format);
* a **run** is one whole command as a user types it, timed by the wall clock of the
  child process from launch to exit (start-up, collection and teardown included);
* a **Timing** is the wall seconds of one run, plus farm's own ``makespan_s`` (first
  dispatch to last result, from its JSON report) when the command was ``farm run``.

A run that does not give the suite's answer (all its tests pass; in retries.py, exactly
its failing tests fail) ends the benchmark with a non-zero exit and the tail of the
command's output: a fast wrong answer is not a result.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RUN_TIMEOUT_S = 1800.0


@dataclass(frozen=True)
class Timing:
    """One timed run: wall seconds, and farm's reported makespan (None for pytest)."""

    wall_s: float
    makespan_s: float | None = None


def script(name: str) -> str:
    """The console script ``name`` of this interpreter's environment, else from PATH."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise SystemExit(f"bench: error: no {name!r} script beside {sys.executable} or on PATH")
    return found


def fail(what: str, done: subprocess.CompletedProcess[str], why: str) -> None:
    """End the benchmark: ``what`` went wrong because ``why``; show the output's tail."""
    tail = (done.stdout[-3000:] + "\n" + done.stderr[-3000:]).strip()
    raise SystemExit(f"bench: error: {what}: {why} (exit {done.returncode})\n{tail}")


def timed(
    command: Sequence[str], cwd: Path, env: Mapping[str, str] | None = None
) -> tuple[float, subprocess.CompletedProcess[str]]:
    """Run ``command`` in ``cwd`` (with ``env``, default this process's environment);
    its wall seconds from launch to exit, and its result."""
    start = time.perf_counter()
    try:
        done = subprocess.run(
            list(command),
            cwd=cwd,
            env=None if env is None else dict(env),
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired as e:
        raise SystemExit(f"bench: error: {' '.join(command)} ran over {RUN_TIMEOUT_S:.0f}s") from e
    return time.perf_counter() - start, done


def make_suite(out: Path, options: Sequence[str]) -> dict[str, float]:
    """Write a suite into ``out`` with make_suite.py ``options``; its summary line."""
    command = [sys.executable, str(HERE / "make_suite.py"), str(out), *options]
    _, done = timed(command, HERE)
    if done.returncode != 0:
        fail("make_suite.py", done, "could not write the suite")
    summary: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return summary


def import_history(suite: Path, state_dir: Path) -> None:
    """``farm history import history.json`` into the project named after ``suite``."""
    command = [script("farm"), "history", "import", "history.json", "--state-dir", str(state_dir)]
    _, done = timed(command, suite)
    if done.returncode != 0:
        fail("farm history import", done, "could not import history.json")


def passed_report(
    done: subprocess.CompletedProcess[str], report: Path, tests: int
) -> dict[str, Any]:
    """The JSON ``report`` of ``farm run`` (``done``), read then removed; ends the
    benchmark unless the run's verdict is passed for all ``tests``."""
    if not report.exists():
        fail("farm run", done, "no JSON report was written")
    data: dict[str, Any] = json.loads(report.read_text())
    report.unlink()
    passed = data["counts"]["passed"]
    if done.returncode != 0 or data["verdict"] != "passed" or passed != tests:
        fail("farm run", done, f"verdict {data['verdict']}, {passed} of {tests} tests passed")
    return data


def run_farm(suite: Path, workers: int, state_dir: Path, report: Path, tests: int) -> Timing:
    """Time ``farm run . -n workers``; check the verdict is passed for all ``tests``."""
    command = [script("farm"), "run", ".", "-n", str(workers), "--state-dir", str(state_dir)]
    wall_s, done = timed([*command, "--json", str(report)], suite)
    data = passed_report(done, report, tests)
    return Timing(wall_s, float(data["makespan_s"]))


def run_pytest(suite: Path, options: Sequence[str], tests: int) -> Timing:
    """Time ``pytest -q -p no:cacheprovider OPTIONS``; check all ``tests`` passed."""
    command = [script("pytest"), "-q", "-p", "no:cacheprovider", *options]
    wall_s, done = timed(command, suite)
    lines = done.stdout.strip().splitlines()
    last = lines[-1] if lines else ""
    found = re.search(r"(\d+) passed", last)
    passed = int(found.group(1)) if found else 0
    if done.returncode != 0 or passed != tests or re.search(r"failed|error", last):
        fail(" ".join(["pytest", *options]), done, f"summary {last!r}, expected {tests} passed")
    return Timing(wall_s)


def durations_of(suite: Path) -> dict[str, float]:
    """The true duration of every test of ``suite``, seconds, by node id."""
    durations: dict[str, float] = json.loads((suite / "durations.json").read_text())
    return durations


def lower_bound_s(
    suite: Path, workers: int, setup_s: float, retried: Collection[str] = ()
) -> float:
    """max((sum of true durations + one ``setup_s`` per module) / workers, longest test).

    Each test of ``retried`` runs twice, one attempt after the other: its duration
    counts twice in the sum and in the longest chain (a retry's setup is not counted,
    so the bound holds whether the retry reuses its module's fixture or not)."""
    durations = durations_of(suite)
    modules = {node_id.split("::")[0] for node_id in durations}
    work_s = sum(durations.values()) + setup_s * len(modules)
    work_s += sum(durations[node_id] for node_id in retried)
    longest_s = max([*durations.values(), *(2 * durations[n] for n in retried)])
    return max(work_s / workers, longest_s)


def median(values: Sequence[float]) -> float:
    """The median of ``values``; NaN when there are none (printed as a dash)."""
    return statistics.median(values) if values else float("nan")


def summary_row(
    label: str, timings: Sequence[Timing], references_s: Mapping[str, float]
) -> dict[str, Any]:
    """One command's row: its runs, median wall, median makespan, and the median wall
    divided by each reference (``{"ratio_serial": serial_s}`` and the like)."""
    wall_s = median([t.wall_s for t in timings])
    spans = [t.makespan_s for t in timings if t.makespan_s is not None]
    row: dict[str, Any] = {
        "command": label,
        "runs_wall_s": [round(t.wall_s, 3) for t in timings],
        "wall_s": round(wall_s, 3),
    }
    row.update({name: round(wall_s / ref_s, 3) for name, ref_s in references_s.items()})
    row["makespan_s"] = round(median(spans), 3) if spans else None
    return row


def load_average() -> float:
    """The one-minute load average (this machine is shared: report it with results)."""
    return os.getloadavg()[0]


def cell(value: float | None, form: str) -> str:
    """``value`` formatted with ``form``, or a dash when it is missing or NaN."""
    if value is None or value != value:
        return "-"
    return format(value, form)


def summary_cells(row: Mapping[str, Any], ratios: Sequence[str]) -> list[str]:
    """A ``summary_row`` as table cells: command, wall, each of ``ratios``, makespan, runs."""
    return [
        row["command"],
        f"{row['wall_s']:.2f}",
        *(f"{row[name]:.2f}" for name in ratios),
        cell(row["makespan_s"], ".2f"),
        " ".join(f"{s:.2f}" for s in row["runs_wall_s"]),
    ]


def print_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Print ``rows`` under ``header``: the first column left-aligned, the rest right."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        first = row[0].ljust(widths[0])
        rest = (text.rjust(width) for text, width in zip(row[1:], widths[1:], strict=True))
        print("  ".join([first, *rest]))
