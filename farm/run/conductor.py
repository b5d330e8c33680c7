"""Conductors: the Celery workers that run server-triggered changes.

A conductor takes one trigger request at a time from the farm's changes queue
(:func:`farm.core.trigger.changes_queue`), never a shard, and conducts that run
as ``farm run`` would (:func:`farm.run.triggered.run_trigger`): the shards go to
the farm's workers, the conductor waits for them, decides and reports. Requests
are acknowledged late, so a conductor that dies mid-run leaves its request to be
delivered again; the run it started is then abandoned by its silence, as any run
whose scheduler died.

``farm serve`` starts conductors as a child process group holding a lifeline
(:mod:`farm.core.lifeline`); ``farm conductor`` runs them alone, on any machine
that reaches the broker and the database.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from celery import Celery

from farm.core.broker import celery_config
from farm.core.errors import InfrastructureError, UsageError
from farm.core.lifeline import Lifeline, kill_tree, start_on_lifeline
from farm.core.logs import event
from farm.core.server_config import SERVER_CONFIG_ENV, ServerConfig
from farm.core.settings import Settings
from farm.core.test_user import resolve_test_user
from farm.core.trigger import TASK_NAME, TriggerRequest, changes_queue
from farm.run.mirror import Mirrors

log = logging.getLogger("farm.conductor")


def make_conductor_app(settings: Settings, config: ServerConfig) -> Celery:
    """A Celery app whose one task runs a trigger request's change."""
    from farm.run.triggered import run_trigger

    assert settings.broker_url is not None
    queue = changes_queue(settings.queue)
    app = Celery("farm-conductor")
    app.conf.update(celery_config(settings.broker_url, key_prefix=settings.key_prefix, queue=queue))
    mirrors = Mirrors(settings.cache_dir.resolve())
    # Resolved once, from the farm's settings: a checkout's [tool.farm] never chooses it.
    test_user = resolve_test_user(settings.test_user, euid=os.geteuid())

    @app.task(name=TASK_NAME)  # type: ignore[untyped-decorator,unused-ignore]
    def test_change(data: object) -> None:
        try:
            trigger = TriggerRequest.from_json(data)
        except UsageError as e:
            # Only the server queues these; a malformed one is dropped, never run.
            event(log, "trigger.malformed", level=logging.ERROR, error=str(e))
            return
        event(log, "trigger.start", repository=trigger.repository, commit=trigger.commit_sha)
        run_trigger(trigger, settings=settings, config=config, mirrors=mirrors, test_user=test_user)

    return app


class ChangeQueue:
    """What the server uses to queue a trigger request for the conductors."""

    def __init__(self, settings: Settings) -> None:
        assert settings.broker_url is not None
        self.queue = changes_queue(settings.queue)
        self.app = Celery("farm-server")
        self.app.conf.update(
            celery_config(settings.broker_url, key_prefix=settings.key_prefix, queue=self.queue)
        )

    def send(self, trigger: TriggerRequest) -> None:
        try:
            self.app.send_task(TASK_NAME, args=[trigger.to_json()], queue=self.queue)
        except Exception as e:  # kombu's and redis-py's errors alike: the broker is away
            raise InfrastructureError(f"cannot queue the run: {type(e).__name__}: {e}") from e

    def close(self) -> None:
        self.app.close()


class Conductors:
    """``farm conductor -c N`` as a child process group that dies with this process."""

    def __init__(
        self, *, concurrency: int, config_path: Path, env: Mapping[str, str], log_path: Path,
        python: str = sys.executable,
    ) -> None:  # fmt: skip
        self.concurrency = concurrency
        self.config_path = config_path.resolve()
        self.env = dict(env)
        self.log_path = log_path
        self.python = python
        self.process: subprocess.Popen[bytes] | None = None
        self.lifeline: Lifeline | None = None

    def start(self) -> None:
        # The broker and database URLs travel in the environment, never the command line.
        env = {**self.env, SERVER_CONFIG_ENV: str(self.config_path)}
        command = [self.python, "-m", "farm", "conductor", "-c", str(self.concurrency), "--local"]
        self.process, self.lifeline = start_on_lifeline(
            command, env=env, cleanup=[], log_path=self.log_path, what="conductors"
        )

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        if self.process is not None:
            if self.process.poll() is None:
                kill_tree(self.process.pid, include_root=True)
            self.process.wait()
            self.process = None
        if self.lifeline is not None:
            self.lifeline.cut()
            self.lifeline = None


__all__ = ["ChangeQueue", "Conductors", "make_conductor_app"]
