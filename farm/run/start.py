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
from typing import TextIO

from farm.core.domain import Collection, Verdict
from farm.core.errors import CollectionError, FarmError, NoTestsCollected, UsageError
from farm.core.project import project_line, project_name, pytest_rootdir
from farm.core.settings import Settings
from farm.run.conduct import OpenRun, RunParts, run_parts
from farm.run.embedded import LocalWorkers
from farm.run.ledger import RunLedger
from farm.run.planner import Planner
from farm.run.publish import CodeRef, discard, publish, snapshot_root
from farm.run.records import settings_record, shard_template
from farm.run.request import Finished, RunRequest
from farm.scheduler.collect import collect
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
            key = request_key(str(request.cwd), request.paths, request.pytest_args)
            guess = parts.store.load_collection(key)
            if guess is None:
                collecting = pool.submit(
                    collect, request.paths, request.pytest_args, cwd=request.cwd, env=request.env
                )
                collection = _collected(parts, request, code, collecting)
                code = code or _publish_tree(parts, request, collection)
                with _open(parts, request, collection, code, settled=True) as run:
                    parts.store.save_collection(key, collection)
                    return run.finish(collection)
            code = code or _publish_tree(parts, request, guess)
            with _open(parts, request, guess, code, settled=False) as run:
                try:
                    collection = run.settle(guess, pool)
                except (CollectionError, NoTestsCollected):
                    raise  # the run is already ended with its verdict
                except FarmError as e:
                    # Ended before its collection settled: judged on what it expected.
                    return run.finish(guess, failed=str(e))
                parts.store.save_collection(key, collection)
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
    project = _project(parts, request, code, Path(collection.rootdir))
    print(project_line(project), file=sys.stderr)
    planner = Planner.for_settings(settings, parts.store.history(project))
    plan = planner.plan_first(collection.node_ids, _failed_last_time(parts, request, project))
    ledger = RunLedger.create(
        parts.store,
        project=project,
        settings=settings_record(settings, request, collection, code),
        change=request.change,
        snapshot_digest=code.digest if code is not None else None,
    )
    template = shard_template(settings, ledger.run_id, request.pytest_args, collection, code)
    first = planner.tasks(plan, template)
    total = len(collection.node_ids)
    ledger.start(first, total_tests=total)
    run = OpenRun(
        parts, request=request, ledger=ledger, planner=planner, code=code,
        first=first, total_tests=total, settled=settled,
        max_failures=collection.options.maxfail,
    )  # fmt: skip
    run.start()
    return run


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
