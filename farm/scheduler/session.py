"""Supervises one dispatched run: reads events, stores results, until every test has one.

The loop is exposed as :meth:`RunSession.step`, so tests drive it without sleeping.
Results are written to the store in batches (every ``flush_interval_s`` or
``flush_results`` results; see :mod:`farm.scheduler.store_writes`), never held
back past the end of the run.

Nothing a dispatched shard owes may be lost, so each step also hands out again:

- shards whose lease expired (see :mod:`farm.scheduler.tracker`): their worker is gone;
- shards a worker handed back (it is stopping, or could not prepare them);
- every unfinished shard, when the broker's Redis came back as a new server (it
  was restarted, and with no persistence its queue and streams are gone): the
  tracker, fed from the database's view of the run, knows what is still owed.

A shard handed out ``max_reissues`` times gives up: its owed tests get error
results saying why, so a test that kills every worker cannot keep a run alive.
While Redis cannot be reached the session waits, up to ``redis_outage_s``.

Results that call for a follow-up (a retry, a repeat: see
:mod:`farm.scheduler.follow_up`) get a shard of their own, made by the
``follow_up_tasks`` the session is given. A slot such a shard must avoid
*declines* it (and stays busy a moment, so the pool hands it on to another slot);
the session sends it again after ``decline_delay_s`` (not counted as a reissue),
and after ``decline_wait_s`` of declines lets it run anywhere, so a retry waits for
another slot for a while but never forever.

A run that measures coverage hands each shard's coverage data, under its current
lease, to ``on_coverage`` as it arrives, and once every test has its result waits
for the data each shard still owes (see :mod:`farm.scheduler.coverage_debt`); a
wait the watchdog would end makes the coverage incomplete, not the run an error.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import redis
from kombu.exceptions import OperationalError

from farm.core import defaults
from farm.core.domain import TestResult
from farm.core.errors import BrokerUnavailable, InfrastructureError, WorkerLost
from farm.core.messages import (
    CollectFailed,
    Event,
    ModuleCollected,
    ShardCoverage,
    ShardEnd,
)
from farm.core.shard_task import ShardTask
from farm.scheduler import watchdog
from farm.scheduler.follow_up import Declined, FollowUp, FollowUpPolicy, relaxed
from farm.scheduler.store_writes import ResultSink, StoreWrites
from farm.scheduler.tracker import RunTracker
from farm.scheduler.watchdog import WatchdogLimits

log = logging.getLogger(__name__)


class ProgressView(Protocol):
    """What the session tells the user as results arrive."""

    def add(self, result: TestResult, estimate_s: float) -> None: ...

    def render(self, now: float) -> None: ...


class EventSource(Protocol):
    """The run's results stream (:class:`farm.scheduler.ingest.EventReader`)."""

    def read(self, *, block_ms: int, count: int = 5000) -> list[Event]: ...

    def trim(self) -> None: ...


class Sender(Protocol):
    def send(self, tasks: Sequence[ShardTask]) -> None: ...


@dataclass(frozen=True)
class Recovery:
    """How a session recovers what workers and the broker lose."""

    lease_s: float = defaults.LEASE_S
    max_reissues: int = defaults.MAX_REISSUES
    redis_outage_s: float = defaults.REDIS_OUTAGE_S
    server_check_s: float = 1.0  # how often to ask Redis whether it is still the same server
    test_timeout_s: float = defaults.TEST_TIMEOUT_S  # the run's per-test limit, for the watchdog
    worker_start_s: float = defaults.WORKER_START_TIMEOUT_S  # a shard's wait for a worker, too
    decline_delay_s: float = defaults.FOLLOW_UP_DECLINE_DELAY_S
    decline_wait_s: float = defaults.FOLLOW_UP_DECLINE_WAIT_S

    @property
    def watchdog(self) -> WatchdogLimits:
        return WatchdogLimits(
            test_timeout_s=self.test_timeout_s,
            lease_s=self.lease_s,
            max_reissues=self.max_reissues,
            redis_outage_s=self.redis_outage_s,
            worker_start_s=self.worker_start_s,
        )


class RunSession:
    """One run from dispatch to the last result."""

    def __init__(
        self,
        *,
        tasks: Sequence[ShardTask],
        reader: EventSource,
        store: ResultSink,
        sender: Sender,
        progress: ProgressView,
        estimates_s: Mapping[str, float],
        settled: bool = True,
        max_failures: int = 0,
        follow_ups: FollowUpPolicy | None = None,
        follow_up_tasks: Callable[[Sequence[FollowUp]], Sequence[ShardTask]] | None = None,
        recovery: Recovery = Recovery(),
        server_id: Callable[[], str] | None = None,
        on_server_change: Callable[[], None] = lambda: None,
        on_reissue: Callable[[int, int], None] = lambda shard_id, lease: None,
        on_coverage: Callable[[ShardCoverage], None] | None = None,
        liveness: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        flush_interval_s: float = 0.5,
        flush_results: int = 2000,
        min_step_s: float = 0.05,
    ) -> None:
        self.tasks = tasks
        self.task_of = {t.shard_id: t for t in tasks}
        self.recovery = recovery
        self.server_id = server_id
        self.on_server_change = on_server_change
        self.on_reissue = on_reissue
        self.run_id = tasks[0].run_id if tasks else ""
        self.tracker = RunTracker(
            self.run_id,
            ((t.shard_id, t.node_ids) for t in tasks),
            settled=settled,
            max_failures=max_failures,
            follow_ups=follow_ups,
            coverage=on_coverage is not None,
        )
        self.on_coverage = on_coverage
        self.follow_up_tasks = follow_up_tasks
        self._declined = Declined(recovery.decline_delay_s, recovery.decline_wait_s)
        self.first_failure_at: float | None = None  # on the session's clock
        self.reader = reader
        self.store = store
        self.sender = sender
        self.progress = progress
        self.estimates_s = estimates_s
        self.liveness = liveness
        self.clock = clock
        self.sleep = sleep
        self.min_step_s = min_step_s
        self._stepped_at = float("-inf")
        self.flush_interval_s = flush_interval_s
        self.flush_results = flush_results
        self._writes = StoreWrites(self.run_id)
        self._flushed_at = clock()
        self.progress_at = clock()  # the last time a worker said anything of this run
        self.result_at = clock()  # the last time a test of this run got a result
        self._outage_since: float | None = None
        self._unsent: list[ShardTask] = []
        self._server: str | None = None
        self._server_checked_at = float("-inf")
        self._expiry_checked_at = float("-inf")

    @property
    def complete(self) -> bool:
        return self.tracker.complete

    def start(self) -> None:
        self.sender.send(self.tasks)

    def add_tasks(self, tasks: Sequence[ShardTask]) -> None:
        """Dispatch more shards of this run (tests the speculative plan did not know)."""
        self.tracker.add_shards((t.shard_id, t.node_ids) for t in tasks)
        self.tasks = [*self.tasks, *tasks]
        self.task_of.update((t.shard_id, t) for t in tasks)
        self.sender.send(tasks)

    def settle(self, collected: Sequence[str]) -> None:
        """From now on the run owes exactly the ``collected`` tests."""
        self.tracker.settle(collected)

    def step(self, *, block_ms: int = 200) -> list[ModuleCollected | CollectFailed]:
        """Read what workers sent (waiting up to ``block_ms``), account for it, maybe flush.

        Steps are at least ``min_step_s`` apart: results then arrive in batches, and
        the scheduler does not spend a core on one read per result of a fast suite.
        Returns what workers said of collection, for a run that is not settled yet.
        """
        wait_s = self._stepped_at + self.min_step_s - self.clock()
        if wait_s > 0:
            self.sleep(wait_s)
        self._stepped_at = self.clock()
        self.liveness()
        events = self._read(block_ms)
        now = self.clock()
        accepted = self.tracker.feed(events, now)
        for reason in accepted.ignored:
            log.warning("ignored an event of run %s: %s", self.run_id, reason)
        if accepted.renewed:
            self.progress_at = now
        self._accept(accepted.results)
        for coverage in accepted.coverage:
            if self.on_coverage is not None:
                self.on_coverage(coverage)
        self._writes.starts.extend(accepted.started)
        self._writes.ends.extend(accepted.ended)
        for end in accepted.ended:
            if end.fatal:
                raise InfrastructureError(f"shard {end.shard_id} cannot run: {end.message}")
        for end in accepted.handed_back:
            if end.declined:
                self._decline(end.shard_id, now)
            else:
                self._reissue(end.shard_id, f"handed back by {end.worker}: {end.message}")
        self._send_follow_ups(now)
        # While Redis is away no worker can renew a lease: none lapses meanwhile. The
        # scan covers every shard, so it runs a few times a lease, not every step.
        expiry_due = now - self._expiry_checked_at >= self.recovery.lease_s / 10
        if self._outage_since is None and expiry_due:
            self._expiry_checked_at = now
            for shard_id in self.tracker.expired(now, self.recovery.lease_s):
                self._reissue(shard_id, f"lease not renewed for {self.recovery.lease_s:g}s")
        self._watch(now)
        self.progress.render(now)
        due = now - self._flushed_at >= self.flush_interval_s
        if self.complete or due or len(self._writes.results) >= self.flush_results:
            self.flush(now)
        return accepted.collected

    def _accept(self, results: Sequence[TestResult]) -> None:
        if results:
            self.result_at = self.clock()
        self._writes.results.extend(results)
        for result in results:
            if result.outcome.is_failure and self.first_failure_at is None:
                self.first_failure_at = self.result_at
            if result.attempt == 1:  # progress counts tests, not attempts
                self.progress.add(result, self.estimates_s.get(result.node_id, 0.0))

    def _send_follow_ups(self, now: float) -> None:
        """Dispatch the follow-ups results called for, and declined ones now due."""
        follow_ups = self.tracker.take_follow_ups()
        if follow_ups:
            if self.follow_up_tasks is None:
                raise InfrastructureError("results called for follow-ups this run cannot make")
            tasks = self.follow_up_tasks(follow_ups)
            for follow_up, task in zip(follow_ups, tasks, strict=True):
                self.tracker.add_follow_up(task.shard_id, follow_up)
                self.task_of[task.shard_id] = task
            self._send(tasks)
        due = self._declined.due(now)
        if due:
            self._send(due)

    def _decline(self, shard_id: int, now: float) -> None:
        """A slot the shard must avoid declined it: send it again a little later, and
        anywhere once it was declined for ``decline_wait_s``."""
        anywhere = self._declined.waited_out(shard_id, now)
        lease, owed = self.tracker.reissue(shard_id, counted=False)
        if owed:
            if anywhere:
                log.warning("run %s: shard %d may now run anywhere", self.run_id, shard_id)
            self._declined.later(self._supersede(shard_id, lease, owed, anywhere=anywhere), now)

    def _watch(self, now: float) -> None:
        """End the run if its owed work stopped shrinking (see :mod:`farm.scheduler.watchdog`)."""
        watchdog.check(
            self.recovery.watchdog,
            silent_s=now - self.result_at,
            unfinished=self.tracker.unfinished_tests,
            estimates_s=self.estimates_s,
        )

    def _read(self, block_ms: int) -> list[Event]:
        """The next events; none while Redis is down, and everything unfinished handed
        out again when it comes back as a new, empty server."""
        try:
            events = self.reader.read(block_ms=block_ms)
            self._check_server()
        except redis.RedisError as e:
            now = self.clock()
            if self._outage_since is None:
                self._outage_since = now
                log.warning("run %s: Redis unreachable (%s); waiting for it", self.run_id, e)
            if now - self._outage_since > self.recovery.redis_outage_s:
                raise BrokerUnavailable(
                    f"Redis unreachable for {self.recovery.redis_outage_s:g}s: {e}"
                ) from e
            self.sleep(min(0.5, self.recovery.redis_outage_s / 10))
            return []
        if self._outage_since is not None:
            log.warning("run %s: Redis is back", self.run_id)
            self.tracker.renew_running(self.clock())
            self._outage_since = None
        if self._unsent:
            unsent, self._unsent = self._unsent, []
            self._send(unsent)
        return events

    def _send(self, tasks: Sequence[ShardTask]) -> None:
        """Dispatch ``tasks``, keeping them to send again if the broker is away."""
        try:
            self.sender.send(tasks)
        except (OperationalError, redis.RedisError) as e:
            log.warning("run %s: cannot dispatch %d shard(s) yet: %s", self.run_id, len(tasks), e)
            self._unsent.extend(tasks)
            if self._outage_since is None:
                self._outage_since = self.clock()

    def _check_server(self) -> None:
        now = self.clock()
        if self.server_id is None or now - self._server_checked_at < self.recovery.server_check_s:
            return
        self._server_checked_at = now
        server = self.server_id()
        if self._server is not None and server != self._server:
            log.warning("run %s: Redis restarted; sending what the run still owes", self.run_id)
            self.on_server_change()
            for shard_id in self.tracker.unfinished():
                self._reissue(shard_id, "Redis restarted")
        self._server = server

    def _reissue(self, shard_id: int, why: str) -> None:
        """Hand the shard's owed tests out again under a new lease, or give up on it."""
        task = self.task_of[shard_id]
        if self.tracker.reissued(shard_id) >= self.recovery.max_reissues:
            message = f"{why}; gave up after handing it out {self.recovery.max_reissues + 1} times"
            end = ShardEnd(self.run_id, shard_id, task.lease, "", time.time(), -1, message)
            self._accept(self.tracker.fail_shard(end))
            self._writes.ends.append(end)
            return
        lease, owed = self.tracker.reissue(shard_id)
        log.warning(
            "run %s: shard %d handed out again (lease %d, %d tests): %s",
            self.run_id, shard_id, lease, len(owed), why,
        )  # fmt: skip
        if owed:
            self._send([self._supersede(shard_id, lease, owed)])

    def _supersede(
        self, shard_id: int, lease: int, owed: tuple[str, ...], *, anywhere: bool = False
    ) -> ShardTask:
        """The shard's task under its new ``lease`` for its ``owed`` tests, recorded (and
        free to run ``anywhere``); the caller sends it."""
        again = dataclasses.replace(self.task_of[shard_id], lease=lease, node_ids=owed)
        if anywhere:
            again = relaxed(again)
        self.task_of[shard_id] = again
        self._writes.reissues.append((shard_id, lease))
        self.on_reissue(shard_id, lease)
        return again

    def flush(self, now: float) -> None:
        """Store what the session learned since the last flush, and trim the stream."""
        self._writes.write(self.store)
        with contextlib.suppress(redis.RedisError):  # only tidying: the next flush trims again
            self.reader.trim()
        self._flushed_at = now

    def run(self) -> dict[str, TestResult]:
        """Step until every owed test has a final result (the run is settled); returns them.

        A worker says a shard ended only after its test session has closed, a little
        after the shard's last result; the run does not wait for that. Shards whose
        tests all have results are recorded as finished with their last result.
        """
        while not self.complete:
            self.step()
        while self.tracker.coverage.pending:
            try:
                self.step()
            except WorkerLost as e:  # every test has its result: only coverage is lost
                self.tracker.coverage.give_up(str(e))
        self.flush(self.clock())
        for shard_id, finished_at in self.tracker.done_but_not_ended().items():
            self.store.shard_finished(self.run_id, shard_id, finished_at=finished_at)
        return dict(self.tracker.final)
