"""One shard on one worker slot, from the task's arrival to its end event.

Around the runner (:mod:`farm.worker.runner`), a job keeps the promises the scheduler
relies on to lose nothing:

- it skips a shard whose run is over or whose lease was superseded (the Celery
  message was redelivered after the scheduler had handed the tests out again),
  and hands back one whose lease another slot already claimed (Celery redelivers
  the task of a slot that died at once, under the same lease);
- it renews the shard's lease with a heartbeat every ``task.heartbeat_s`` while
  the shard runs, from a thread, so a test that blocks the runner cannot starve it;
- a shard this worker cannot prepare for a reason of its own (a full disk, an
  unreachable artifact store) is handed back (``retry``) for another worker, while
  one no worker could run (a refused snapshot, a failing setup command) ends
  ``fatal``;
- a slot whose shards fail for its own reasons ``max_failures`` times in a row
  trips the circuit breaker: the worker stops taking work and says so, instead of
  failing every shard the queue gives it.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import redis

from farm.core.defaults import FOLLOW_UP_DECLINE_HOLD_S
from farm.core.keys import Keys
from farm.core.logs import event
from farm.core.messages import Heartbeat, ShardEnd, ShardStart, encode_event
from farm.core.shard_task import ShardTask
from farm.worker.runner import ShardRunner
from farm.worker.sink import RedisSink
from farm.worker.spawn import Spawner
from farm.worker.workspace import WorkspaceError, Workspaces

log = logging.getLogger("farm.worker")


@dataclass
class Breaker:
    """Counts a slot's shards that failed in a row for the worker's own reasons."""

    max_failures: int
    failures: int = 0

    def record(self, *, failed: bool) -> bool:
        """Account for one shard; True when the breaker has just opened."""
        self.failures = self.failures + 1 if failed else 0
        return self.failures == self.max_failures


@dataclass(frozen=True)
class Slot:
    """What a pool process keeps between shards."""

    name: str  # ``<worker name>:<pid>``
    machine: str  # the machine the worker runs on
    client: redis.Redis
    keys: Keys
    spawner: Spawner
    workspaces: Workspaces
    breaker: Breaker
    queue_key: str  # kombu's list of the queue, for "is more work waiting?"
    run_ttl_s: int
    stop_worker: Callable[[], None]  # asks the worker to stop taking work


def run_job(task: ShardTask, slot: Slot) -> None:
    sink = RedisSink(slot.client, slot.keys, task.run_id, ttl_s=slot.run_ttl_s)
    if sink.cancelled() or _superseded(task, slot):
        event(log, "shard.skipped", run_id=task.run_id, shard=task.shard_id, lease=task.lease)
        return
    if task.declined_by(slot.name, slot.machine):
        # A retry must run somewhere its test has not failed yet; the scheduler sends
        # it again, and drops the constraint if no other slot takes it in time.
        end = dataclasses.replace(_end(task, slot, "declined", retry=True), declined=True)
        sink.send([encode_event(end)])
        event(log, "shard.declined", run_id=task.run_id, shard=task.shard_id, lease=task.lease)
        # Celery's pool gives a task to the first idle process: were this one idle
        # when the retry comes back, it would be handed the retry again. The hold
        # varies, so slots declining each other's retries fall out of step.
        time.sleep(FOLLOW_UP_DECLINE_HOLD_S * random.uniform(0.5, 1.5))
        return
    if not _claim(task, slot):
        # Celery gave us a task whose slot died running it (it redelivers those at
        # once): its lease may already hold results. Hand it back, so the scheduler
        # sends only what is still owed, under a new lease.
        sink.send([encode_event(_end(task, slot, "redelivered after its worker died", retry=True))])
        event(log, "shard.redelivered", run_id=task.run_id, shard=task.shard_id, lease=task.lease)
        return
    start = ShardStart(task.run_id, task.shard_id, task.lease, slot.name, time.time(), slot.machine)
    sink.send([encode_event(start)])
    event(log, "shard.start", run_id=task.run_id, shard=task.shard_id, tests=len(task.node_ids))
    stop_beating = threading.Event()
    beater = threading.Thread(
        target=_beat, args=(task, slot, sink, stop_beating), name="farm-heartbeat", daemon=True
    )
    beater.start()
    try:
        end, own_failure = _run(task, slot, sink)
    finally:
        stop_beating.set()
        beater.join()
    sink.send([encode_event(end)])
    event(
        log, "shard.end", run_id=task.run_id, shard=task.shard_id, message=end.message,
        retry=end.retry, fatal=end.fatal,
    )  # fmt: skip
    if slot.breaker.record(failed=own_failure):
        why = (
            f"{slot.breaker.max_failures} shards in a row failed on this worker; "
            f"last: {end.message}"
        )
        event(log, "worker.circuit_open", level=logging.ERROR, slot=slot.name, reason=why)
        slot.stop_worker()


def _run(task: ShardTask, slot: Slot, sink: RedisSink) -> tuple[ShardEnd, bool]:
    """Prepare and run the shard: its end event, and whether it failed for our reasons."""
    try:
        where = slot.workspaces.prepare(task)
    except WorkspaceError as e:
        event(log, "shard.refused", level=logging.ERROR, run_id=task.run_id, error=str(e))
        return _end(task, slot, f"{slot.name}: {e}", fatal=not e.retry, retry=e.retry), e.retry
    local = dataclasses.replace(task, rootdir=where.rootdir, inifile=where.inifile)
    runner = ShardRunner(
        local, sink, worker=slot.name, python=where.python, spawner=slot.spawner,
        more_work=lambda: bool(slot.client.llen(slot.queue_key)), extra_env=where.env,
        farm_path=where.farm_path, machine=slot.machine, tree_root=where.tree,
    )  # fmt: skip
    try:
        message = runner.run()
    except redis.RedisError as e:
        # The results did not get through; the scheduler hands the shard out again
        # when its lease lapses (or at once, should this end event get through).
        return _end(task, slot, f"{slot.name}: lost Redis: {e}", retry=True), True
    except Exception as e:
        why = f"{slot.name}: worker failed: {type(e).__name__}: {e}"
        return _end(task, slot, why, retry=True), True
    return _end(task, slot, message, exit_code=runner.last_exit_code), False


def _end(
    task: ShardTask, slot: Slot, message: str, *, exit_code: int = 0, fatal: bool = False,
    retry: bool = False,
) -> ShardEnd:  # fmt: skip
    return ShardEnd(
        task.run_id, task.shard_id, task.lease, slot.name, time.time(), exit_code, message,
        fatal, retry,
    )  # fmt: skip


def _claim(task: ShardTask, slot: Slot) -> bool:
    """Whether this is the first slot to run the shard under its lease."""
    key = slot.keys.claim(task.run_id, task.shard_id, task.lease)
    return bool(slot.client.set(key, slot.name, nx=True, ex=slot.run_ttl_s))


def _superseded(task: ShardTask, slot: Slot) -> bool:
    current = slot.client.get(slot.keys.lease(task.run_id, task.shard_id))
    return current is not None and int(current) > task.lease


def _beat(task: ShardTask, slot: Slot, sink: RedisSink, stop: threading.Event) -> None:
    while not stop.wait(task.heartbeat_s):
        beat = Heartbeat(task.run_id, task.shard_id, task.lease, slot.name, time.time())
        try:
            sink.send([encode_event(beat)], retry=False)
        except redis.RedisError as e:  # the scheduler's lease clock decides, not us
            event(log, "heartbeat.failed", level=logging.WARNING, error=str(e))
