#!/usr/bin/env python3
"""farm across network-namespace hosts: ``sudo python bench/hosts.py`` (needs root).

Writes make_suite.py's default suite (2,000 sleeping tests, 40 modules), then for
1, 2 and 4 hosts made with network namespaces (each a veth link to a Redis in the
root namespace, a cache folder of its own, and no sight of the submitter's
folder) starts one ``farm worker -c 4`` per host and times, from a fresh state
folder with the suite's history imported:

* **cold**: the first run; every host fetches and unpacks the snapshot;
* **warm**: the second run of the same tree; nothing is uploaded or fetched.

For each it prints the makespan (farm's own: first dispatch to last result, and
the whole command's wall time) against the lower bound for 4 x hosts workers,

    lower_bound = max((sum of durations + one module setup per module) / W, longest test)

and the time from submit (the command's launch) to the first test starting on any
host, snapshot packing, upload and fetch included. pytest-xdist cannot span hosts;
``pytest -n W --dist worksteal`` on this one machine is printed beside each as the
single-machine reference. All hosts share this machine's cores, so the figures
measure distribution overhead, not more hardware.

Usage: hosts.py [--hosts 1,2,4] [--per-host 4] [--scale 1.0] [--tests 2000]
                [--no-xdist] [--out DIR] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import (
    cell,
    fail,
    import_history,
    load_average,
    lower_bound_s,
    make_suite,
    print_table,
    run_pytest,
    script,
)

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from netns_hosts import Network, namespaces_unavailable

SETUP_S = 0.2  # make_suite.py's default module fixture setup, before --scale
WORKER_READY_TIMEOUT_S = 60.0


def start_workers(net: Network, per_host: int, root: Path, hide: Path) -> list[Path]:
    """One ``farm worker`` per host; returns their log files once all are registered."""
    logs = []
    env = {k: v for k, v in os.environ.items() if not k.startswith("FARM_")}
    env["FARM_BROKER_URL"] = net.broker_url
    for host in net.hosts:
        home = root / host.name
        home.mkdir(parents=True)
        with open(home / "worker.log", "wb") as log:
            host.popen(
                [script("farm"), "worker", "-c", str(per_host), "--cache", str(home / "cache"),
                 "--name", host.name, "--test-user", "self"],
                cwd=home, env=env, hide=[hide], stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        logs.append(home / "worker.log")
    deadline = time.monotonic() + WORKER_READY_TIMEOUT_S
    while True:
        listed = subprocess.run(
            [script("farm"), "workers", "--broker", net.broker_url, "--json"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if len(listed.stdout.splitlines()) == len(net.hosts):
            return logs
        if time.monotonic() > deadline:
            fail("farm worker", listed, f"{len(net.hosts)} workers did not register in time")
        time.sleep(0.2)


def timed_run(suite: Path, url: str, workers: int, state: Path, tests: int) -> dict[str, Any]:
    report = state.parent / "report.json"
    command = [script("farm"), "run", ".", "--broker", url, "-n", str(workers),
               "--state-dir", str(state), "--json", str(report)]  # fmt: skip
    submitted = time.time()
    started = time.perf_counter()
    done = subprocess.run(command, cwd=suite, capture_output=True, text=True, check=False)
    wall_s = time.perf_counter() - started
    if not report.exists():
        fail("farm run", done, "no JSON report was written")
    data = json.loads(report.read_text())
    report.unlink()
    if done.returncode != 0 or data["counts"]["passed"] != tests:
        fail("farm run", done, f"verdict {data['verdict']}, {data['counts']['passed']} passed")
    first_start = min(t["started_at"] for t in data["tests"] if t["started_at"])
    hosts = {t["worker"].split(":")[0] for t in data["tests"]}
    snapshot = data["snapshot"] or {}
    return {
        "wall_s": wall_s,
        "makespan_s": float(data["makespan_s"]),
        "first_test_s": first_start - submitted,
        "hosts_used": len(hosts),
        "uploaded_bytes": snapshot.get("uploaded_bytes"),
        "publish_s": (snapshot.get("pack_s") or 0) + (snapshot.get("upload_s") or 0),
    }


def fetched(logs: list[Path]) -> int:
    count = 0
    for log in logs:
        for line in log.read_text().splitlines():
            if line.startswith("{") and json.loads(line).get("event") == "snapshot.fetched":
                count += 1
    return count


def measure(a: argparse.Namespace, suite: Path, work: Path, tests: int) -> list[dict[str, Any]]:
    rows = []
    for hosts in a.hosts:
        workers = hosts * a.per_host
        state = work / f"state-{hosts}"
        import_history(suite, state)
        lower_s = lower_bound_s(suite, workers, SETUP_S * a.scale)
        with Network(hosts) as net:
            logs = start_workers(net, a.per_host, work / f"hosts-{hosts}", hide=suite.parent)
            cold = timed_run(suite, net.broker_url, workers, state, tests)
            cold["fetches"] = fetched(logs)
            warm = timed_run(suite, net.broker_url, workers, state, tests)
            warm["fetches"] = fetched(logs) - cold["fetches"]
        xdist = None
        if not a.no_xdist:
            xdist = run_pytest(suite, ["-n", str(workers), "--dist", "worksteal"], tests).wall_s
        rows.append(
            {"hosts": hosts, "workers": workers, "lower_bound_s": lower_s, "cold": cold,
             "warm": warm, "xdist_worksteal_s": xdist}
        )  # fmt: skip
        print(f"bench: {hosts} host(s) done", file=sys.stderr, flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=lambda s: [int(x) for x in s.split(",")], default=[1, 2, 4])
    parser.add_argument("--per-host", type=int, default=4)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--tests", type=int, default=2000)
    parser.add_argument("--no-xdist", action="store_true")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--json", type=Path)
    a = parser.parse_args()
    reason = namespaces_unavailable()
    if reason is not None:
        raise SystemExit(f"bench: error: cannot make network namespaces: {reason}")
    with tempfile.TemporaryDirectory(prefix="farm-bench-hosts-") as tmp:
        work = a.out or Path(tmp)
        suite = work / "submitter" / "suite"
        summary = make_suite(suite, ["--tests", str(a.tests), "--scale", str(a.scale)])
        load = load_average()
        rows = measure(a, suite, work, int(summary["tests"]))
    print(f"suite: {summary['tests']:.0f} tests, {summary['total_s']:.1f} s of work; "
          f"load average at start {load:.2f}")  # fmt: skip
    header = ["hosts (workers)", "lower bound s", "run", "makespan s", "/LB", "wall s", "/LB",
              "submit to 1st test s", "fetches", "xdist worksteal s (1 machine)"]  # fmt: skip
    table = []
    for row in rows:
        lower_s = row["lower_bound_s"]
        for kind in ("cold", "warm"):
            r = row[kind]
            table.append([
                f"{row['hosts']} ({row['workers']} workers)", cell(lower_s, ".1f"), kind,
                cell(r["makespan_s"], ".1f"), cell(r["makespan_s"] / lower_s, ".2f"),
                cell(r["wall_s"], ".1f"), cell(r["wall_s"] / lower_s, ".2f"),
                cell(r["first_test_s"], ".2f"), str(r["fetches"]),
                cell(row["xdist_worksteal_s"], ".1f") if kind == "cold" else "",
            ])  # fmt: skip
    print_table(header, table)
    if a.json:
        a.json.write_text(json.dumps({"load": load, "suite": summary, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
