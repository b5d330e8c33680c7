"""The worker's Celery app: one task, ``farm.run_shard``, JSON only.

``make_app`` builds a fresh app per process (no module-level singleton), so a
worker's broker, queue and key prefix come from its command line or environment.
"""

from __future__ import annotations

import os
import socket
import time
from typing import Any

import redis
from celery import Celery

from farm.broker import celery_config, redis_py_url
from farm.keys import Keys
from farm.messages import TASK_NAME, ShardEnd, ShardStart, ShardTask, encode_event
from worker.runner import ShardRunner, scrubbed_env
from worker.sink import RedisSink
from worker.spawn import Spawner


def worker_identity() -> str:
    """``host:pid`` of the process running a shard: each pool process is one worker slot."""
    return f"{socket.gethostname()}:{os.getpid()}"


def make_app(broker_url: str, *, key_prefix: str, queue: str, run_ttl_s: int) -> Celery:
    app = Celery("farm")
    app.conf.update(celery_config(broker_url, key_prefix=key_prefix, queue=queue))
    keys = Keys(key_prefix)
    clients: dict[int, redis.Redis] = {}
    spawners: dict[int, Spawner] = {}

    def client() -> redis.Redis:
        # One client per pool process: a connection must not cross a fork.
        pid = os.getpid()
        if pid not in clients:
            clients[pid] = redis.Redis.from_url(redis_py_url(broker_url))
        return clients[pid]

    def spawner() -> Spawner:
        # One spare pytest process per pool process, for that process's next shard.
        pid = os.getpid()
        if pid not in spawners:
            spawners[pid] = Spawner(env=scrubbed_env(os.environ))
        return spawners[pid]

    @app.task(name=TASK_NAME, acks_late=True, ignore_result=True)  # type: ignore[untyped-decorator]
    def run_shard(payload: dict[str, Any]) -> None:
        task = ShardTask.from_json(payload)
        sink = RedisSink(client(), keys, task.run_id, ttl_s=run_ttl_s)
        me = worker_identity()
        if sink.cancelled():
            return
        sink.send(
            [encode_event(ShardStart(task.run_id, task.shard_id, task.lease, me, time.time()))]
        )
        queue_key = key_prefix + queue  # kombu's list for the queue, under its key prefix

        def more_work() -> bool:
            return bool(client().llen(queue_key))

        runner = ShardRunner(task, sink, worker=me, spawner=spawner(), more_work=more_work)
        try:
            message = runner.run()
        except Exception as e:
            message = f"worker failed: {type(e).__name__}: {e}"
        end = ShardEnd(
            task.run_id, task.shard_id, task.lease, me, time.time(), runner.last_exit_code, message
        )
        sink.send([encode_event(end)])

    return app
