"""A run under way, and the parts every run is made of.

:func:`run_parts` opens what any run needs (the broker's Redis, the results store,
the Celery producer) and closes it on every way out. :class:`OpenRun` is one run
under way, complete when constructed: its ledger, its planner, its session with
the first shards handed in, its live progress and its supervision. ``farm run``
(:mod:`farm.run.start`) and ``farm run --resume`` (:mod:`farm.run.resume`) are two
compositions of these parts.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from types import TracebackType
from typing import TextIO

import redis

from farm.core import broker
from farm.core.domain import Collection, RunFindings, RunState, RunSummary, Verdict
from farm.core.errors import CollectionError, FarmError, InfrastructureError, NoTestsCollected
from farm.core.keys import Keys
from farm.core.quarantine import QuarantineRules
from farm.core.settings import Settings
from farm.core.shard_task import ShardTask
from farm.core.verdict import decide
from farm.report.progress import Progress
from farm.report.text import Where, terminal_width
from farm.run.coverage_report import RunCoverage, judged
from farm.run.embedded import LocalWorkers
from farm.run.ledger import RunLedger
from farm.run.order import run_order_suspects
from farm.run.planner import Planner, Shards
from farm.run.publish import CodeRef
from farm.run.records import shard_template
from farm.run.request import Finished, RunRequest
from farm.run.rerun import narrowing, owed, stepwise_end
from farm.run.settler import Settler
from farm.run.supervise import Supervision
from farm.scheduler.dispatch import Dispatcher
from farm.scheduler.follow_up import FollowUp, FollowUpPolicy, follow_up_task
from farm.scheduler.ingest import EventReader
from farm.scheduler.last_failed import Chosen, PastRuns
from farm.scheduler.session import EventSource, Recovery, RunSession
from farm.store import ResultStore


@dataclass(frozen=True)
class RunParts:
    """What any run talks to, open for as long as the run."""

    settings: Settings
    client: redis.Redis
    store: ResultStore
    dispatcher: Dispatcher
    local: LocalWorkers | None  # the workers this run started, watched for life
    out: TextIO  # where progress goes
    clock: Callable[[], float]  # monotonic seconds
    started_at: float  # unix seconds: when the run was asked for
    events: Callable[[str], EventSource]  # the results stream of the run with this id


@contextlib.contextmanager
def run_parts(
    settings: Settings,
    *,
    url: str,
    local: LocalWorkers | None,
    out: TextIO,
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[RunParts]:
    """Connect to the broker at ``url`` and open the store; runs abandoned by a dead
    scheduler are marked so first."""
    started_at = time.time()
    client = broker.connect(url, timeout_s=settings.broker_timeout_s)
    try:
        with ResultStore.open(settings.database_url_or_default) as store:
            store.mark_abandoned(deadline_s=settings.run_deadline_s)
            dispatcher = Dispatcher(url, key_prefix=settings.key_prefix, queue=settings.queue)
            try:
                keys = Keys(settings.key_prefix)
                yield RunParts(
                    settings, client, store, dispatcher, local, out, clock, started_at,
                    events=lambda run_id: EventReader(
                        client, keys, run_id, ttl_s=settings.run_ttl_s
                    ),
                )  # fmt: skip
            finally:
                dispatcher.close()
    finally:
        client.close()


class OpenRun:
    """A run under way, from its first shards to its stored verdict.

    ``first`` are the shards already in the ledger, handed
    in when the run starts. Use it as a context manager: on the way out the run is
    cancelled, so workers stop its shards.

    Failed tests are retried and new tests repeated (see
    :mod:`farm.scheduler.follow_up`) as the settings say; the project's quarantined
    tests, read when the run starts, fail no verdict."""

    def __init__(
        self,
        parts: RunParts,
        *,
        request: RunRequest,
        ledger: RunLedger,
        planner: Planner,
        code: CodeRef | None,
        first: Shards,
        total_tests: int,
        settled: bool,
        max_failures: int = 0,
        verbosity: int = 0,
        rootdir: str = "",
        coverage: RunCoverage | None = None,  # a run under --cov; closed with the run
        past: PastRuns | None = None,
        chosen: Chosen | None = None,
    ) -> None:
        settings = parts.settings
        # --lf, --ff, --nf, --sw: what the store said of earlier runs, and what the
        # run owed of its collection when it began (see farm.run.rerun).
        self.past, self.chosen = past or PastRuns(), chosen
        self.parts = parts
        self.coverage = coverage
        self.request = request
        self.ledger = ledger
        self.planner = planner
        self.code = code
        self.estimated_makespan_s = first.plan.estimated_makespan_s
        self.quarantined = parts.store.quarantine.current(ledger.project)
        # With no history at all every test is new: repeating a whole first run
        # would say nothing a single run does not.
        self.new_tests: set[str] = set()
        self._note_new(t for task in first.tasks for t in task.node_ids)
        self.follow_ups = FollowUpPolicy(
            # -x and --maxfail ask for the first failures, fast: a retry would let
            # later failures overtake them, and which ones stop the run would then
            # depend on the workers' timing.
            retries=0 if max_failures else settings.retries,
            budget_share=settings.retry_budget,
            repeat=settings.new_tests_repeat,
            new_tests=self.new_tests,
        )
        self.progress = Progress(
            stream=parts.out,
            total=total_tests,
            estimated_total_s=sum(planner.estimates_s.values()),
            workers=settings.workers,
            is_tty=parts.out.isatty(),
            interval_s=settings.progress_interval_s,
            width=terminal_width(),
            verbosity=verbosity,  # pytest's -v and -q
            where=Where(rootdir, str(request.cwd)),
        )
        self.supervision = Supervision(
            settings,
            run_id=ledger.run_id,
            code=code,
            client=parts.client,
            heartbeat=ledger.heartbeat,
            local=parts.local,
            clock=parts.clock,
        )
        self.session = RunSession(
            tasks=first.tasks,
            reader=parts.events(ledger.run_id),
            store=parts.store,
            sender=parts.dispatcher,
            progress=self.progress,
            estimates_s=planner.estimates_s,
            settled=settled,
            max_failures=max_failures,
            follow_ups=self.follow_ups,
            follow_up_tasks=self._follow_up_tasks,
            recovery=Recovery(
                lease_s=settings.lease_s,
                redis_outage_s=settings.redis_outage_s,
                test_timeout_s=settings.test_timeout_s,
                worker_start_s=settings.worker_start_timeout_s,
            ),
            server_id=self.supervision.server_id,
            on_server_change=self.supervision.on_server_change,
            on_reissue=self.supervision.on_reissue,
            liveness=self.supervision.liveness,
            clock=parts.clock,
            on_coverage=coverage.add if coverage is not None else None,
        )
        self.supervision.watch(self.session)
        self.begun_at = parts.clock()
        self.begun_wall_s = time.time()

    def _note_new(self, node_ids: Iterable[str]) -> None:
        known = self.planner.history.test_duration_s
        if self.parts.settings.new_tests_repeat > 1 and known:
            self.new_tests.update(node_id for node_id in node_ids if node_id not in known)

    def _follow_up_tasks(self, follow_ups: Sequence[FollowUp]) -> list[ShardTask]:
        """One shard per follow-up, recorded before it goes out (a resumed run owes it)."""
        shape = self.supervision.farm_shape()
        ids = self.planner.shard_ids(len(follow_ups))
        tasks = [
            follow_up_task(
                self.session.task_of[follow_up.after_shard],
                follow_up,
                shard_id=shard_id,
                shape=shape,
            )
            for follow_up, shard_id in zip(follow_ups, ids, strict=True)
        ]
        total = len(self.session.tracker.shard_of)
        self.ledger.add_follow_ups(tasks, self.planner.estimates_s, total_tests=total)
        return tasks

    def __enter__(self) -> OpenRun:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.supervision.end()
        if self.coverage is not None:
            self.coverage.close()

    def start(self) -> None:
        """Hand out the first shards."""
        self.session.start()

    def collected(self, collecting: Future[Collection]) -> Collection:
        """The collection ``collecting`` made; a failed one ends the run with its verdict."""
        try:
            return collecting.result()
        except (CollectionError, NoTestsCollected) as e:
            self.end(Verdict.NO_TESTS if isinstance(e, NoTestsCollected) else Verdict.ERROR, str(e))
            raise
        except FarmError as e:
            self.end(Verdict.ERROR, str(e))
            raise

    def dispatch_more(self, node_ids: Sequence[str], where: Collection) -> None:
        """Plan and dispatch tests the run's shards do not hold yet."""
        shards = self.planner.shards(node_ids, self.template_for(where))
        self._note_new(node_ids)
        total = len(self.session.tracker.shard_of) + len(node_ids)
        self.ledger.add(shards, total_tests=total)
        self.session.add_tasks(shards.tasks)

    def template_for(self, where: Collection) -> ShardTask:
        """What every shard of this run carries, for tests of ``where``."""
        return shard_template(
            self.parts.settings, self.ledger.run_id, self.request.pytest_args, where, self.code
        )

    def end(self, verdict: Verdict, message: str) -> None:
        """End the run now, with ``verdict``."""
        self.ledger.finish(verdict, message)

    def settle(self, guess: Collection, pool: ThreadPoolExecutor) -> Collection:
        """Step the run until its real collection is known (it was started on
        ``guess``); that collection."""
        narrow = narrowing(self.past, self.chosen)
        settler = Settler(self, self.request, self.session, guess, pool, narrow=narrow)
        collection = settler.settle()
        owes = narrow(collection) if narrow is not None else collection
        self.progress.total = len(owes.node_ids)
        return collection

    def finish(self, collection: Collection, *, failed: str | None = None) -> Finished:
        """Wait for every test of ``collection``, then decide, store and sum up the
        run. ``failed``: the run already ended with this infrastructure error."""
        session, clock = self.session, self.parts.clock
        interrupted, infra_error = False, failed
        try:
            if failed is not None:
                raise InfrastructureError(failed)
            final = session.run()
        except KeyboardInterrupt:
            interrupted = True
            final = dict(session.tracker.final)
        except FarmError as e:
            infra_error = str(e)
            final = dict(session.tracker.final)
        finally:
            self.progress.close(clock())
        with contextlib.suppress(FarmError):
            session.flush(clock())
        makespan_s = clock() - self.begun_at
        tracker, settings = session.tracker, self.parts.settings
        chosen = owed(collection, self.past, self.chosen, stopped=tracker.stopped)
        collection = chosen.collection
        mark, stop_reason = stepwise_end(self.chosen, chosen, final, stopped=tracker.stopped)
        collected = collection.node_ids
        if tracker.stopped:  # -x or --maxfail: what ran is what counts
            collected = tuple(n for n in collected if n in final)
        wanted = frozenset(collected)
        earlier = tuple(r for r in tracker.earlier if r.node_id in wanted)
        results = tuple(final[n] for n in collected if n in final)
        # Each test's earlier attempts precede its final one: the order history folds.
        attempts = (*earlier, *results)
        decision = decide(
            collected, final, attempts=attempts, interrupted=interrupted,
            infra_error=infra_error, quarantined=self.quarantined, new_tests=self.new_tests,
            flaky_policy=settings.flaky,
        )  # fmt: skip
        coverage = None
        if self.coverage is not None and not interrupted:  # pytest-cov reports no Ctrl-C'd run
            tracker.coverage.give_up("the run ended before it arrived")
            broke = any(r.outcome.is_failure for r in results)
            coverage = self.coverage.finish(lost=tracker.coverage.lost, tests_failed=broke)
            decision = judged(decision, coverage)
        order = run_order_suspects(
            self.parts.store, self.ledger.project, self.request.change, self.ledger.run_id,
            results, earlier,
        )  # fmt: skip
        findings = RunFindings(
            failed=decision.failed,
            flaky=decision.flaky,
            quarantined_failures=decision.quarantined_failures,
            new_flaky=decision.new_flaky,
            retries=self.follow_ups.retries_made(),
            first_failure_s=self._first_failure_s(),
            order_dependent=tuple(suspect.node_id for suspect in order),
            stepwise=mark,
        )
        state = RunState.ABANDONED if interrupted else RunState.FINISHED
        self.ledger.finish(decision.verdict, decision.message, state, findings)
        for change in self.ledger.learn(attempts, QuarantineRules.from_settings(settings)):
            print(f"farm: {change.node_id} {change.action.value} quarantine: {change.reason}",
                  file=sys.stderr)  # fmt: skip
        failing = sorted({r.node_id for r in attempts if r.outcome.is_failure})
        suspects = (
            self.parts.store.suspect_machines(
                self.ledger.project, window_runs=settings.quarantine_window_runs, node_ids=failing
            )
            if failing
            else ()
        )
        summary = RunSummary(
            run_id=self.ledger.run_id,
            verdict=decision.verdict,
            collected=len(collected),
            results=results,
            missing=decision.missing,
            makespan_s=makespan_s,
            estimated_makespan_s=self.estimated_makespan_s,
            workers=self.parts.settings.workers,
            message=decision.message,
            started_at=self.parts.started_at,
            finished_at=time.time(),
            shards=self.ledger.timeline(),
            code=self.code.info() if self.code is not None else None,
            deselected=collection.deselected,
            collect_warnings=collection.warnings,
            options=collection.options,
            stopped_after=tracker.failures if tracker.stopped else 0,
            earlier_attempts=earlier,
            flaky=findings.flaky,
            quarantined_failures=findings.quarantined_failures,
            new_flaky=findings.new_flaky,
            retries=findings.retries,
            first_failure_s=findings.first_failure_s,
            suspects=suspects,
            change=self.request.change,
            coverage=coverage,
            order_suspects=order,
            rootdir=collection.rootdir,
            invocation_dir=str(self.request.cwd),
            collection_warnings=collection.warnings_shown,
            stop_reason=stop_reason,
        )
        return Finished(summary, dict(self.planner.estimates_s))

    def _first_failure_s(self) -> float | None:
        """From when the run was asked for to its first failing result, in seconds."""
        at = self.session.first_failure_at
        if at is None:
            return None
        return (at - self.begun_at) + (self.begun_wall_s - self.parts.started_at)
