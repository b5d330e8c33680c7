"""What a run's driver does between steps so that no run hangs and nothing is lost.

:class:`Supervision` is called by the session every step (``liveness``) and when
it hands a shard out again or finds a new Redis server. It

- says the scheduler is alive, in the database, every ``heartbeat_every_s``: a run
  whose scheduler died is then seen as abandoned after ``run_deadline_s``;
- ends a run no worker ever takes (``worker_start_timeout_s``), and one with no
  progress (no event, no lease renewed) for ``stall_timeout_s`` while no live
  worker serves its queue, with an error that says so, instead of waiting forever;
- records a reissued shard's new lease in Redis, so a worker skips a redelivered
  task of the old one;
- puts the run's snapshot back when Redis comes back empty.

Redis may be down while this runs: its checks then wait for the session's own
outage handling to decide, rather than failing the run on the first refusal.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

import redis

from farm.core.defaults import RUN_HEARTBEAT_S, WORKER_ANNOUNCE_S
from farm.core.errors import FarmError, WorkerLost
from farm.core.keys import Keys
from farm.core.settings import Settings
from farm.run.embedded import LocalWorkers
from farm.run.publish import CodeRef, republish
from farm.scheduler.follow_up import FarmShape
from farm.worker.registry import WorkerRegistry

if TYPE_CHECKING:
    from farm.scheduler.session import RunSession

log = logging.getLogger(__name__)


class Supervision:
    """The liveness checks and recovery hooks of run ``run_id``.

    ``heartbeat`` records in the store that the run's scheduler is alive; the
    session to watch is given by :meth:`watch` once it exists (it is built with
    this object's hooks)."""

    def __init__(
        self,
        settings: Settings,
        *,
        run_id: str,
        code: CodeRef | None,
        client: redis.Redis,
        heartbeat: Callable[[], None],
        local: LocalWorkers | None,
        clock: Callable[[], float],
    ) -> None:
        self.settings = settings
        self.run_id = run_id
        self.code = code
        self.client = client
        self.heartbeat = heartbeat
        self.local = local
        self.clock = clock
        self.keys = Keys(settings.key_prefix)
        self.session: RunSession | None = None
        self.begun_at = clock()
        self._beat_at = float("-inf")
        self._shape: tuple[float, FarmShape] | None = None

    def watch(self, session: RunSession) -> None:
        """Check ``session``'s progress from now on."""
        self.session = session
        self.begun_at = self.clock()

    def liveness(self) -> None:
        now = self.clock()
        # Often enough that a live run is never taken for an abandoned one.
        if now - self._beat_at >= min(RUN_HEARTBEAT_S, self.settings.run_deadline_s / 4):
            self._beat_at = now
            with contextlib.suppress(FarmError):  # the database's outage is the store's to report
                self.heartbeat()
        if self.local is not None:
            self.local.check_alive()
        session = self.session
        if session is None:
            return
        settings = self.settings
        waited_s = now - self.begun_at
        if waited_s > settings.worker_start_timeout_s and not session.tracker.any_started:
            where = "local workers" if self.local is not None else "workers on the broker"
            raise WorkerLost(
                f"no shard was taken by {where} within {settings.worker_start_timeout_s:g}s "
                f"(queue {settings.queue!r}, {self._live_text()}); start workers with "
                "farm worker --broker URL, or run without --broker"
            )
        silent_s = now - session.progress_at
        if silent_s > settings.stall_timeout_s and session.tracker.any_started:
            live = self._live()
            if live == 0:
                owed = len(session.tracker.shard_of) - len(session.tracker.final)
                raise WorkerLost(
                    f"no progress for {silent_s:.0f}s and no live worker on queue "
                    f"{settings.queue!r}: {owed} test(s) still owed"
                )

    def farm_shape(self) -> FarmShape:
        """The live farm's slots and machines on the run's queue, asked of the registry
        at most every few seconds; what this run started when Redis cannot say."""
        now = self.clock()
        if self._shape is not None and now - self._shape[0] < WORKER_ANNOUNCE_S:
            return self._shape[1]
        fallback = FarmShape(slots=self.settings.workers, machines=1)
        try:
            live = WorkerRegistry(self.client, self.keys).live(self.settings.queue)
        except redis.RedisError:
            live = []
        shape = (
            FarmShape(
                slots=sum(info.capacity for info in live),
                machines=len({info.machine for info in live}),
            )
            if live
            else fallback
        )
        self._shape = (now, shape)
        return shape

    def _live(self) -> int | None:
        """Live workers on the run's queue; None when Redis cannot say."""
        try:
            return len(WorkerRegistry(self.client, self.keys).live(self.settings.queue))
        except redis.RedisError:
            return None

    def _live_text(self) -> str:
        live = self._live()
        if live is None:
            return "Redis unreachable"
        return f"{live} live worker(s) on it" if live else "no live worker on it"

    def server_id(self) -> str:
        info: dict[str, object] = self.client.info("server")
        return str(info.get("run_id", ""))

    def on_reissue(self, shard_id: int, lease: int) -> None:
        with contextlib.suppress(redis.RedisError):  # a stale task's results are fenced anyway
            self.client.set(
                self.keys.lease(self.run_id, shard_id), lease, ex=self.settings.run_ttl_s
            )

    def on_server_change(self) -> None:
        if self.code is not None:
            republish(self.code, settings=self.settings, client=self.client)

    def end(self) -> None:
        """The run is over: its workers stop its shards, and skip any Celery redelivers.

        The one place a run is cancelled; Redis may be away, and then the keys'
        TTL and the leases' fencing keep late results out."""
        with contextlib.suppress(redis.RedisError):
            self.client.set(self.keys.cancel(self.run_id), "1", ex=self.settings.run_ttl_s)
