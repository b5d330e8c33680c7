"""``farm run``: collect (or guess), plan, dispatch, supervise, decide.

A *cold* run (nothing cached for this request) collects the suite with pytest, then
plans and dispatches. A *warm* run dispatches shards planned on what the same
request collected last time at once, and settles on the real collection without
collecting everything twice (see :mod:`farm.run.settler`). Either way the run is
one :class:`~farm.run.conduct.OpenRun`; this module only decides which tests it
starts with and when its collection is known.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import NoReturn, TextIO

from farm.core.domain import Collection, Verdict
from farm.core.errors import CollectionError, FarmError, NoTestsCollected, UsageError
from farm.core.project import project_line, project_name, pytest_rootdir
from farm.core.pytest_options import PYTEST_TIMEOUT_ENV
from farm.core.seeds import new_seed, seed_lines, wants_last, with_seed
from farm.core.settings import Settings
from farm.run.conduct import OpenRun, RunParts, run_parts
from farm.run.coverage_report import RunCoverage, require_coverage
from farm.run.embedded import LocalWorkers
from farm.run.ledger import RunLedger
from farm.run.planner import Planner
from farm.run.publish import CodeRef, discard, publish, snapshot_root
from farm.run.records import settings_record, shard_template
from farm.run.request import Finished, RunRequest
from farm.run.rerun import read_past
from farm.scheduler.collect import collect
from farm.scheduler.last_failed import choose
from farm.scheduler.stepwise import stop_after
from farm.store.collections import request_key


def execute(
    settings: Settings,
    request: RunRequest,
    *,
    url: str,
    local: LocalWorkers | None,
    out: TextIO = sys.stdout,
    clock: Callable[[], float] = time.monotonic,
) -> Finished:
    """Run the suite on the farm at broker ``url`` and return its verdict.

    ``local`` are the workers this run started (embedded mode), watched for life.
    Raises :class:`FarmError`.
    """
    with (
        ThreadPoolExecutor(max_workers=2) as pool,
        run_parts(settings, url=url, local=local, out=out, clock=clock) as parts,
    ):
        code: CodeRef | None = None
        try:
            if request.rev is not None:
                code, request = _publish_revision(parts, request)
            # The seed farm adds is not the request's: a warm run stays warm.
            key = request_key(str(request.cwd), request.paths, _asked(request))
            guess = parts.store.collection_cache.load(key)
            seed = new_seed()
            if guess is None:
                collection = _collected(parts, request, code, _collect(pool, request, seed))
                seeded = _seeded(parts, request, code, collection, seed)
                if seeded.options.seed != collection.options.seed:
                    # pytest-randomly's last, known only now: the collection must see
                    # the run's seed too (a test may draw its parameters at import).
                    collecting = _collect(pool, request, seeded.options.seed)
                    collection = _collected(parts, request, code, collecting)
                code = code or _publish_tree(parts, request, collection)
                with _open(parts, request, collection, code, settled=True) as run:
                    parts.store.collection_cache.save(key, collection)
                    return run.finish(collection)
            code = code or _publish_tree(parts, request, guess)
            guess = _seeded(parts, request, code, guess, seed)
            with _open(parts, request, guess, code, settled=False) as run:
                try:
                    collection = run.settle(guess, pool)
                except (CollectionError, NoTestsCollected):
                    raise  # the run is already ended with its verdict
                except FarmError as e:
                    # Ended before its collection settled: judged on what it expected.
                    return run.finish(guess, failed=str(e))
                if not run.session.tracker.stopped:  # then it holds only what ran
                    parts.store.collection_cache.save(key, collection)
                return run.finish(collection)
        finally:
            if code is not None:
                discard(code)


def _open(
    parts: RunParts, request: RunRequest, collection: Collection, code: CodeRef | None, *,
    settled: bool,
) -> OpenRun:  # fmt: skip
    """Record a new run of ``collection``'s tests and hand out its first shards."""
    settings = parts.settings
    require_coverage(collection.options.coverage)  # --cov in the ini file's addopts
    project = _project(parts, request, code, Path(collection.rootdir))
    print(project_line(project), file=sys.stderr)
    for line in seed_lines(collection.options):
        print(line, file=sys.stderr)
    planner = Planner.for_settings(settings, parts.store.history(project))
    # --lf, --ff, --nf, --sw: narrowed as pytest would, from farm's store.
    known = planner.history.test_duration_s
    past = read_past(parts.store, project, collection.options, known=known)
    chosen = choose(collection, past)
    for line in chosen.lines:
        print(line, file=sys.stderr)
    collection = chosen.collection
    if not collection.node_ids:
        _nothing_left(parts, request, code, project, collection)
    if chosen.stepwise is not None:
        plan = planner.plan_in_order(collection.node_ids)
    else:
        first_tests = _failed_last_time(parts, request, project) | chosen.first
        plan = planner.plan_first(collection.node_ids, first_tests)
    ledger = RunLedger.create(
        parts.store,
        project=project,
        settings=settings_record(settings, request, collection, code),
        change=request.change,
        snapshot_digest=code.digest if code is not None else None,
        trigger=request.trigger,
    )
    template = shard_template(settings, ledger.run_id, request.pytest_args, collection, code)
    first = planner.tasks(plan, template)
    total = len(collection.node_ids)
    ledger.start(first, total_tests=total)
    coverage = _coverage(settings, request, collection, code, ledger.run_id)
    try:
        run = OpenRun(
            parts, request=request, ledger=ledger, planner=planner, code=code,
            first=first, total_tests=total, settled=settled,
            max_failures=stop_after(collection.options)[0],
            verbosity=collection.options.verbose, rootdir=collection.rootdir,
            coverage=coverage, past=past, chosen=chosen,
        )  # fmt: skip
    except BaseException:
        if coverage is not None:
            coverage.close()
        raise
    run.start()
    return run


def _nothing_left(
    parts: RunParts, request: RunRequest, code: CodeRef | None, project: str,
    collection: Collection,
) -> NoReturn:  # fmt: skip
    """Record and raise a run that owes no test (``--lf --lfnf=none`` with no known
    failure: pytest deselects every test and exits 5)."""
    ledger = RunLedger.create(
        parts.store,
        project=project,
        settings=settings_record(parts.settings, request, collection, code),
        change=request.change,
        trigger=request.trigger,
    )
    message = f"no tests to run: {collection.deselected} deselected"
    ledger.finish(Verdict.NO_TESTS, message)
    raise NoTestsCollected(message)


def _coverage(
    settings: Settings, request: RunRequest, collection: Collection, code: CodeRef | None,
    run_id: str,
) -> RunCoverage | None:  # fmt: skip
    """The run's coverage, if it measures any: workers' paths map to the tree
    published (a ``--rev`` run's checkout), else to the rootdir they share."""
    if not collection.options.coverage:
        return None
    return RunCoverage(
        collection.options,
        cwd=request.cwd,
        out_dir=Path.cwd(),
        local_root=str(code.local_root) if code is not None else collection.rootdir,
        work_dir=settings.state_dir / f"coverage-{run_id}",
    )


def _asked(request: RunRequest) -> tuple[str, ...]:
    """What the request asks of pytest, for the collection cache: its options, and
    pytest-timeout's variable when set (its limit is carried from the collection)."""
    timeout = request.env.get(PYTEST_TIMEOUT_ENV)
    return (
        request.pytest_args
        if timeout is None
        else (*request.pytest_args, f"{PYTEST_TIMEOUT_ENV}={timeout}")
    )


def _collect(pool: ThreadPoolExecutor, request: RunRequest, seed: int | None) -> Future[Collection]:
    return pool.submit(
        collect, request.paths, request.pytest_args, cwd=request.cwd, env=request.env, seed=seed,
        test_user=request.test_user,
    )  # fmt: skip


def _seeded(
    parts: RunParts, request: RunRequest, code: CodeRef | None, collection: Collection, seed: int
) -> Collection:
    """``collection`` with the run's seed for the plugins that shuffle tests (see
    :mod:`farm.core.seeds`): ``seed``, or for pytest-randomly's ``last`` the seed
    the project's previous run used."""
    options = collection.options
    last = None
    if wants_last(options):
        last = parts.store.last_seed(_project(parts, request, code, Path(collection.rootdir)))
    return dataclasses.replace(collection, options=with_seed(options, new=seed, last=last))


def _failed_last_time(parts: RunParts, request: RunRequest, project: str) -> frozenset[str]:
    """Tests that failed in the previous run of the change's branch: they go first."""
    change = request.change
    if change is None or not change.branch:
        return frozenset()
    return frozenset(parts.store.previous_failures(project, change.branch, before_run=""))


def _collected(
    parts: RunParts, request: RunRequest, code: CodeRef | None, collecting: Future[Collection]
) -> Collection:
    """The cold run's collection; a failed one is recorded as a run that ended so."""
    try:
        return collecting.result()
    except (CollectionError, NoTestsCollected) as e:
        verdict = Verdict.NO_TESTS if isinstance(e, NoTestsCollected) else Verdict.ERROR
        # Nothing was collected: the rootdir is the one pytest would have chosen.
        rootdir = pytest_rootdir(request.paths, request.cwd)
        ledger = RunLedger.create(
            parts.store,
            project=_project(parts, request, code, rootdir),
            settings=settings_record(parts.settings, request, None, code),
            change=request.change,
        )
        ledger.finish(verdict, str(e))
        raise


def _project(parts: RunParts, request: RunRequest, code: CodeRef | None, rootdir: Path) -> str:
    # A revision's checkout is named by digest; its history is the project's own.
    if code is not None and request.rev is not None:
        rootdir = code.root / rootdir.resolve().relative_to(code.local_root)
    return project_name(parts.settings.project, rootdir)


def _publish_revision(parts: RunParts, request: RunRequest) -> tuple[CodeRef, RunRequest]:
    """Pack the commit; the request then collects from its checkout, not the disk."""
    settings = parts.settings
    if not settings.snapshots_on(rev=request.rev):
        raise UsageError("--rev needs code snapshots: drop --snapshot off")
    root = snapshot_root(request.cwd, None)
    code = publish(root, settings=settings, client=parts.client, rev=request.rev)
    cwd = code.local_root / request.cwd.resolve().relative_to(root)
    if not cwd.is_dir():
        discard(code)
        raise UsageError(f"{request.cwd} does not exist in revision {request.rev}")
    return code, dataclasses.replace(request, cwd=cwd)


def _publish_tree(parts: RunParts, request: RunRequest, collection: Collection) -> CodeRef | None:
    """The snapshot of the tree under test, when workers need one."""
    if not parts.settings.snapshots_on():
        return None
    root = snapshot_root(request.cwd, Path(collection.rootdir))
    return publish(root, settings=parts.settings, client=parts.client)
