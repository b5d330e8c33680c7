"""``farm run --resume RUN_ID``: continue a run whose scheduler died, from the database.

The store holds what the dead scheduler dispatched (each shard's node ids), the
final results it stored, and the run's settings (paths, pytest options, rootdir,
snapshot). A run is resumable once it is abandoned: marked so by
:func:`farm.store.recovery.mark_abandoned` when its scheduler's heartbeat is older
than ``run_deadline_s`` (every ``farm run`` checks). The tests without a final
result are planned and dispatched again as new shards of the same run; results
of the old shards that arrive late are ignored (their shards are over), and the
verdict covers every test the run was given.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TextIO

from farm.core import broker
from farm.core.domain import Collection, RunState
from farm.core.errors import UsageError
from farm.core.settings import Settings
from farm.run.driver import Finished, RunDriver, RunRequest
from farm.run.embedded import LocalWorkers
from farm.run.publish import CodeRef, republish
from farm.store import ResultStore
from farm.store.records import RunRecord
from farm.store.recovery import load_run_tests, mark_abandoned, reopen_run


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
    client = broker.connect(url, timeout_s=settings.broker_timeout_s)
    try:
        with ResultStore.open(settings.database_url_or_default) as store:
            mark_abandoned(store, deadline_s=settings.run_deadline_s)
            run = store.get_run(run_id)
            _check_resumable(run, settings)
            record = run.settings
            request = RunRequest(
                paths=tuple(str(p) for p in _list(record, "paths")),
                pytest_args=tuple(str(a) for a in _list(record, "pytest_args")),
                cwd=Path(str(record.get("cwd") or ".")),
                env=dict(os.environ),
            )
            driver = ResumedRun(settings, request, store, client, url, local, out, clock)
            return driver.resume(run)
    finally:
        client.close()


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


def _list(record: Mapping[str, object], key: str) -> list[object]:
    value = record.get(key)
    return list(value) if isinstance(value, list | tuple) else []


SUPERSEDED = 1 << 30  # a lease no task of the dead scheduler can carry


class ResumedRun(RunDriver):
    """A run driver that picks up an abandoned run instead of starting one."""

    def resume(self, run: RunRecord) -> Finished:
        record = run.settings
        shards = load_run_tests(self.store, run.run_id)
        rootdir = record.get("rootdir")
        if not shards or not isinstance(rootdir, str):
            raise UsageError(f"run {run.run_id} cannot be resumed: it dispatched no shard")
        self.run_id = run.run_id
        self.use_project(run.project)
        self.code = self._code(run)
        collected = tuple(dict.fromkeys(n for ids in shards.values() for n in ids))
        final = self.store.final_results(run.run_id)
        owed = tuple(n for n in collected if n not in final)
        collection = Collection(rootdir, str(record.get("inifile") or ""), collected)
        reopen_run(self.store, run.run_id)
        self.next_shard_id = max(shards) + 1
        try:
            plan = self._plan(owed if owed else collected[:1])
            tasks = self._tasks(plan, collection) if owed else []
            if tasks:
                self._add_shards(plan, tasks, total_tests=len(collected))
            session = self._open_session(tasks, total=len(collected), settled=False)
            for shard_id in shards:
                # The dead scheduler's shards still queued are not worth running now.
                self.supervision.on_reissue(shard_id, SUPERSEDED)
            session.tracker.preload(shards, final)
            session.settle(collected)
            for result in final.values():
                self.progress.add(result, 0.0)
            session.start()
            return self._finish(collection, plan, session)
        finally:
            self.supervision.end()
            self.dispatcher.close()

    def _code(self, run: RunRecord) -> CodeRef | None:
        """The run's snapshot, put back in the store from the submitter's copy if it is gone."""
        record = run.settings
        digest = record.get("snapshot")
        if not isinstance(digest, str):
            return None
        root = Path(str(record.get("code_root")))
        archive = self.settings.state_dir / "snapshots" / f"{digest}.tar.gz"
        code = CodeRef(
            digest=digest,
            location=str(record.get("artifacts") or self.settings.artifacts),
            root=root,
            local_root=root,
            size_bytes=int(str(record.get("snapshot_bytes") or 0)),
            uploaded_bytes=0,
            pack_s=0.0,
            upload_s=0.0,
            archive=archive,
        )
        if archive.is_file():
            republish(code, settings=self.settings, client=self.client)
        return code
