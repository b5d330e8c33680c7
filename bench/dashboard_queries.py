#!/usr/bin/env python3
"""How fast the dashboard's reads answer on a large results store:
``python bench/dashboard_queries.py``.

Fills a fresh database through the store's own API, as runs record: each run is
created, started with its shards, its shards started and finished, its attempts
recorded in chunks (``record_results``, one multi-row insert per chunk) and the run
finished with its verdict and findings. By default 2,000,000 attempts across 200
runs of three repositories over 28 days: one run of 100,000 tests (among the five
newest, so the window queries' samples hold it: the worst case), the others of
about 9,500 tests of a pool of 100,000; 1% of tests flaky in a run (failed, then
passed on a retry in another shard), 0.3% failing on both attempts (each failure's
traceback ends with one of eight errors, numbers and paths varying, recorded with
its signature as the store computes it), 1% skipped; five branches, six
authors, eight machines, a tenth of the changes run twice; a few tests quarantined.

Then it times each page's reads through ``store.dashboard`` (median of
``--repeat`` calls, milliseconds, in-process: the server's time, without HTTP):
the changes list (page 1, its last page by cursor, a filtered page), the change
of the 100,000-test run, that run's page (progress, shards, first page of
failures, 20 slowest, failure groups over every failed test, failing shards and
retry links), a test's page (its runs, its overview), the flaky
leaderboard, the slowest tests and the duration changes over the last 7 days.
Then whole pages (``page: ...``), as the real app answers them in-process: routing,
the reads, rendering and the answer's bytes, without a socket; each must answer
200, the run page's HTML must stay under 2 MiB, and each page's size is printed.

SQLite always (a file in a temporary folder); PostgreSQL too with ``--pg URL`` or
``FARM_TEST_DATABASE_URL`` (a database of its own is created there and dropped
after; ``VACUUM ANALYZE`` runs after the fill, as autovacuum would). Exits 1 when
any of the reads and pages the budget holds for (``*`` in the table: the run page
of the 100,000-test run, the change list, a test's history, the flaky leaderboard)
takes over ``--budget-ms`` (200); the others are measured and marked when over.

Usage: dashboard_queries.py [--attempts 2000000] [--runs 200] [--big 100000]
                            [--repeat 5] [--budget-ms 200] [--pg URL] [--no-sqlite]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from farm.core.domain import ChangeRef, Outcome, RunFindings, TestResult, Verdict
from farm.store import ResultStore, ShardRecord

DAY_S = 24 * 3600.0
SPAN_DAYS = 28
CHUNK = 10_000  # attempts per record_results call
PROJECTS = {"acme/app": "app", "acme/lib": "lib", "acme/tools": "tools"}
BRANCHES = ("main", "main", "main", "dev", "feature/login", "feature/search", "release")
AUTHORS = ("ann", "bob", "chen", "dana", "eli", "fay")
MACHINES = tuple(f"host{i}" for i in range(8))
POOL = 100_000  # node ids a project's runs draw from
FLAKY_RATE = 0.01
FAIL_RATE = 0.003
SKIP_RATE = 0.01
TRACEBACK = "".join(
    f"  File 'src/module{i}.py', line {i * 7}, in call\n    x = f(y)\n" for i in range(8)
)
# What the failures failed with: a few causes, each with run-to-run noise in its message
# (numbers, addresses, paths), so that their signatures fall into a few dozen groups.
ERRORS = (
    "ConnectionRefusedError: [Errno 111] Connection refused: 10.0.{a}.{b}:{c}",
    "AssertionError: assert {a} == {b}",
    "KeyError: 'user_{a}'",
    "TimeoutError: timed out after {a}.{b}s",
    "FileNotFoundError: [Errno 2] No such file or directory: '/tmp/run{a}/out_{b}.json'",
    "ValueError: object at 0x7f{a:04x}{b:04x} is not ready",
    "RuntimeError: worker {a} exited with code {b}",
    "AttributeError: 'NoneType' object has no attribute 'session_{a}'",
)


def traceback(rng: random.Random, i: int) -> str:
    """A pytest traceback of one of the :data:`ERRORS`, mostly by the test's module."""
    error = ERRORS[(i // 50 + (rng.random() < 0.2)) % len(ERRORS)]
    message = error.format(a=rng.randrange(256), b=rng.randrange(256), c=rng.randrange(65536))
    kind = message.split(":")[0]
    return f"{TRACEBACK}E       {message}\n\nsrc/module7.py:49: {kind}\n"


@dataclass
class Clock:
    # The fill ends about now, so that the server's own clock (the Workers page's
    # window) and the store's (the leaderboards') see the same last days.
    now: float = field(default_factory=lambda: time.time() - SPAN_DAYS * DAY_S)

    def __call__(self) -> float:
        return self.now


def node_id(i: int) -> str:
    return f"tests/unit/test_module{i // 50:04d}.py::test_case_{i % 50}[param-{i % 7}]"


def run_sizes(attempts: int, runs: int, big: int) -> list[int]:
    """Attempts per run: one ``big`` run's worth, the rest shared by the others."""
    big_attempts = int(big * (1 + FLAKY_RATE + FAIL_RATE))
    rest = attempts - big_attempts
    each, extra = divmod(rest, runs - 1)
    return [each + (1 if i < extra else 0) for i in range(runs - 1)] + [big_attempts]


def make_results(
    rng: random.Random, run_id: str, target: int, start: int, shards: int, t0: float
) -> tuple[list[TestResult], RunFindings, Verdict]:
    """Exactly ``target`` attempts of consecutive pool tests from ``start``."""
    results: list[TestResult] = []
    failed: list[str] = []
    flaky: list[str] = []
    i = start
    while len(results) < target:
        name = node_id(i % POOL)
        base = 0.02 + (i * 7919 % 1000) / 400  # each test's own typical seconds
        shard = i % shards
        worker = f"w{shard % 32}"
        machine = MACHINES[shard % len(MACHINES)]
        roll = rng.random()
        duration = base * rng.uniform(0.8, 1.25)
        if roll < FLAKY_RATE + FAIL_RATE and len(results) + 2 <= target:
            second = Outcome.PASSED if roll < FLAKY_RATE else Outcome.FAILED
            (flaky if second is Outcome.PASSED else failed).append(name)
            for attempt, outcome in ((1, Outcome.FAILED), (2, second)):
                results.append(
                    TestResult(
                        run_id=run_id,
                        # A retry runs in another shard than its first attempt.
                        shard_id=shard if attempt == 1 else (shard + 1) % shards,
                        lease=1,
                        node_id=name,
                        outcome=outcome,
                        duration_s=duration,
                        worker=worker,
                        machine=MACHINES[(shard + attempt) % len(MACHINES)],
                        attempt=attempt,
                        longrepr=traceback(rng, i) if outcome is Outcome.FAILED else "",
                        output="captured stdout\n" * 10 if outcome is Outcome.FAILED else "",
                        started_at=t0,
                        finished_at=t0 + duration,
                    )
                )
        else:
            outcome = Outcome.SKIPPED if roll > 1 - SKIP_RATE else Outcome.PASSED
            results.append(
                TestResult(
                    run_id=run_id,
                    shard_id=shard,
                    lease=1,
                    node_id=name,
                    outcome=outcome,
                    duration_s=duration,
                    worker=worker,
                    machine=machine,
                    started_at=t0,
                    finished_at=t0 + duration,
                )
            )
        i += 1
    verdict = Verdict.FAILED if failed else Verdict.FLAKY if flaky else Verdict.PASSED
    return results, RunFindings(failed=tuple(failed), flaky=tuple(flaky)), verdict


def fill(store: ResultStore, clock: Clock, *, attempts: int, runs: int, big: int) -> str:
    """Record the runs; returns the id of the big run."""
    rng = random.Random(13)
    sizes = run_sizes(attempts, runs, big)
    big_index = runs - 3  # among the newest five: in every window's sample
    sizes.insert(big_index, sizes.pop())
    start_time = clock.now
    big_run = ""
    change: ChangeRef | None = None
    done = 0
    for index, size in enumerate(sizes):
        clock.now = start_time + index * SPAN_DAYS * DAY_S / runs
        repository = "acme/app" if index == big_index else rng.choice(list(PROJECTS))
        if change is None or change.repository != repository or rng.random() > 0.1:
            change = ChangeRef(
                repository,
                uuid.UUID(int=rng.getrandbits(128)).hex + "00000000",
                rng.choice(BRANCHES),
                author=rng.choice(AUTHORS),
            )
        run_id = store.create_run(
            project=PROJECTS[repository], trigger="ci", settings={"workers": 32}, change=change
        )
        shards = 64 if index == big_index else 8
        first = 0 if index == big_index else rng.randrange(POOL)
        results, findings, verdict = make_results(rng, run_id, size, first, shards, clock.now)
        tests = len({r.node_id for r in results})
        plan = [ShardRecord(s, tests // shards, 60.0) for s in range(shards)]
        store.start_run(run_id, total_tests=tests, estimated_makespan_s=60.0, shards=plan)
        for s in range(shards):
            store.shard_started(
                run_id, s, worker=f"w{s % 32}", started_at=clock.now, machine=MACHINES[s % 8]
            )
        for at in range(0, len(results), CHUNK):
            store.record_results(results[at : at + CHUNK])
        for s in range(shards):
            store.shard_finished(run_id, s, finished_at=clock.now + 55.0)
        clock.now += 70.0
        store.finish_run(run_id, verdict=verdict, findings=findings)
        done += len(results)
        if index == big_index:
            big_run = run_id
        if index % 20 == 0:
            print(f"  {index + 1}/{runs} runs, {done:,} attempts", file=sys.stderr, flush=True)
    for name in sorted({node_id(i) for i in range(0, POOL, 997)})[:20]:
        store.quarantine.add("app", name, reason="flaky", owner="ann", actor="bench")
    clock.now = start_time + SPAN_DAYS * DAY_S
    return big_run


def median_ms(call: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        call()
        times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times)


def measure(store: ResultStore, big_run: str, repeat: int) -> list[tuple[str, float]]:
    board = store.dashboard
    pages = [board.changes(limit=50)]
    while pages[-1].next_cursor is not None:
        pages.append(board.changes(limit=50, cursor=pages[-1].next_cursor))
    deep = pages[-2].next_cursor if len(pages) > 1 else None
    change = store.get_run(big_run).change
    assert change is not None
    busy = node_id(50_123)  # in the big run and in many others

    def run_page() -> None:
        board.run_progress(big_run)
        board.run_shards(big_run)
        board.run_failures(big_run, limit=50)
        board.run_slowest(big_run, limit=20)
        board.run_failure_groups(big_run)
        board.run_failing_shards(big_run)
        board.run_retry_links(big_run)

    def test_page() -> None:
        board.test_runs("app", busy, limit=50)
        board.test_overview("app", busy)

    reads: list[tuple[str, Callable[[], object]]] = [
        ("changes, page 1", lambda: board.changes(limit=50)),
        (f"changes, page {len(pages)} (last, by cursor)", lambda: board.changes(cursor=deep)),
        ("changes, repository+branch", lambda: board.changes(repository="acme/app", branch="main")),
        ("changes, verdict=flaky", lambda: board.changes(verdict=Verdict.FLAKY)),
        ("change of the 100k run", lambda: board.change(change.repository, change.commit_sha)),
        ("run: progress", lambda: board.run_progress(big_run)),
        ("run: shards", lambda: board.run_shards(big_run)),
        ("run: failures page 1", lambda: board.run_failures(big_run, limit=50)),
        ("run: 20 slowest", lambda: board.run_slowest(big_run, limit=20)),
        ("run: failure groups (exact)", lambda: board.run_failure_groups(big_run)),
        ("run: failing shards", lambda: board.run_failing_shards(big_run)),
        ("run: retry links", lambda: board.run_retry_links(big_run)),
        ("run page (all seven)", run_page),
        ("test: runs page 1", lambda: board.test_runs("app", busy, limit=50)),
        ("test: overview", lambda: board.test_overview("app", busy)),
        ("test page (both)", test_page),
        ("flaky tests, 7 days", lambda: board.flaky_tests("app", limit=50)),
        ("slowest tests, 7 days", lambda: board.slowest_tests("app", limit=50)),
        ("duration changes, 7 days", lambda: board.duration_changes("app", limit=50)),
    ]
    return [(name, median_ms(call, repeat)) for name, call in reads]


PAGE_BYTES_MAX = 2 * 1024 * 1024  # the run page's HTML, whatever the run's size


def measure_pages(store: ResultStore, big_run: str, repeat: int) -> list[tuple[str, float]]:
    """Whole pages as the server answers them: the real app in-process (routing, the
    store's reads, rendering, the answer's bytes), no socket. Each page must answer
    200; the run page's HTML must stay under PAGE_BYTES_MAX."""
    from fastapi.testclient import TestClient

    from farm.core.server_config import ServerConfig
    from farm.server.app import ServerParts, create_app

    parts = ServerParts(
        ServerConfig(), store.deliveries, lambda request: None, live_workers=tuple, store=store
    )
    client = TestClient(create_app(parts))
    change = store.get_run(big_run).change
    assert change is not None
    group = client.get(f"/api/runs/{big_run}").json()["failure_groups"][0]
    busy = urlencode({"project": "app", "node_id": node_id(50_123)})
    urls = [
        ("page: /changes", "/changes"),
        ("page: change of the 100k run", f"/changes/{change.commit_sha}"),
        ("page: run of 100k tests (HTML)", f"/runs/{big_run}"),
        ("page: run of 100k tests (JSON)", f"/api/runs/{big_run}"),
        ("page: run's timeline.svg", f"/runs/{big_run}/timeline.svg"),
        (f"page: largest failure group ({group['count']})", group["url"]),
        ("page: a test's history", f"/tests?{busy}"),
        ("page: flaky tests", "/flaky?project=app"),
        ("page: slowest tests", "/slowest?project=app"),
        ("page: duration changes", "/durations?project=app"),
        ("page: workers (machines, 24 h)", "/workers"),
    ]
    sizes: dict[str, int] = {}

    def get(name: str, url: str) -> None:
        answer = client.get(url)
        if answer.status_code != 200:
            raise SystemExit(f"{url} answered {answer.status_code}: {answer.text[:200]}")
        sizes[name] = len(answer.content)

    timed = [(name, median_ms(partial(get, name, url), repeat)) for name, url in urls]
    for name, _ in urls:
        print(f"  {name:<40} {sizes[name] / 1024:8.0f} KiB")
    run_html = sizes["page: run of 100k tests (HTML)"]
    if run_html > PAGE_BYTES_MAX:
        raise SystemExit(f"the run page is {run_html:,} bytes, over {PAGE_BYTES_MAX:,}")
    return timed


@contextmanager
def postgres_database(server_url: str) -> Iterator[str]:
    """A database made for this benchmark on ``server_url``'s server, dropped after."""
    from sqlalchemy import create_engine

    from farm.store.urls import database_url

    admin = create_engine(database_url(server_url), isolation_level="AUTOCOMMIT")
    name = f"farm_bench_{uuid.uuid4().hex[:12]}"
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield database_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def bench(url: str, label: str, args: argparse.Namespace) -> list[tuple[str, float]]:
    clock = Clock()
    with ResultStore.open(url, clock=clock) as store:
        began = time.perf_counter()
        big_run = fill(store, clock, attempts=args.attempts, runs=args.runs, big=args.big)
        filled_s = time.perf_counter() - began
        analyze = "VACUUM ANALYZE" if url.startswith("postgresql") else "ANALYZE"
        from sqlalchemy import create_engine

        from farm.store.urls import database_url

        engine = create_engine(database_url(url), isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            connection.exec_driver_sql(analyze)
        engine.dispose()
        print(f"{label}: filled {args.attempts:,} attempts in {filled_s:.0f} s", flush=True)
        reads = measure(store, big_run, args.repeat)
        print(f"{label}: page sizes", flush=True)
        return reads + measure_pages(store, big_run, args.repeat)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--attempts", type=int, default=2_000_000)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--big", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--budget-ms", type=float, default=200.0)
    parser.add_argument("--pg", default=os.environ.get("FARM_TEST_DATABASE_URL"))
    parser.add_argument("--no-sqlite", action="store_true")
    args = parser.parse_args(argv)
    if args.runs < 2 or args.big < 1 or args.attempts < args.big * 2:
        parser.error("need --runs 2 or more and --attempts at least twice --big")
    tables: dict[str, list[tuple[str, float]]] = {}
    if not args.no_sqlite:
        with tempfile.TemporaryDirectory(prefix="farm-bench-") as folder:
            tables["SQLite"] = bench(f"sqlite:///{Path(folder) / 'farm.db'}", "SQLite", args)
    if args.pg:
        with postgres_database(args.pg) as url:
            tables["PostgreSQL"] = bench(url, "PostgreSQL", args)
    over = []
    budgeted = {
        "changes, page 1", "run page (all seven)", "test page (both)", "flaky tests, 7 days",
        "page: /changes", "page: run of 100k tests (HTML)", "page: run of 100k tests (JSON)",
        "page: a test's history", "page: flaky tests",
    }  # fmt: skip
    for label, rows in tables.items():
        print(f"\n{label}: median of {args.repeat}, ms (budget {args.budget_ms:.0f})")
        for name, ms in rows:
            flag = "  OVER" if ms > args.budget_ms else ""
            held = "*" if name in budgeted else " "
            print(f"{held} {name:<40} {ms:8.1f}{flag}")
            if ms > args.budget_ms and name in budgeted:
                over.append(f"{label} {name}")
    if over:
        print(f"\nover budget: {', '.join(over)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
