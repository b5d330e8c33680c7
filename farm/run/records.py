"""What a run hands out and writes down: the template of its shard tasks, the records
the store keeps of its shards and settings, and the summaries it reports.

Pure functions of the run's settings, request, collection and published code: the
parts that drive a run (:mod:`farm.run.planner`, :mod:`farm.run.ledger`,
:mod:`farm.run.conduct`) decide when, these say what.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Iterable, Sequence

from farm.core.domain import Collection, Outcome, RunSummary, ShardTimeline, TestResult, Verdict
from farm.core.errors import CollectionError
from farm.core.pytest_options import PytestOptions
from farm.core.pytest_report import Place, PytestReport, ResultDetail
from farm.core.seeds import seed_args
from farm.core.settings import Settings
from farm.core.shard_task import ShardTask
from farm.run.publish import CodeRef, relative_to_code
from farm.run.request import RunRequest
from farm.scheduler.plan import Plan
from farm.store import ShardRecord, ShardView


def shard_template(
    settings: Settings,
    run_id: str,
    pytest_args: tuple[str, ...],
    collection: Collection,
    code: CodeRef | None,
) -> ShardTask:
    """What every shard task of the run carries, with no shard id and no tests yet:
    with the run's seed, as the shuffling plugins' own options, and pytest-timeout's
    limit as the collection resolved them."""
    template = ShardTask(
        run_id=run_id,
        shard_id=0,
        lease=1,
        rootdir=collection.rootdir,
        node_ids=(),
        pytest_args=(*pytest_args, *seed_args(collection.options)),
        inifile=collection.inifile,
        result_limit_bytes=settings.result_limit_bytes,
        heartbeat_s=settings.heartbeat_s,
        test_timeout_s=settings.test_timeout_s,
        memory_limit_bytes=settings.test_memory_limit_bytes,
        coverage=collection.options.coverage,
        pytest_timeout_s=collection.options.timeout_s,
    )
    if code is not None:
        # Workers elsewhere: paths relative to the snapshot, and how to get it.
        template = dataclasses.replace(
            template,
            rootdir=relative_to_code(code, collection.rootdir, "rootdir") or ".",
            inifile=relative_to_code(code, collection.inifile, "ini file"),
            snapshot=code.digest,
            artifacts=code.location,
            snapshot_max_bytes=settings.snapshot_max_bytes,
            setup_command=settings.setup_command,
            setup_files=settings.setup_files if settings.setup_command else (),
        )
    return template


def shard_records(plan: Plan, tasks: Sequence[ShardTask]) -> list[ShardRecord]:
    """The store's record of each task's shard: its id, size and estimate."""
    return [
        ShardRecord(task.shard_id, len(task.node_ids), shard.estimate_s)
        for task, shard in zip(tasks, plan.shards, strict=True)
    ]


def settings_record(
    settings: Settings,
    request: RunRequest,
    collection: Collection | None,
    code: CodeRef | None,
) -> dict[str, object]:
    """What the store keeps of a run's settings: no URLs, so no credentials; with
    what ``--resume`` needs to dispatch its shards again."""
    return {
        "cwd": str(request.cwd),
        "rootdir": collection.rootdir if collection else None,
        "inifile": collection.inifile if collection else None,
        "code_root": str(code.local_root) if code else None,
        "artifacts": code.location if code else None,
        "rev": request.rev,
        "snapshot": code.digest if code else None,
        "snapshot_bytes": code.size_bytes if code else None,
        "uploaded_bytes": code.uploaded_bytes if code else None,
        "paths": list(request.paths),
        "pytest_args": list(request.pytest_args),
        # The options pytest resolved (the run's seed among them): what --resume
        # runs with, and where a later run finds the seed pytest-randomly's last means.
        "pytest_options": collection.options.to_facts() if collection else None,
        "workers": settings.workers,
        "strategy": settings.strategy,
        "embedded_broker": settings.broker_url is None,
        "pid": os.getpid(),
    }


def collection_failed(error: CollectionError, *, workers: int, started_at: float) -> RunSummary:
    """The summary of a run whose collection failed: one error per module that did
    not collect and one skip per module that skipped itself, as pytest counts and
    reports them, and nothing run."""
    now = time.time()
    results = tuple(
        _collected(where, Outcome.ERROR, longrepr, _collect_error(where, longrepr, message), now)
        for (where, longrepr), message in zip(
            error.failed, (*error.messages, *[None] * len(error.failed)), strict=False
        )
    )
    skipped = tuple(
        _collected(node_id, Outcome.SKIPPED, reason, _collect_skip(path, lineno, reason), now)
        for node_id, path, lineno, reason in error.skipped
    )
    return RunSummary(
        run_id="",
        verdict=Verdict.ERROR,
        collected=0,
        results=(*skipped, *results),
        missing=(),
        makespan_s=now - started_at,
        estimated_makespan_s=0.0,
        workers=workers,
        message=f"collection failed: {error}",
        options=error.options or PytestOptions(),
        started_at=started_at,
        finished_at=now,
        collection_errors=max(len(results), 1),
    )


def _collected(
    node_id: str, outcome: Outcome, longrepr: str, detail: ResultDetail, now: float
) -> TestResult:
    """What collecting made of ``node_id`` (an error or a skip), counted as pytest does."""
    return TestResult(
        run_id="",
        shard_id=-1,
        lease=0,
        node_id=node_id,
        outcome=outcome,
        duration_s=0.0,
        longrepr=longrepr,
        started_at=now,
        finished_at=now,
        tally=((outcome.value, 1),),
        detail=detail,
    )


def _collect_error(where: str, longrepr: str, message: str | None) -> ResultDetail:
    """pytest's ``ERROR collecting`` entry of a module that failed to collect."""
    head = where.split("::", 1)[0]
    report = PytestReport("error", "collect", "ERROR", head, message=message, text=f"{longrepr}\n")
    return ResultDetail(reports=(report,))


def _collect_skip(path: str, lineno: int | None, reason: str) -> ResultDetail:
    """pytest's skip of a module that skipped itself while collected."""
    where = Place(path, lineno, reason)
    report = PytestReport("skipped", "collect", "SKIPPED", message=reason, skip=where)
    return ResultDetail(reports=(report,))


def shard_timeline(shards: Iterable[ShardView]) -> tuple[ShardTimeline, ...]:
    """Who ran each shard and when, for the reports; blanks where the store has none."""
    return tuple(
        ShardTimeline(
            s.shard_id,
            s.test_count,
            s.worker or "",
            s.machine or "",
            s.started_at or 0.0,
            s.finished_at or 0.0,
        )
        for s in shards
    )
