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
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from types import TracebackType
from typing import TextIO

import redis

from farm.core import broker
from farm.core.domain import Collection, RunState, RunSummary, Verdict
from farm.core.errors import CollectionError, FarmError, InfrastructureError, NoTestsCollected
from farm.core.keys import Keys
from farm.core.messages import ShardTask
from farm.core.settings import Settings
from farm.core.verdict import decide
from farm.report.progress import Progress
from farm.run.embedded import LocalWorkers
from farm.run.ledger import RunLedger
from farm.run.planner import Planner, Shards
from farm.run.publish import CodeRef
from farm.run.records import shard_template
from farm.run.request import Finished, RunRequest
from farm.run.settler import Settler
from farm.run.supervise import Supervision
from farm.scheduler.dispatch import Dispatcher
from farm.scheduler.ingest import EventReader
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
    cancelled, so workers stop its shards."""

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
    ) -> None:
        settings = parts.settings
        self.parts = parts
        self.request = request
        self.ledger = ledger
        self.planner = planner
        self.code = code
        self.estimated_makespan_s = first.plan.estimated_makespan_s
        self.progress = Progress(
            stream=parts.out,
            total=total_tests,
            estimated_total_s=sum(planner.estimates_s.values()),
            workers=settings.workers,
            is_tty=parts.out.isatty(),
            interval_s=settings.progress_interval_s,
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
        )
        self.supervision.watch(self.session)
        self.begun_at = parts.clock()

    def __enter__(self) -> OpenRun:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.supervision.end()

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
        collection = Settler(self, self.request, self.session, guess, pool).settle()
        self.progress.total = len(collection.node_ids)
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
        collected = collection.node_ids
        if session.tracker.stopped:  # -x or --maxfail: what ran is what counts
            collected = tuple(n for n in collected if n in final)
        decision = decide(collected, final, interrupted=interrupted, infra_error=infra_error)
        state = RunState.ABANDONED if interrupted else RunState.FINISHED
        self.ledger.finish(decision.verdict, decision.message, state)
        results = tuple(final[n] for n in collected if n in final)
        self.ledger.learn(results)
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
            stopped_after=session.tracker.failures if session.tracker.stopped else 0,
        )
        return Finished(summary, dict(self.planner.estimates_s))
