"""Drives pytest for one shard and forwards each test's result as it finishes.

The runner is trusted code in the worker; the pytest process it starts runs
untrusted tests. The two talk through a pipe (see :mod:`worker.plugin`); the test
process's environment is scrubbed of farm's and Celery's variables, so test code
does not see broker or database credentials.

If the pytest process dies in the middle of a test (``os._exit``, a segfault, the
kernel's OOM killer), that test is reported ``crashed`` with what the process
printed, and the rest of the shard goes on in a fresh process. Tests that pytest
never ran (not collected on the worker, an import error) are reported ``error``
with the reason: a test without a result is never silently dropped.
"""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from farm.domain import Outcome, TestResult, module_of
from farm.messages import CollectFailed, ModuleCollected, ShardTask, encode_event
from farm.pytest_command import pytest_command
from worker.spawn import Spawner

_POLL_S = 0.5
_BATCH_S = 0.05
_TAIL_BYTES = 8 * 1024
_SECRET_PREFIXES = ("FARM_", "CELERY_")


class EventSink(Protocol):
    """Where a shard's events go (the run's Redis stream in production).

    ``send`` takes events already encoded by :func:`farm.messages.encode_event`.
    """

    def send(self, payloads: Sequence[str | bytes]) -> None: ...

    def cancelled(self) -> bool: ...


@dataclass
class _Attempt:
    """What one pytest process of a shard reported (see :mod:`worker.plugin`)."""

    order: list[str] | None = None
    reported: set[str] = field(default_factory=set)
    finished: bool = False
    exit_status: int | None = None
    collect_errors: list[str] = field(default_factory=list)
    on_collected: Callable[[], None] | None = None

    @property
    def in_flight(self) -> str | None:
        """The test running when the process died: the first of its order without result."""
        if self.finished or self.order is None:
            return None
        return next((n for n in self.order if n not in self.reported), None)


def scrubbed_env(env: Mapping[str, str]) -> dict[str, str]:
    """The test process's environment: the worker's, less every farm and Celery setting."""
    return {key: value for key, value in env.items() if not key.startswith(_SECRET_PREFIXES)}


def _module_paths(node_ids: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(module_of(node_id) for node_id in node_ids))


class ShardRunner:
    """Runs one :class:`ShardTask`, possibly over several pytest processes."""

    def __init__(
        self,
        task: ShardTask,
        sink: EventSink,
        *,
        worker: str,
        python: str = sys.executable,
        env: Mapping[str, str] | None = None,
        spawner: Spawner | None = None,
        more_work: Callable[[], bool] = lambda: True,
        clock: Callable[[], float] = time.time,
        extra_env: Mapping[str, str] | None = None,
    ) -> None:
        self.task = task
        self.extra_env = dict(extra_env or {})
        self.sink = sink
        self.worker = worker
        self.python = python
        # Without a spawner of the worker's, each process is started when needed and no
        # spare is kept: nothing would take it.
        self.keep_spare = spawner is not None
        self.more_work = more_work
        self.spawner = spawner or Spawner(env=scrubbed_env(os.environ if env is None else env))
        self.clock = clock
        self.last_exit_code = 0

    def run(self) -> str:
        """Run every test of the shard; returns a message when the shard did not run cleanly."""
        try:
            return self._run()
        finally:
            if not self.keep_spare:
                self.spawner.close()

    def _run(self) -> str:
        remaining = list(self.task.node_ids)
        message = ""
        while remaining:
            if self.sink.cancelled():
                return "run cancelled"
            attempt, tail = self._run_process(remaining)
            left = [n for n in remaining if n not in attempt.reported]
            culprit = attempt.in_flight
            if culprit is not None and culprit in left:
                self._send_synthetic(culprit, Outcome.CRASHED, self._crash_text(tail))
                left.remove(culprit)
                message = f"pytest died with code {self.last_exit_code} in {culprit}"
                remaining = left
                continue
            if left:
                reason = self._missing_text(attempt, tail)
                for node_id in left:
                    self._send_synthetic(node_id, Outcome.ERROR, reason)
                message = f"{len(left)} test(s) not run: {reason.splitlines()[0]}"
            remaining = []
        return message

    def _shard(self, node_ids: list[str]) -> bytes:
        stamp = {
            "run_id": self.task.run_id,
            "shard_id": self.task.shard_id,
            "lease": self.task.lease,
            "worker": self.worker,
            "attempt": 1,
        }
        shard = {"modules": _module_paths(node_ids), "node_ids": node_ids, "stamp": stamp}
        return json.dumps(shard).encode()

    def _command(self) -> list[str]:
        """pytest's command line, without the shard: that arrives on the command pipe."""
        command = [
            *pytest_command(self.python),
            "-p", "worker.plugin",
            "--farm-limit-bytes", str(self.task.result_limit_bytes),
            "--rootdir", self.task.rootdir,
            "-q", "--no-header",
            "-p", "no:cacheprovider",
        ]  # fmt: skip
        if self.task.inifile:
            command += ["-c", self.task.inifile]
        return command + list(self.task.pytest_args)

    def _key(self) -> tuple[str, ...]:
        """What a spare must match to serve this shard: same run, same options."""
        task = self.task
        limit = str(task.result_limit_bytes)
        return (task.run_id, self.python, task.rootdir, task.inifile, limit, *task.pytest_args)

    def _run_process(self, node_ids: list[str]) -> tuple[_Attempt, str]:
        shard = self._shard(node_ids)
        command, key, cwd = self._command(), self._key(), self.task.rootdir
        test = self.spawner.take(key, command, cwd, self.extra_env)
        if not test.give(shard):
            test.discard()  # the spare died waiting: start one now
            test = self.spawner.start(command, cwd, self.extra_env)
            test.give(shard)
        attempt = _Attempt()
        if self.keep_spare and self.spawner.spare is None:
            # Start the spare once this process has collected: starting both at once
            # would slow this shard's start by as much as the spare gains the next.
            # With no shard waiting in the queue, a spare would only burn a core.
            def prepare() -> None:
                if self.more_work():
                    self.spawner.prepare(key, command, cwd, self.extra_env)

            attempt.on_collected = prepare
        try:
            self._pump(test.report_fd, attempt, test.process)
        finally:
            tail = test.tail(_TAIL_BYTES)
            if attempt.finished and attempt.exit_status is not None:
                # The session is over and every result is in: let the process exit on
                # its own (atexit hooks, coverage files) while the next shard starts.
                self.last_exit_code = attempt.exit_status
                self.spawner.retire(test)
            else:
                if test.process.poll() is None:
                    test.process.kill()
                self.last_exit_code = test.process.wait()
                test.discard()
        return attempt, tail

    def _pump(self, read_fd: int, attempt: _Attempt, process: subprocess.Popen[bytes]) -> None:
        """Forward events until the test process closes its end of the pipe.

        Results are sent at most ``_BATCH_S`` after their test finished; a suite of
        very fast tests then costs one Redis round trip per batch, not per test.
        """
        buffer = b""
        pending: list[bytes] = []
        oldest = 0.0
        with selectors.DefaultSelector() as selector:
            selector.register(read_fd, selectors.EVENT_READ)
            while True:
                timeout = _POLL_S if not pending else max(0.0, oldest + _BATCH_S - self.clock())
                if not selector.select(timeout=timeout):
                    if pending:
                        self.sink.send(pending)
                        pending = []
                    elif self.sink.cancelled():
                        process.kill()
                        return
                    continue
                chunk = os.read(read_fd, 1 << 16)
                if not chunk:
                    if pending:
                        self.sink.send(pending)
                    return
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                events = [e for e in (self._line(line, attempt) for line in lines) if e]
                if events and not pending:
                    oldest = self.clock()
                pending.extend(events)
                if attempt.finished:
                    if pending:
                        self.sink.send(pending)
                    return
                if pending and self.clock() - oldest >= _BATCH_S:
                    self.sink.send(pending)
                    pending = []

    def _line(self, line: bytes, attempt: _Attempt) -> bytes | None:
        """Account for one line of the plugin; returns a result to forward, as is."""
        kind, rest = line[:1], line[1:]
        if kind == b"R":
            index, payload = rest.split(b"\t", 1)
            order = attempt.order or []
            position = int(index)
            if 0 <= position < len(order):
                attempt.reported.add(order[position])
            return payload
        if kind == b"O":
            attempt.order = json.loads(rest)
            if attempt.on_collected is not None:
                attempt.on_collected()
                attempt.on_collected = None
        elif kind == b"F":
            attempt.finished = True
            attempt.exit_status = int(rest)
        elif kind == b"M":
            data: dict[str, Any] = json.loads(rest)
            event = ModuleCollected(
                self.task.run_id,
                self.task.shard_id,
                self.task.lease,
                str(data["module"]),
                tuple(data["node_ids"]),
            )
            return encode_event(event).encode()
        elif kind == b"C":
            data = json.loads(rest)
            attempt.collect_errors.append(f"{data['where']}:\n{data['longrepr']}")
            failed = CollectFailed(
                self.task.run_id,
                self.task.shard_id,
                self.task.lease,
                str(data["where"]),
                str(data["longrepr"]),
            )
            return encode_event(failed).encode()
        return None

    def _send_synthetic(self, node_id: str, outcome: Outcome, text: str) -> None:
        now = self.clock()
        self.sink.send(
            [
                encode_event(
                    TestResult(
                        run_id=self.task.run_id,
                        shard_id=self.task.shard_id,
                        lease=self.task.lease,
                        node_id=node_id,
                        outcome=outcome,
                        duration_s=0.0,
                        worker=self.worker,
                        longrepr=text,
                        started_at=now,
                        finished_at=now,
                    )
                )
            ]
        )

    def _crash_text(self, tail: str) -> str:
        code = self.last_exit_code
        how = f"killed by signal {-code}" if code < 0 else f"exited with code {code}"
        return f"the test process {how} during this test; its last output:\n{tail}"

    def _missing_text(self, attempt: _Attempt, tail: str) -> str:
        if attempt.collect_errors:
            return "collection failed on the worker:\n" + "\n".join(attempt.collect_errors)
        return (
            f"pytest on the worker did not run this test (exit code {self.last_exit_code}); "
            f"its last output:\n{tail}"
        )
