"""``farm run``: collect, estimate, plan, dispatch, supervise, decide, report.

A *cold* run (nothing cached for this request) collects the suite with pytest, then
plans and dispatches. A *warm* run dispatches shards planned on what the same
request collected last time at once, and settles on the real collection without
collecting everything twice (see :mod:`farm.scheduler.settle`): pytest discovers the
test files without importing them, workers report what they collected of each
module they run, and only modules no worker reports are collected here. Tests the
guess lacked get shards of their own, tests it had that are gone are owed by
nobody, and a run is complete only when every collected test has a final result.

Everything the run starts (an embedded redis-server, local workers) is stopped on
the way out, whatever the way out is.
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import redis

from farm.core import broker
from farm.core.domain import Collection, RunState, RunSummary, Verdict
from farm.core.errors import (
    CollectionError,
    FarmError,
    InfrastructureError,
    NoTestsCollected,
    UsageError,
)
from farm.core.keys import Keys
from farm.core.messages import ShardTask
from farm.core.project import project_line, project_name, pytest_rootdir
from farm.core.settings import Settings
from farm.core.verdict import decide
from farm.report.progress import Progress
from farm.run.embedded import LocalWorkers
from farm.run.ledger import settings_record, shard_records, shard_tasks, shard_timeline
from farm.run.publish import CodeRef, discard, publish, snapshot_root
from farm.run.settler import Verifier
from farm.run.supervise import Supervision
from farm.scheduler.collect import collect
from farm.scheduler.dispatch import Dispatcher
from farm.scheduler.estimate import estimate
from farm.scheduler.ingest import EventReader
from farm.scheduler.plan import Plan, make_plan
from farm.scheduler.session import Recovery, RunSession
from farm.store import ResultStore
from farm.store.collections import load_collection, request_key, save_collection
from farm.store.recovery import mark_abandoned, save_shard_tests


@dataclass(frozen=True)
class RunRequest:
    """What the user asked for: paths and pytest options as given, where, with what env."""

    paths: tuple[str, ...]
    pytest_args: tuple[str, ...]
    cwd: Path
    env: Mapping[str, str]
    rev: str | None = None  # test this commit of the cwd's git repository, not the disk


@dataclass(frozen=True)
class Finished:
    """A finished run: its summary and the estimates the report compares against."""

    summary: RunSummary
    estimates_s: dict[str, float]


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
    with ThreadPoolExecutor(max_workers=2) as pool:
        client = broker.connect(url, timeout_s=settings.broker_timeout_s)
        try:
            with ResultStore.open(settings.database_url_or_default) as store:
                mark_abandoned(store, deadline_s=settings.run_deadline_s)
                driver = RunDriver(settings, request, store, client, url, local, out, clock)
                return driver.execute(pool)
        finally:
            client.close()


class RunDriver:
    """One run from the first dispatch to the stored verdict."""

    def __init__(
        self,
        settings: Settings,
        request: RunRequest,
        store: ResultStore,
        client: redis.Redis,
        url: str,
        local: LocalWorkers | None,
        out: TextIO,
        clock: Callable[[], float],
    ) -> None:
        self.settings = settings
        self.request = request
        self.store = store
        self.client = client
        self.keys = Keys(settings.key_prefix)
        self.local = local
        self.out = out
        self.clock = clock
        self.dispatcher = Dispatcher(url, key_prefix=settings.key_prefix, queue=settings.queue)
        self.run_id = ""
        self.project = ""
        self.estimates_s: dict[str, float] = {}
        self.next_shard_id = 0
        self.started_at = time.time()
        self.code: CodeRef | None = None
        self.supervision = Supervision(
            settings, client=client, store=store, local=local, clock=clock
        )

    def execute(self, pool: ThreadPoolExecutor) -> Finished:
        if self.request.rev is not None:
            self._publish_revision()
        request = self.request
        key = request_key(str(request.cwd), request.paths, request.pytest_args)
        try:
            guess = load_collection(self.store, key)
            if guess is None:
                collecting = pool.submit(
                    collect, request.paths, request.pytest_args, cwd=request.cwd, env=request.env
                )
                collection = self.collected(collecting)
                plan, session = self._begin(collection, settled=True)
            else:
                plan, session = self._begin(guess, settled=False)
                try:
                    collection = Verifier(self, session, guess, pool).settle()
                except (CollectionError, NoTestsCollected):
                    raise  # the run is already ended with its verdict
                except FarmError as e:
                    # Ended before its collection settled: judged on what it expected.
                    return self._finish(guess, plan, session, failed=str(e))
            save_collection(self.store, key, collection)
            return self._finish(collection, plan, session)
        finally:
            if self.run_id:
                self.supervision.end()
            if self.code is not None:
                discard(self.code)
            self.dispatcher.close()

    def _publish_revision(self) -> None:
        """Pack the commit, and collect it from its checkout instead of the disk."""
        if not self.settings.snapshots_on(rev=self.request.rev):
            raise UsageError("--rev needs code snapshots: drop --snapshot off")
        root = snapshot_root(self.request.cwd, None)
        self.code = publish(root, settings=self.settings, client=self.client, rev=self.request.rev)
        cwd = self.code.local_root / self.request.cwd.resolve().relative_to(root)
        if not cwd.is_dir():
            raise UsageError(f"{self.request.cwd} does not exist in revision {self.request.rev}")
        self.request = dataclasses.replace(self.request, cwd=cwd)

    def _publish_tree(self, collection: Collection) -> None:
        if self.code is None and self.settings.snapshots_on():
            root = snapshot_root(self.request.cwd, Path(collection.rootdir))
            self.code = publish(root, settings=self.settings, client=self.client)

    def collected(self, collecting: Future[Collection]) -> Collection:
        """The real collection; a failed one ends the run (if begun) with its verdict."""
        try:
            found = collecting.result()
        except (CollectionError, NoTestsCollected) as e:
            verdict = Verdict.NO_TESTS if isinstance(e, NoTestsCollected) else Verdict.ERROR
            self.abandon(verdict, str(e))
            raise
        except FarmError as e:
            if self.run_id:
                self.abandon(Verdict.ERROR, str(e))
            raise
        return found

    def abandon(self, verdict: Verdict, message: str) -> None:
        if not self.run_id:
            # Nothing was collected: the rootdir is the one pytest would have chosen.
            rootdir = pytest_rootdir(self.request.paths, self.request.cwd)
            self.run_id = self.store.create_run(
                project=self._project_of(rootdir),
                trigger="cli",
                settings=settings_record(self.settings, self.request, None, self.code),
            )
        else:
            self.client.set(self.keys.cancel(self.run_id), "1", ex=self.settings.run_ttl_s)
        self.store.finish_run(self.run_id, verdict=verdict, message=message)

    def _plan(self, node_ids: tuple[str, ...]) -> Plan:
        history = self.store.history(self.project)
        estimates = estimate(node_ids, history)
        plan = make_plan(
            node_ids,
            estimates,
            self.settings.workers,
            self.settings.strategy,
            shard_overhead_s=self.settings.shard_overhead_s,
        )
        self.estimates_s.update(estimates.test_s)
        return plan

    def _tasks(self, plan: Plan, collection: Collection) -> list[ShardTask]:
        tasks = shard_tasks(
            self.settings,
            self.run_id,
            self.request.pytest_args,
            collection,
            self.code,
            plan,
            first_id=self.next_shard_id,
        )
        self.next_shard_id += len(tasks)
        return tasks

    def _add_shards(self, plan: Plan, tasks: Sequence[ShardTask], *, total_tests: int) -> None:
        """Store shards added to a running run, with their tests."""
        self.store.add_shards(self.run_id, shard_records(plan, tasks), total_tests=total_tests)
        save_shard_tests(self.store, self.run_id, {t.shard_id: t.node_ids for t in tasks})

    def _begin(self, collection: Collection, *, settled: bool) -> tuple[Plan, RunSession]:
        self._publish_tree(collection)
        self.use_project(self._project_of(Path(collection.rootdir)))
        plan = self._plan(collection.node_ids)
        self.run_id = self.store.create_run(
            project=self.project,
            trigger="cli",
            settings=settings_record(self.settings, self.request, collection, self.code),
            snapshot_digest=self.code.digest if self.code is not None else None,
        )
        tasks = self._tasks(plan, collection)
        self.store.start_run(
            self.run_id,
            total_tests=len(collection.node_ids),
            estimated_makespan_s=plan.estimated_makespan_s,
            shards=shard_records(plan, tasks),
        )
        save_shard_tests(self.store, self.run_id, {t.shard_id: t.node_ids for t in tasks})
        session = self._open_session(
            tasks,
            total=len(collection.node_ids),
            settled=settled,
            max_failures=collection.options.maxfail,
        )
        session.start()
        return plan, session

    def _open_session(
        self, tasks: Sequence[ShardTask], *, total: int, settled: bool, max_failures: int = 0
    ) -> RunSession:
        self.progress = Progress(
            stream=self.out,
            total=total,
            estimated_total_s=sum(self.estimates_s.values()),
            workers=self.settings.workers,
            is_tty=self.out.isatty(),
            interval_s=self.settings.progress_interval_s,
        )
        session = RunSession(
            tasks=tasks,
            reader=EventReader(self.client, self.keys, self.run_id, ttl_s=self.settings.run_ttl_s),
            store=self.store,
            sender=self.dispatcher,
            progress=self.progress,
            estimates_s=self.estimates_s,
            settled=settled,
            max_failures=max_failures,
            recovery=Recovery(
                lease_s=self.settings.lease_s,
                redis_outage_s=self.settings.redis_outage_s,
                test_timeout_s=self.settings.test_timeout_s,
                worker_start_s=self.settings.worker_start_timeout_s,
            ),
            server_id=self.supervision.server_id,
            on_server_change=self.supervision.on_server_change,
            on_reissue=self.supervision.on_reissue,
            liveness=self.supervision.liveness,
            clock=self.clock,
        )
        self.begun_at = self.clock()
        self.session = session
        self.supervision.begin(self.run_id, session, self.code)
        return session

    def use_project(self, name: str) -> None:
        """Read and write the history of project ``name``, and say so."""
        self.project = name
        print(project_line(name), file=sys.stderr)

    def _project_of(self, rootdir: Path) -> str:
        # A revision's checkout is named by digest; its history is the project's own.
        if self.code is not None and self.request.rev is not None:
            rootdir = self.code.root / rootdir.resolve().relative_to(self.code.local_root)
        return project_name(self.settings.project, rootdir)

    def dispatch_more(
        self, session: RunSession, node_ids: Sequence[str], where: Collection
    ) -> None:
        """Plan and dispatch tests the run's shards do not hold yet."""
        plan = self._plan(tuple(node_ids))
        tasks = self._tasks(plan, where)
        self._add_shards(plan, tasks, total_tests=len(session.tracker.shard_of) + len(node_ids))
        session.add_tasks(tasks)

    def _finish(
        self, collection: Collection, plan: Plan, session: RunSession, *, failed: str | None = None
    ) -> Finished:
        interrupted, infra_error = False, failed
        try:
            if failed is not None:
                raise InfrastructureError(failed)
            final = session.run()
        except KeyboardInterrupt:
            self.client.set(self.keys.cancel(self.run_id), "1", ex=self.settings.run_ttl_s)
            interrupted = True
            final = dict(session.tracker.final)
        except FarmError as e:
            # The run is over: workers stop its shards instead of running them for nobody.
            with contextlib.suppress(redis.RedisError):
                self.client.set(self.keys.cancel(self.run_id), "1", ex=self.settings.run_ttl_s)
            infra_error = str(e)
            final = dict(session.tracker.final)
        finally:
            self.progress.close(self.clock())
        with contextlib.suppress(FarmError):
            session.flush(self.clock())
        makespan_s = self.clock() - self.begun_at
        collected = collection.node_ids
        if session.tracker.stopped:  # -x or --maxfail: what ran is what counts
            collected = tuple(n for n in collected if n in final)
        decision = decide(collected, final, interrupted=interrupted, infra_error=infra_error)
        state = RunState.ABANDONED if interrupted else RunState.FINISHED
        self.store.finish_run(
            self.run_id, verdict=decision.verdict, message=decision.message, state=state
        )
        results = tuple(final[n] for n in collected if n in final)
        self.store.update_history(self.project, list(results))
        summary = RunSummary(
            run_id=self.run_id,
            verdict=decision.verdict,
            collected=len(collected),
            results=results,
            missing=decision.missing,
            makespan_s=makespan_s,
            estimated_makespan_s=plan.estimated_makespan_s,
            workers=self.settings.workers,
            message=decision.message,
            started_at=self.started_at,
            finished_at=time.time(),
            shards=shard_timeline(self.store.get_shards(self.run_id)),
            code=self.code.info() if self.code is not None else None,
            deselected=collection.deselected,
            collect_warnings=collection.warnings,
            options=collection.options,
            stopped_after=session.tracker.failures if session.tracker.stopped else 0,
        )
        return Finished(summary, self.estimates_s)
