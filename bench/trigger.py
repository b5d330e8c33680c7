#!/usr/bin/env python3
"""A farm that watches a repository: how fast ``farm serve`` answers a webhook, and how
soon the forge has the verdict: ``python bench/trigger.py``.

Everything is a real process on this machine: a bare git repository plays the
remote, a fake GitHub on loopback (tests/fake_forge.py) takes the commit statuses,
Redis is FARM_BROKER_URL when set (this run's keys all hold a fresh random name, and
are deleted at the end) or an embedded redis-server of its own, and each server's
database is SQLite in a temporary folder.

1. **Webhook answers.** ``farm serve --conductors 0`` takes ``--deliveries`` signed
   GitHub push events with distinct commits and delivery ids, one after the other
   from one keep-alive client (each answered 202: queued), then the same deliveries
   again (200: replays, ignored), then a burst of 8 threads x 50 new deliveries at
   once. Printed: p50, p95, p99 and max of the answer time (request sent to answer
   read), and the share answered within 1 s (forges give up after 10 s; the answer
   must come within a second, whatever the load).
2. **Push to verdict.** make_suite.py writes ``--tests`` sleeping tests (median
   0.05 s, 40 modules with a 0.2 s module fixture, ``--fail`` of them failing),
   pushed to the bare repository. With a ``farm worker -c 2`` and ``farm serve
   --conductors 1``, a signed push is POSTed and timed until the fake forge receives
   the verdict status: *cold* (the first push: the conductor clones its mirror,
   collects with nothing cached, has no history) and *warm* (an empty commit pushed
   to the same branch: the mirror fetches, the history is the cold run's; the
   collection cache is keyed by the checkout's folder, new for each commit, so
   whether it was used is printed as found). Side by side, on a checkout of the
   same commit: ``pytest`` (serial), ``pytest -n 2`` (pytest-xdist), and ``farm run
   -n 2`` on the same worker with a fresh state folder (cold), then again (warm);
   the broker's URL reaches it in FARM_BROKER_URL, as ``--broker`` would, out of
   argv. Each is a ratio to the lower bound, max((sum of durations + one module
   setup per module) / 2, longest test), and to pytest-xdist. farm retries a
   failing test once (its default), so its failing tests run twice.
3. **Correctness.** The verdict status must match plain pytest's exit code (0:
   success, 1: failure) and name its failing count ("failed: 2 of 150 tests
   failed"); pytest-xdist and farm run must fail the tests plain pytest fails.
   Otherwise the benchmark exits 1 saying what disagrees.

Usage: trigger.py [--tests 150] [--fail 2] [--deliveries 300] [--json OUT]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import hmac
import json
import math
import os
import re
import secrets
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from _common import fail, load_average, lower_bound_s, make_suite, print_table, script, timed

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from fake_forge import Call, FakeForge

from farm.core.broker import connect
from farm.run.embedded import EmbeddedRedis

WORKERS = 2
SETUP_S = 0.2  # make_suite.py's default module fixture setup
BURST_THREADS, BURST_EACH = 8, 50
ANSWER_WITHIN_S = 1.0
READY_TIMEOUT_S = 60.0
VERDICT_TIMEOUT_S = 300.0

Delivery = tuple[bytes, dict[str, str]]  # a webhook's body and headers


class TimedForge(FakeForge):
    """The fake GitHub, noting when each request arrived (perf_counter seconds)."""

    def __init__(
        self, *, token: str = "", app_public_key_pem: str = "", token_lifetime_s: float = 3600.0
    ) -> None:
        super().__init__(
            token=token, app_public_key_pem=app_public_key_pem, token_lifetime_s=token_lifetime_s
        )
        self.arrivals: list[tuple[float, Call]] = []

    def _answer(self, call: Call) -> tuple[int, dict[str, Any]]:
        self.arrivals.append((time.perf_counter(), call))
        return super()._answer(call)

    def statuses(self, sha: str) -> list[tuple[float, Call]]:
        return [(at, c) for at, c in list(self.arrivals) if c.path.endswith(f"/statuses/{sha}")]


@dataclass(frozen=True)
class Farm:
    """What this run's farm processes share: Redis, names, secrets, a folder."""

    root: Path
    broker: str
    run_key: str  # in every Redis key of this run: its key prefix and queues
    secret: str  # the webhook's
    token: str  # the forge's

    def env(self, **extra: str) -> dict[str, str]:
        """This environment less any FARM_ setting, plus the farm's and ``extra``."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("FARM_")}
        env.update(FARM_BROKER_URL=self.broker, FARM_KEY_PREFIX=f"{self.run_key}:")
        env.update(FARM_QUEUE=self.run_key, FARM_TEST_USER="self")
        env.update(BENCH_HOOK_SECRET=self.secret, BENCH_FORGE_TOKEN=self.token, **extra)
        return env

    def delivery(self, sha: str, delivery_id: str) -> Delivery:
        """A GitHub push of ``sha`` to main, signed with the webhook's secret."""
        event = {
            "ref": "refs/heads/main", "before": "1" * 40, "after": sha, "deleted": False,
            "repository": {"full_name": "acme/shop", "html_url": "https://github.com/acme/shop"},
            "head_commit": {"id": sha, "author": {"email": "dev@example.com"}},
            "pusher": {"name": "dev"}, "sender": {"login": "dev"},
        }  # fmt: skip
        body = json.dumps(event).encode()
        signature = "sha256=" + hmac.new(self.secret.encode(), body, hashlib.sha256).hexdigest()
        headers = {
            "X-GitHub-Event": "push", "X-GitHub-Delivery": delivery_id,
            "X-Hub-Signature-256": signature, "Content-Type": "application/json",
        }  # fmt: skip
        return body, headers


class Service:
    """A farm command leading a process group of its own, its output in ``log``."""

    def __init__(self, command: Sequence[str], cwd: Path, env: dict[str, str], log: Path):
        self.log = log
        with open(log, "wb") as out:
            self.process = subprocess.Popen(
                list(command), cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip

    def check(self) -> None:
        if self.process.poll() is not None:
            tail = self.log.read_text(errors="replace")[-3000:]
            raise SystemExit(f"bench: error: {self.log} ended ({self.process.poll()})\n{tail}")

    def stop(self, grace_s: float = 20.0) -> None:
        """SIGTERM its group (farm serve then stops its conductors), SIGKILL what is left."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=grace_s)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()


def wait_for(
    what: str, check: Callable[[], Any], alive: Sequence[Service], timeout_s: float
) -> Any:
    """``check()``'s first true answer, polled; ends the benchmark when one of ``alive``
    ends or ``timeout_s`` passes."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        for service in alive:
            service.check()
        time.sleep(0.01)
    raise SystemExit(f"bench: error: timed out after {timeout_s:.0f}s waiting for {what}")


def git(cwd: Path, *args: str) -> str:
    isolated = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull}
    command = ["git", "-c", "user.email=dev@example.com", "-c", "user.name=Dev", *args]
    done = subprocess.run(command, cwd=cwd, env=isolated, capture_output=True, text=True)
    if done.returncode != 0:
        fail(f"git {' '.join(args)}", done, "git failed")
    return done.stdout.strip()


def start_serve(farm: Farm, config: Path, conductors: int, queue: str) -> tuple[Service, str]:
    """``farm serve`` on a free loopback port for the farm of ``queue``, its state in a
    folder named ``queue``; it and its URL once /api/health answers."""
    state = farm.root / queue
    state.mkdir()
    env = farm.env(
        FARM_STATE_DIR=str(state), FARM_DATABASE_URL=f"sqlite:///{state / 'farm.db'}",
        FARM_CACHE_DIR=str(state / "cache"), TMPDIR=str(farm.root), FARM_QUEUE=queue,
    )  # fmt: skip
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [script("farm"), "serve", "--config", str(config), "--port", str(port)]
    server = Service([*command, "--conductors", str(conductors)], state, env, state / "serve.log")
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        with contextlib.suppress(httpx.HTTPError):
            return httpx.get(f"{url}/api/health", timeout=1).status_code == 200
        return False

    wait_for("farm serve to answer", healthy, [server], READY_TIMEOUT_S)
    return server, url


def post_all(
    client: httpx.Client, url: str, deliveries: Sequence[Delivery], code: int
) -> list[float]:
    """POST each delivery in turn; the seconds of each answer. Ends the benchmark
    unless each is answered ``code``."""
    answers_s = []
    for body, headers in deliveries:
        start = time.perf_counter()
        answer = client.post(f"{url}/api/hooks/github", content=body, headers=headers)
        answers_s.append(time.perf_counter() - start)
        if answer.status_code != code:
            raise SystemExit(
                f"bench: error: a delivery was answered {answer.status_code}, not {code}: "
                f"{answer.text[:500]}"
            )
    return answers_s


def measure_hooks(farm: Farm, config: Path, count: int) -> dict[str, list[float]]:
    """Answer seconds of ``count`` first deliveries, their replays and a burst, from a
    ``farm serve --conductors 0``; ``burst_wall`` is the burst's own seconds."""
    # A queue of its own: what it queues is never run, and part 2's conductor must
    # not find it waiting (it would conduct a run of each missing commit first).
    server, url = start_serve(farm, config, 0, f"{farm.run_key}-hooks")

    def batch(label: str, n: int) -> list[Delivery]:
        return [farm.delivery(secrets.token_hex(20), f"{label}-{i}") for i in range(n)]

    try:
        first = batch("first", count)
        with httpx.Client(timeout=30) as client:
            runs = {"first": post_all(client, url, first, 202)}
            runs["replay"] = post_all(client, url, first, 200)
        lanes = [batch(f"burst{t}", BURST_EACH) for t in range(BURST_THREADS)]
        answers: list[list[float]] = [[] for _ in lanes]
        errors: list[BaseException] = []
        together = threading.Barrier(len(lanes) + 1)

        def lane(i: int) -> None:
            with httpx.Client(timeout=30) as client:
                together.wait()
                try:
                    answers[i] = post_all(client, url, lanes[i], 202)
                except BaseException as e:  # raised below, in the main thread
                    errors.append(e)

        threads = [threading.Thread(target=lane, args=(i,)) for i in range(len(lanes))]
        for thread in threads:
            thread.start()
        together.wait()
        started = time.perf_counter()
        for thread in threads:
            thread.join()
        runs["burst_wall"] = [time.perf_counter() - started]
        if errors:
            raise errors[0]
        runs["burst"] = [s for lane_s in answers for s in lane_s]
        return runs
    finally:
        server.stop()


def percentile(values: Sequence[float], p: float) -> float:
    """The nearest-rank ``p``th percentile of ``values``."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def hook_row(label: str, answers_s: Sequence[float]) -> dict[str, Any]:
    within = sum(1 for s in answers_s if s <= ANSWER_WITHIN_S) / len(answers_s)
    row: dict[str, Any] = {"deliveries": label, "count": len(answers_s)}
    row.update({f"p{p}_ms": round(percentile(answers_s, p) * 1000, 2) for p in (50, 95, 99)})
    return {**row, "max_ms": round(max(answers_s) * 1000, 2), "within_1s": round(within, 4)}


@dataclass(frozen=True)
class Triggered:
    """One push to verdict, seconds from the POST to the pending status and the verdict."""

    pending_s: float
    verdict_s: float
    verdict: Call
    cached: int  # collections in the conductor's cache, after the run


def trigger(
    farm: Farm, forge: TimedForge, url: str, sha: str, alive: Sequence[Service]
) -> Triggered:
    """POST a signed push of ``sha``; wait for the forge to receive its verdict."""
    body, headers = farm.delivery(sha, f"push-{sha}")
    start = time.perf_counter()
    answer = httpx.post(f"{url}/api/hooks/github", content=body, headers=headers, timeout=30)
    if answer.status_code != 202:
        raise SystemExit(f"bench: error: the push was answered {answer.status_code}: {answer.text}")

    def verdict() -> list[tuple[float, Call]]:
        found = forge.statuses(sha)
        return found if any(c.body["state"] != "pending" for _, c in found) else []

    found = wait_for(f"the verdict on {sha[:12]}", verdict, alive, VERDICT_TIMEOUT_S)
    pending_at = next((at for at, c in found if c.body["state"] == "pending"), math.nan)
    verdict_at, call = next((at, c) for at, c in found if c.body["state"] != "pending")
    with contextlib.closing(sqlite3.connect(farm.root / farm.run_key / "farm.db")) as db:
        (cached,) = db.execute("SELECT COUNT(*) FROM collection_cache").fetchone()
    return Triggered(pending_at - start, verdict_at - start, call, int(cached))


def measure_verdicts(
    farm: Farm, config: Path, forge: TimedForge, work: Path, stack: contextlib.ExitStack
) -> tuple[Triggered, Triggered]:
    """Cold and warm push to verdict through ``farm serve --conductors 1`` and a
    ``farm worker -c 2``, both left running (``stack`` stops them)."""
    worker_tmp = farm.root / "worker-tmp"  # Celery's pool leaves pymp-* folders here
    worker_tmp.mkdir()
    command = [script("farm"), "worker", "-c", str(WORKERS), "--name", "bench-w1",
               "--cache", str(farm.root / "worker-cache"), "--test-user", "self"]  # fmt: skip
    worker = Service(command, farm.root, farm.env(TMPDIR=str(worker_tmp)), farm.root / "worker.log")
    stack.callback(worker.stop)
    wait_for("the worker", lambda: "worker.ready" in worker.log.read_text(), [worker], 60)
    server, url = start_serve(farm, config, 1, farm.run_key)
    stack.callback(server.stop)
    conductors = farm.root / farm.run_key / "conductors.log"
    alive = [worker, server]
    wait_for(
        "the conductor", lambda: conductors.exists() and " ready." in conductors.read_text(),
        alive, READY_TIMEOUT_S,
    )  # fmt: skip
    cold = trigger(farm, forge, url, git(work, "rev-parse", "HEAD"), alive)
    git(work, "commit", "--quiet", "--allow-empty", "-m", "an empty commit")
    git(work, "push", "--quiet", "origin", "HEAD:main")
    warm = trigger(farm, forge, url, git(work, "rev-parse", "HEAD"), alive)
    return cold, warm


@dataclass(frozen=True)
class Baseline:
    """One timed command on the checkout: wall seconds, exit code, failed node ids."""

    wall_s: float
    exit_code: int
    failed: tuple[str, ...]
    makespan_s: float | None = None


def run_pytest(checkout: Path, options: Sequence[str], env: dict[str, str], tests: int) -> Baseline:
    """Time ``pytest -q -p no:cacheprovider OPTIONS``; ends the benchmark unless each
    test is reported passed or failed."""
    wall_s, done = timed(
        [script("pytest"), "-q", "-p", "no:cacheprovider", *options], checkout, env
    )
    failed = tuple(sorted(re.findall(r"^FAILED (\S+)", done.stdout, re.MULTILINE)))
    last = (done.stdout.strip().splitlines() or [""])[-1]
    found = re.search(r"(\d+) passed", last)
    if (
        done.returncode not in (0, 1)
        or (int(found.group(1)) if found else 0) + len(failed) != tests
    ):
        fail(" ".join(["pytest", *options]), done, f"summary {last!r} for {tests} tests")
    return Baseline(wall_s, done.returncode, failed)


def run_farm(checkout: Path, state: Path, env: dict[str, str], tests: int) -> Baseline:
    """Time ``farm run . -n 2`` on the farm's worker; ends the benchmark unless its
    JSON report, verdict and exit code agree and each test passed or failed."""
    report = state.parent / "farm-report.json"
    command = [script("farm"), "run", ".", "-n", str(WORKERS), "--state-dir", str(state)]
    wall_s, done = timed([*command, "--json", str(report)], checkout, env)
    if not report.exists():
        fail("farm run", done, "no JSON report was written")
    data = json.loads(report.read_text())
    report.unlink()
    failed = tuple(sorted(t["node_id"] for t in data["tests"] if t["outcome"] == "failed"))
    verdict, passed = ("failed" if failed else "passed"), data["counts"]["passed"]
    if (done.returncode, data["verdict"], passed + len(failed)) != (
        len(failed) > 0,
        verdict,
        tests,
    ):
        fail("farm run", done, f"verdict {data['verdict']}, {passed} passed, failed {failed}")
    return Baseline(wall_s, done.returncode, failed, float(data["makespan_s"]))


def measure_baselines(farm: Farm, remote: Path, sha: str, tests: int) -> dict[str, Baseline]:
    """pytest, pytest-xdist and farm run (cold, then warm) on a checkout of ``sha``."""
    checkout = farm.root / "checkout"
    git(farm.root, "clone", "--quiet", str(remote), str(checkout))
    git(checkout, "checkout", "--quiet", "--detach", sha)
    plain = {k: v for k, v in os.environ.items() if not k.startswith("FARM_")}
    state = farm.root / "run-state"
    runs = {"serial": run_pytest(checkout, [], plain, tests)}
    runs["xdist"] = run_pytest(checkout, ["-n", str(WORKERS)], plain, tests)
    runs["farm_cold"] = run_farm(checkout, state, farm.env(), tests)
    runs["farm_warm"] = run_farm(checkout, state, farm.env(), tests)
    return runs


def verdict_problem(triggered: Triggered, serial: Baseline, tests: int) -> str:
    """Why the verdict status disagrees with plain pytest's exit code, or ""."""
    state = {0: "success", 1: "failure"}[serial.exit_code]
    wanted = f"failed: {len(serial.failed)} of {tests} tests failed" if serial.exit_code else (
        f"passed: {tests} tests"
    )  # fmt: skip
    body = triggered.verdict.body
    if body["state"] == state and body.get("description", "").startswith(wanted):
        return ""
    return f"status {body['state']} {body.get('description')!r}, pytest exit {serial.exit_code}"


def verdict_rows(
    cold: Triggered, warm: Triggered, runs: dict[str, Baseline], bound_s: float
) -> list[dict[str, Any]]:
    cache = "hit" if warm.cached == cold.cached else "missed (a new checkout folder)"
    rows: list[tuple[str, float, float | None, str]] = [
        ("farm serve: push to verdict, cold", cold.verdict_s, cold.pending_s,
         "mirror cloned, nothing cached"),
        ("farm serve: push to verdict, warm", warm.verdict_s, warm.pending_s,
         f"mirror fetched, collection cache {cache}"),
        ("pytest (serial)", runs["serial"].wall_s, None, ""),
        (f"pytest -n {WORKERS}", runs["xdist"].wall_s, None, ""),
        *((f"farm run -n {WORKERS}, {name}", runs[f"farm_{name}"].wall_s, None,
           f"makespan {runs[f'farm_{name}'].makespan_s:.2f} s") for name in ("cold", "warm")),
        ("lower bound", bound_s, None, ""),
    ]  # fmt: skip
    return [
        {"command": label, "wall_s": round(wall_s, 3), "pending_s": pending_s,
         "ratio_lower_bound": round(wall_s / bound_s, 3),
         "ratio_xdist": round(wall_s / runs["xdist"].wall_s, 3), "note": note}
        for label, wall_s, pending_s, note in rows
    ]  # fmt: skip


@contextlib.contextmanager
def broker(root: Path) -> Iterator[str]:
    """FARM_BROKER_URL, else an embedded redis-server of this run's own."""
    url = os.environ.get("FARM_BROKER_URL")
    if url:
        yield url
        return
    with EmbeddedRedis(root / "redis") as redis:
        yield redis.url


def delete_keys(farm: Farm) -> None:
    """Remove this run's Redis keys, and only those (they all hold ``farm.run_key``)."""
    client = connect(farm.broker)
    try:
        for key in client.scan_iter(match=f"*{farm.run_key}*", count=1000):
            client.delete(key)
    finally:
        client.close()


def measure(a: argparse.Namespace, root: Path, stack: contextlib.ExitStack) -> dict[str, Any]:
    """All three parts, with what ``stack`` must stop and remove registered on it."""
    key = f"farm-bench-trigger-{secrets.token_hex(6)}"
    farm = Farm(root, stack.enter_context(broker(root)), key, secrets.token_hex(16),
                secrets.token_hex(16))  # fmt: skip
    stack.callback(delete_keys, farm)
    remote, work = root / "shop.git", root / "work"
    git(root, "init", "--quiet", "--bare", "--initial-branch=main", str(remote))
    git(root, "clone", "--quiet", str(remote), str(work))
    summary = make_suite(work, ["--tests", str(a.tests), "--median", "0.05", "--fail", str(a.fail)])
    git(work, "add", "-A")
    git(work, "commit", "--quiet", "-m", "a synthetic suite")
    git(work, "push", "--quiet", "origin", "HEAD:main")
    first_sha = git(work, "rev-parse", "HEAD")
    forge = TimedForge.start(token=farm.token)
    assert isinstance(forge, TimedForge)
    stack.callback(forge.stop)
    config = root / "server.toml"
    config.write_text(
        f"[[repository]]\nname = 'github.com/acme/shop'\nurl = '{remote}'\n"
        f"api_url = '{forge.url}'\nwebhook_secret_env = 'BENCH_HOOK_SECRET'\n"
        "token_env = 'BENCH_FORGE_TOKEN'\n"
    )
    hooks = measure_hooks(farm, config, a.deliveries)
    print(f"webhooks: first p99 {percentile(hooks['first'], 99) * 1000:.1f} ms",
          file=sys.stderr, flush=True)  # fmt: skip
    cold, warm = measure_verdicts(farm, config, forge, work, stack)
    print(f"push to verdict: cold {cold.verdict_s:.2f}s, warm {warm.verdict_s:.2f}s",
          file=sys.stderr, flush=True)  # fmt: skip
    runs = measure_baselines(farm, remote, first_sha, a.tests)
    bound_s = lower_bound_s(work, WORKERS, SETUP_S)
    problems = [
        f"the {name} verdict: {problem}" for name, triggered in (("cold", cold), ("warm", warm))
        if (problem := verdict_problem(triggered, runs["serial"], a.tests))
    ] + [
        f"{name} failed {list(run.failed)}, pytest {list(runs['serial'].failed)}"
        for name, run in runs.items() if run.failed != runs["serial"].failed
    ]  # fmt: skip
    return {
        "benchmark": "trigger", "suite": summary, "workers": WORKERS,
        "failing": len(runs["serial"].failed), "pytest_exit": runs["serial"].exit_code,
        "status": cold.verdict.body, "lower_bound_s": round(bound_s, 3),
        "hooks": [
            hook_row("first deliveries (202, queued)", hooks["first"]),
            hook_row("replays (200, ignored)", hooks["replay"]),
            hook_row(f"burst, {BURST_THREADS} threads x {BURST_EACH} (202)", hooks["burst"]),
        ],
        "burst_wall_s": round(hooks["burst_wall"][0], 3),
        "rows": verdict_rows(cold, warm, runs, bound_s),
        "problems": problems,
    }  # fmt: skip


def show(result: dict[str, Any], a: argparse.Namespace) -> None:
    redis = "FARM_BROKER_URL" if os.environ.get("FARM_BROKER_URL") else "an embedded Redis"
    burst, burst_s = result["hooks"][2]["count"], result["burst_wall_s"]
    low, high = result["load_average"]
    print(
        f"farm serve on loopback, SQLite and {redis}; the burst took {burst_s:.2f} s "
        f"({burst / burst_s:.0f} deliveries/s); load average {low:.2f} before, {high:.2f} after"
    )
    print_table(
        ["deliveries", "count", "p50 ms", "p95 ms", "p99 ms", "max ms", "within 1 s"],
        [[r["deliveries"], str(r["count"]), *(f"{r[f'{k}_ms']:.1f}" for k in
          ("p50", "p95", "p99", "max")), f"{100 * r['within_1s']:.1f}%"] for r in result["hooks"]],
    )  # fmt: skip
    suite = result["suite"]
    print(
        f"\n{a.tests} tests in 40 modules, {result['failing']} failing, {suite['total_s']:.1f} s "
        f"of tests, longest {suite['max_s']:.2f} s, {WORKERS} workers"
    )
    print_table(
        ["command", "wall s", "x lower bound", "x xdist", "pending s", "notes"],
        [[r["command"], f"{r['wall_s']:.2f}", f"{r['ratio_lower_bound']:.2f}",
          f"{r['ratio_xdist']:.2f}", "-" if r["pending_s"] is None else f"{r['pending_s']:.2f}",
          r["note"]] for r in result["rows"]],
    )  # fmt: skip
    status = result["status"]
    agree = "disagree" if result["problems"] else "agree"
    print(
        f"verdict status: {status['state']} {status.get('description')!r}; pytest: exit "
        f"{result['pytest_exit']}, {result['failing']} failed: {agree}"
    )


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--tests", type=int, default=150, help="make_suite --tests")
    p.add_argument("--fail", type=int, default=2, help="make_suite --fail: tests that fail")
    p.add_argument("--deliveries", type=int, default=300, help="webhook deliveries in turn")
    p.add_argument("--json", type=Path, help="write the results here as JSON")
    a = p.parse_args()
    if a.tests < 40 or not 0 <= a.fail <= a.tests or a.deliveries < 1:
        p.error("--tests must be at least 40 (one per module), --fail at most --tests, "
                "--deliveries at least 1")  # fmt: skip

    load_before = load_average()
    with (
        tempfile.TemporaryDirectory(prefix="farm-bench-trigger-") as name,
        contextlib.ExitStack() as stack,
    ):
        result = measure(a, Path(name), stack)
    result["load_average"] = [load_before, load_average()]
    show(result, a)
    if a.json:
        a.json.write_text(json.dumps(result, indent=1) + "\n")
    if result["problems"]:
        raise SystemExit("bench: error: " + "; ".join(result["problems"]))


if __name__ == "__main__":
    main()
