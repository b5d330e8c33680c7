"""``farm run --resume RUN_ID``: continue a run whose scheduler died, from the database.

The store holds what the dead scheduler dispatched (each shard's node ids), the
final results it stored, and the run's settings (paths, pytest options, rootdir,
snapshot). A run is resumable once it is abandoned: marked so by the store when
its scheduler's heartbeat is older than ``run_deadline_s`` (every ``farm run``
checks). The tests without a final result are planned and dispatched again as
new shards of the same run; results of the old shards that arrive late are
ignored (their shards are over), and the verdict covers every test the run was
given. The run is the same :class:`~farm.run.conduct.OpenRun` a new run is.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TextIO

from farm.core.domain import Collection, RunState
from farm.core.errors import UsageError
from farm.core.project import project_line
from farm.core.pytest_options import PytestOptions
from farm.core.settings import Settings
from farm.run.conduct import OpenRun, RunParts, run_parts
from farm.run.embedded import LocalWorkers
from farm.run.ledger import RunLedger
from farm.run.planner import Planner, Shards
from farm.run.publish import CodeRef, republish
from farm.run.records import shard_template
from farm.run.request import Finished, RunRequest
from farm.store.records import RunRecord

SUPERSEDED = 1 << 30  # a lease no task of the dead scheduler can carry


def resume(
    settings: Settings,
    run_id: str,
    *,
    url: str,
    local: LocalWorkers | None,
    out: TextIO = sys.stdout,
    clock: Callable[[], float] = time.monotonic,
) -> Finished:
    """Continue the abandoned run ``run_id`` on the farm at ``url``; its verdict."""
    with run_parts(settings, url=url, local=local, out=out, clock=clock) as parts:
        run = parts.store.get_run(run_id)
        _check_resumable(run, settings)
        shards = parts.store.load_run_tests(run_id)
        record = run.settings
        rootdir = record.get("rootdir")
        if not shards or not isinstance(rootdir, str):
            raise UsageError(f"run {run_id} cannot be resumed: it dispatched no shard")
        request = RunRequest(
            paths=tuple(str(p) for p in _list(record, "paths")),
            pytest_args=tuple(str(a) for a in _list(record, "pytest_args")),
            cwd=Path(str(record.get("cwd") or ".")),
            env=dict(os.environ),
        )
        print(project_line(run.project), file=sys.stderr)
        code = _code(parts, run)
        collected = tuple(dict.fromkeys(n for ids in shards.values() for n in ids))
        final = parts.store.final_results(run_id)
        owed = tuple(n for n in collected if n not in final)
        collection = Collection(
            rootdir, str(record.get("inifile") or ""), collected, options=_options(record)
        )
        ledger = RunLedger.reopen(parts.store, run_id, run.project)
        planner = Planner.for_settings(
            settings, parts.store.history(run.project), first_shard_id=max(shards) + 1
        )
        # With nothing owed the plan is only an estimate for the report: no shard goes out.
        plan = planner.plan(owed or collected[:1])
        template = shard_template(settings, run_id, request.pytest_args, collection, code)
        first = planner.tasks(plan, template) if owed else Shards(plan, ())
        if first.tasks:
            ledger.add(first, total_tests=len(collected))
        with OpenRun(
            parts, request=request, ledger=ledger, planner=planner, code=code,
            first=first, total_tests=len(collected), settled=False,
        ) as resumed:  # fmt: skip
            for shard_id in shards:
                # The dead scheduler's shards still queued are not worth running now.
                resumed.supervision.on_reissue(shard_id, SUPERSEDED)
            resumed.session.tracker.preload(shards, final)
            resumed.session.settle(collected)
            for result in final.values():
                resumed.progress.add(result, 0.0)
            resumed.start()
            return resumed.finish(collection)


def _check_resumable(run: RunRecord, settings: Settings) -> None:
    if run.state is RunState.ABANDONED:
        return
    if run.state is RunState.RUNNING:
        seen = time.time() - (run.heartbeat_at or run.created_at)
        raise UsageError(
            f"run {run.run_id} is still running: its scheduler was alive {seen:.0f}s ago; "
            f"a run can be resumed after {settings.run_deadline_s:g}s of silence"
        )
    verdict = run.verdict.value if run.verdict else "none"
    raise UsageError(
        f"run {run.run_id} is {run.state.value} (verdict {verdict}): nothing to resume"
    )


def _options(record: Mapping[str, object]) -> PytestOptions:
    """The options the run was started with (its seed, its time limits); none for a
    run recorded before they were kept."""
    facts = record.get("pytest_options")
    try:
        return PytestOptions.from_facts(facts if isinstance(facts, dict) else {})
    except (TypeError, ValueError):
        return PytestOptions()


def _list(record: Mapping[str, object], key: str) -> list[object]:
    value = record.get(key)
    return list(value) if isinstance(value, list | tuple) else []


def _code(parts: RunParts, run: RunRecord) -> CodeRef | None:
    """The run's snapshot, put back in the store from the submitter's copy if it is gone."""
    record = run.settings
    digest = record.get("snapshot")
    if not isinstance(digest, str):
        return None
    settings = parts.settings
    root = Path(str(record.get("code_root")))
    archive = settings.state_dir / "snapshots" / f"{digest}.tar.gz"
    code = CodeRef(
        digest=digest,
        location=str(record.get("artifacts") or settings.artifacts),
        root=root,
        local_root=root,
        size_bytes=int(str(record.get("snapshot_bytes") or 0)),
        uploaded_bytes=0,
        pack_s=0.0,
        upload_s=0.0,
        archive=archive,
    )
    if archive.is_file():
        republish(code, settings=settings, client=parts.client)
    return code
