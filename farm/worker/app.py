"""The worker's Celery app: one task, ``farm.run_shard``, JSON only.

``make_app`` builds a fresh app per process (no module-level singleton), so a
worker's broker, queue, name and cache come from its command line or environment.
The main process announces the worker in the registry (:mod:`farm.worker.registry`)
while it runs; each pool process is one *slot*, named ``<name>:<pid>``, which
prepares a shard's workspace (:mod:`farm.worker.workspace`) and runs it.

On SIGTERM Celery stops taking tasks and lets the running shards finish (a warm
shutdown); a second SIGTERM or SIGQUIT stops at once, and the unacknowledged
shards go back to the queue for other workers (tasks are acknowledged late).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import redis
from celery import Celery, signals

from farm.core import defaults
from farm.core.broker import celery_config, redis_py_url
from farm.core.keys import Keys
from farm.core.lifeline import TESTS_TMPDIR_ENV
from farm.core.logs import event
from farm.core.shard_task import TASK_NAME, ShardTask
from farm.core.test_user import TestUser
from farm.worker.job import Breaker, Slot, run_job
from farm.worker.registry import WorkerInfo, WorkerRegistry
from farm.worker.runner import scrubbed_env
from farm.worker.spawn import Spawner
from farm.worker.workspace import WorkspaceConfig, Workspaces

log = logging.getLogger("farm.worker")


@dataclass(frozen=True)
class WorkerConfig:
    """One ``farm worker``: where it takes shards from and what it may keep on disk."""

    broker_url: str
    workspace: WorkspaceConfig
    name: str = socket.gethostname()
    concurrency: int = 1
    queue: str = defaults.QUEUE
    key_prefix: str = defaults.KEY_PREFIX
    run_ttl_s: int = defaults.RUN_TTL_S
    max_failures: int = defaults.WORKER_MAX_FAILURES  # own failures in a row, per slot
    # The machine its results name: where a retry must not run again, and what a
    # test failing only here points at. A container's hostname is not its machine.
    machine: str = socket.gethostname()
    # Who its tests and setup commands run as (farm.core.test_user); None: the worker's
    # own user.
    test_user: TestUser | None = None


def _stop_worker() -> None:
    """Ask the main worker process for a warm shutdown: no new shard, then exit."""
    os.kill(os.getppid(), signal.SIGTERM)


def _test_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The environment of the tests this worker runs: scrubbed, with their own TMPDIR.

    A local worker's TMPDIR is a folder its run removes; its tests keep the one the
    user gave ``farm run`` (a test's unix sockets need a short path, and what a
    test keeps in its temporary folder must outlive the run like anywhere else).
    """
    env = scrubbed_env(environ)
    tests_tmpdir = environ.get(TESTS_TMPDIR_ENV)
    if tests_tmpdir is not None:
        env.pop("TMPDIR", None)
        if tests_tmpdir:
            env["TMPDIR"] = tests_tmpdir
    return env


def make_app(config: WorkerConfig) -> Celery:
    app = Celery("farm")
    app.conf.update(
        celery_config(config.broker_url, key_prefix=config.key_prefix, queue=config.queue)
    )
    # farm.core.logs formats every record; Celery must not take over the root logger or stdout.
    app.conf.update(worker_hijack_root_logger=False, worker_redirect_stdouts=False)
    keys = Keys(config.key_prefix)
    machine = config.machine
    slots: dict[int, Slot] = {}

    def slot() -> Slot:
        # One Redis client, spare pytest process, cache view and breaker per pool
        # process: none of them may cross a fork.
        pid = os.getpid()
        if pid not in slots:
            env = _test_env(os.environ)
            client = redis.Redis.from_url(redis_py_url(config.broker_url))
            slots[pid] = Slot(
                name=f"{config.name}:{pid}",
                machine=machine,
                client=client,
                keys=keys,
                spawner=Spawner(env=env, user=config.test_user),
                workspaces=Workspaces(
                    config.workspace, client=client, base_env=env, user=config.test_user
                ),
                breaker=Breaker(config.max_failures),
                queue_key=keys.queue(config.queue),
                run_ttl_s=config.run_ttl_s,
                stop_worker=_stop_worker,
            )
        return slots[pid]

    @app.task(name=TASK_NAME, acks_late=True, ignore_result=True)  # type: ignore[untyped-decorator]
    def run_shard(payload: dict[str, Any]) -> None:
        run_job(ShardTask.from_json(payload), slot())

    _announce_while_running(config, machine)
    return app


def _announce_while_running(config: WorkerConfig, machine: str) -> None:
    """Keep this worker in the registry from ready to shutdown (main process only)."""
    stop = threading.Event()
    info = WorkerInfo(
        config.name, machine, os.getpid(), config.concurrency, config.queue, time.time()
    )

    def beat() -> None:
        registry = WorkerRegistry(
            redis.Redis.from_url(redis_py_url(config.broker_url)), Keys(config.key_prefix)
        )
        while True:
            try:
                registry.announce(info)
            except redis.RedisError as e:
                event(log, "registry.unreachable", level=logging.WARNING, error=str(e))
            if stop.wait(defaults.WORKER_ANNOUNCE_S):
                break
        with contextlib.suppress(redis.RedisError):  # else the entry goes stale by itself
            registry.forget(config.name)

    thread = threading.Thread(target=beat, name="farm-announce", daemon=True)

    @signals.worker_ready.connect(weak=False)  # type: ignore[untyped-decorator]
    def on_ready(**_: object) -> None:
        thread.start()
        event(
            log, "worker.ready", name=config.name, machine=machine, pid=os.getpid(),
            capacity=config.concurrency, queue=config.queue, cache=str(config.workspace.cache_dir),
            test_user=config.test_user.name if config.test_user else "",
        )  # fmt: skip

    @signals.worker_shutdown.connect(weak=False)  # type: ignore[untyped-decorator]
    def on_shutdown(**_: object) -> None:
        stop.set()
        if thread.is_alive():
            thread.join(timeout=5)
        event(log, "worker.stopped", name=config.name)
