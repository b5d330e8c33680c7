"""Drives pytest for one shard and forwards each test's result as it finishes.

The runner is trusted code in the worker; the pytest process it starts runs
untrusted tests. The two talk through a pipe (see :mod:`farm.worker.plugin`); the test
process's environment is scrubbed of farm's and Celery's variables, so test code
does not see broker or database credentials. The lines on that pipe are defined in
:mod:`farm.worker.pipe`: a result arrives already encoded for the stream and is
forwarded as is. A line of no known kind is ignored; a malformed line of a known
kind raises :class:`~farm.worker.pipe.PipeError`, which ends the shard as a failure
of the worker's (the scheduler hands it out again).

If the pytest process dies in the middle of a test (``os._exit``, a segfault, the
kernel's OOM killer), that test is reported ``crashed`` with what the process
printed, and the rest of the shard goes on in a fresh process. A test that runs past
its time limit is stopped from here, with its stack and output, and reported
``timeout`` (see :mod:`farm.worker.deadline`); the shard goes on the same way. Tests that
pytest never ran (not collected on the worker, an import error) are reported
``error`` with the reason: a test without a result is never silently dropped. The
runner makes those results itself (:mod:`farm.worker.synthetic`).
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from farm.core.defaults import PYTEST_TIMEOUT_GRACE_S
from farm.core.domain import Outcome, TestResult, module_of
from farm.core.messages import CollectFailed, ModuleCollected, encode_event
from farm.core.order import ModuleOrder
from farm.core.pytest_command import pytest_command
from farm.core.pytest_options import PYTEST_TIMEOUT_ENV
from farm.core.shard_task import ShardTask
from farm.worker import pipe
from farm.worker.coverage_relay import CoverageRelay, capture_path
from farm.worker.deadline import OUTPUT_SIGNAL, STACK_SIGNAL, Stopwatch
from farm.worker.spawn import Launch, Spawner, TestProcess
from farm.worker.synthetic import SyntheticResults, not_run_text

_POLL_S = 0.5
_BATCH_S = 0.05
_TAIL_BYTES = 8 * 1024
_STACK_BYTES = 1 << 20  # faulthandler's dump: at most 100 frames of 100 threads
_SECRET_PREFIXES = ("FARM_", "CELERY_")


class EventSink(Protocol):
    """Where a shard's events go (the run's Redis stream in production).

    ``send`` takes events already encoded by :func:`farm.core.messages.encode_event`.
    """

    def send(self, payloads: Sequence[str | bytes]) -> None: ...

    def cancelled(self) -> bool: ...


@dataclass
class _ProcessState:
    """The runner's account of one pytest process of a shard: what it reported on the
    pipe (see :mod:`farm.worker.plugin`), and the clock of the test it is running.

    A shard may take several such processes: after a crash or a timeout, the rest of
    its tests run in a fresh one.
    """

    order: list[str] | None = None
    reported: set[str] = field(default_factory=set)
    finished: bool = False
    exit_status: int | None = None
    collect_errors: list[str] = field(default_factory=list)
    on_collected: Callable[[], None] | None = None
    watch: Stopwatch = field(default_factory=lambda: Stopwatch(0.0))
    captured: str | None = None  # what the in-flight test printed, read after the end
    cursor: int = 0  # every test of the order before it has a result

    @property
    def in_flight_index(self) -> int | None:
        """The index of the running test: the first of the order without a result."""
        if self.finished or self.order is None:
            return None
        # Results come in order: moving a cursor keeps this linear over the shard.
        while self.cursor < len(self.order) and self.order[self.cursor] in self.reported:
            self.cursor += 1
        return self.cursor if self.cursor < len(self.order) else None

    @property
    def in_flight(self) -> str | None:
        """The test running when the process died."""
        index = self.in_flight_index
        return None if index is None or self.order is None else self.order[index]


def scrubbed_env(env: Mapping[str, str]) -> dict[str, str]:
    """The test process's environment: the worker's, less every farm and Celery
    setting, and less ``PYTEST_TIMEOUT``: the run carries the limit the submitter
    resolved (``ShardTask.pytest_timeout_s``), which no worker's setting may change."""
    return {
        key: value
        for key, value in env.items()
        if not key.startswith(_SECRET_PREFIXES) and key != PYTEST_TIMEOUT_ENV
    }


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
        farm_path: str = "",
        machine: str = "",
        tree_root: str = "",  # the tree the shard runs in, when not the rootdir
    ) -> None:
        self.task = task
        self.tree_root = tree_root or task.rootdir
        self.coverage = CoverageRelay()
        self.machine = machine
        self.farm_path = farm_path
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
        self.synthetic = SyntheticResults(task, worker, machine)

    def run(self) -> str:
        """Run every test of the shard; returns a message when the shard did not run cleanly."""
        try:
            message = self._run()
            if self.task.coverage:
                event = self.coverage.event(self.task, self.worker, self.tree_root)
                self.sink.send([encode_event(event)])  # before the job's shard end
            return message
        finally:
            if not self.keep_spare:
                self.spawner.close()

    def _run(self) -> str:
        remaining = list(self.task.node_ids)
        message = ""
        while remaining:
            if self.sink.cancelled():
                return "run cancelled"
            state, tail = self._run_process(remaining)
            left = [n for n in remaining if n not in state.reported]
            overrun, culprit = state.watch.overrun, state.in_flight
            order = ModuleOrder(state.order or [])  # what ran around the test it stopped
            made = self.synthetic
            if overrun is not None and overrun.node_id in left:
                around = order.around(overrun.index)
                self._send(made.timed_out(overrun, state.captured, tail, around, self.clock()))
                stopped = overrun.node_id
                message = f"{stopped} timed out after {overrun.ran_s:.1f}s"
            elif culprit is not None and culprit in left:
                around = order.around(state.in_flight_index or 0)
                code = self.last_exit_code
                self._send(made.crashed(culprit, code, tail, state.captured, around, self.clock()))
                stopped = culprit
                message = f"pytest died with code {self.last_exit_code} in {culprit}"
            else:
                if left:
                    reason = not_run_text(state.collect_errors, self.last_exit_code, tail)
                    for node_id in left:
                        self._send(made.result(node_id, Outcome.ERROR, reason, self.clock()))
                    message = f"{len(left)} test(s) not run: {reason.splitlines()[0]}"
                break
            # The rest of the shard goes on in a fresh process.
            left.remove(stopped)
            remaining = left
        return message

    def _shard(self, node_ids: list[str], test: TestProcess) -> bytes:
        stamp = {
            "run_id": self.task.run_id,
            "shard_id": self.task.shard_id,
            "lease": self.task.lease,
            "worker": self.worker,
            "attempt": self.task.attempt,
            "machine": self.machine,
        }
        shard = {"modules": _module_paths(node_ids), "node_ids": node_ids, "stamp": stamp}
        shard["coverage_out"] = capture_path(test)
        return json.dumps(shard).encode()

    def _command(self) -> list[str]:
        """pytest's command line, without the shard: that arrives on the command pipe."""
        command = [
            *pytest_command(self.python, farm_path=self.farm_path),
            # Before the plugin, which imports it: pytest warns of a -p module already
            # imported (it cannot rewrite it), an error under filterwarnings = error.
            *(["-p", "farm.worker.coverage_capture"] if self.task.coverage else []),
            "-p", "farm.worker.plugin",
            "--farm-limit-bytes", str(self.task.result_limit_bytes),
            "--rootdir", self.task.rootdir,
            "--no-header",
            "-p", "no:cacheprovider",
            "-p", "farm.worker.cache_options",  # --lf, --sw, ...: farm chose the tests
        ]  # fmt: skip
        if self.task.inifile:
            command += ["-c", self.task.inifile]
        return command + list(self.task.pytest_args)

    def _env(self) -> dict[str, str]:
        """What the test process's environment adds to the worker's: with the run's
        pytest-timeout limit, so that pytest-timeout there resolves it as it did on the
        submitter (``--timeout`` is in the options, the ini file is the same)."""
        env = dict(self.extra_env)
        if self.task.pytest_timeout_s is not None:
            env[PYTEST_TIMEOUT_ENV] = repr(self.task.pytest_timeout_s)
        return env

    def _run_process(self, node_ids: list[str]) -> tuple[_ProcessState, str]:
        task = self.task
        launch = Launch(
            self._command(), task.rootdir, self._env(), task.memory_limit_bytes, task.coverage
        )
        test = self.spawner.take(task.run_id, launch)
        if not test.give(self._shard(node_ids, test)):
            test.discard()  # the spare died waiting: start one now
            test = self.spawner.start(launch)
            test.give(self._shard(node_ids, test))
        watch = Stopwatch(
            task.test_timeout_s,
            plugin_s=task.pytest_timeout_s or 0.0,
            grace_s=PYTEST_TIMEOUT_GRACE_S,
        )
        state = _ProcessState(watch=watch)
        if self.keep_spare and self.spawner.spare is None:
            # Start the spare once this process has collected: starting both at once
            # would slow this shard's start by as much as the spare gains the next.
            # With no shard waiting in the queue, a spare would only burn a core.
            def prepare() -> None:
                if self.more_work():
                    self.spawner.prepare(task.run_id, launch)

            state.on_collected = prepare
        try:
            self._pump(test, state)
        finally:
            overrun = state.watch.overrun
            if state.finished and state.exit_status is not None and overrun is None:
                tail = test.tail(_TAIL_BYTES)
                # The session is over and every result is in: let the process exit on
                # its own (atexit hooks, coverage files) while the next shard starts.
                self.last_exit_code = state.exit_status
                self.coverage.gather(test)
                self.spawner.retire(test)
            else:
                test.kill()
                self.last_exit_code = test.process.wait()
                limit_bytes = self.task.result_limit_bytes
                if overrun is not None:
                    # The log holds what the process printed, then the stack dump.
                    tail = test.tail(_TAIL_BYTES, end=overrun.log_offset)
                    overrun.stack = test.tail(_STACK_BYTES, start=overrun.log_offset)
                else:
                    tail = test.tail(_TAIL_BYTES)
                state.captured = test.captured(limit_bytes)
                how = "a test timed out" if overrun else f"exit code {self.last_exit_code}"
                self.coverage.lose(test, f"a test process ended before saving its data ({how})")
                test.discard()
        return state, tail

    def _pump(self, test: TestProcess, state: _ProcessState) -> None:
        """Forward events until the test process closes its end of the pipe.

        Results are sent at most ``_BATCH_S`` after their test finished; a suite of
        very fast tests then costs one Redis round trip per batch, not per test.
        The in-flight test's time limit is checked here too: the wait for the next
        line never outlasts it, and stopping a test never sleeps.
        """
        buffer = b""
        pending: list[bytes] = []
        oldest = 0.0
        with selectors.DefaultSelector() as selector:
            selector.register(test.report_fd, selectors.EVENT_READ)
            while True:
                now = self.clock()
                wake_at = self._watch(test, state, now)
                if state.watch.done(now):
                    break
                timeout = _POLL_S if not pending else max(0.0, oldest + _BATCH_S - now)
                if wake_at is not None:
                    timeout = min(timeout, max(0.0, wake_at - now))
                if not selector.select(timeout=timeout):
                    if pending:
                        self.sink.send(pending)
                        pending = []
                    elif self.sink.cancelled():
                        test.kill()
                        return
                    continue
                chunk = os.read(test.report_fd, 1 << 16)
                if not chunk:
                    break
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                events = [e for e in (self._line(line, state, test) for line in lines) if e]
                if events and not pending:
                    oldest = self.clock()
                pending.extend(events)
                if state.finished and state.watch.overrun is None:
                    break
                if pending and self.clock() - oldest >= _BATCH_S:
                    self.sink.send(pending)
                    pending = []
        if pending:
            self.sink.send(pending)

    def _watch(self, test: TestProcess, state: _ProcessState, now: float) -> float | None:
        """Start stopping the in-flight test once past its limit; when to look again."""
        watch, index = state.watch, state.in_flight_index
        deadline = watch.deadline(index)
        if watch.overrun is None and deadline is not None and now >= deadline:
            assert index is not None and state.order is not None
            watch.stop(state.order[index], index, now, test.log_size())
            # Stack first, output second, both pending at once: see farm.worker.deadline.
            test.signal(signal.SIGSTOP)
            test.signal(STACK_SIGNAL)
            test.signal(OUTPUT_SIGNAL)
            test.signal(signal.SIGCONT)
        return watch.wake_at(index)

    def _line(self, raw: bytes, state: _ProcessState, test: TestProcess) -> bytes | None:
        """Account for one line of the plugin; returns an event to forward, encoded."""
        try:
            line = pipe.decode_line(raw)
        except pipe.UnknownKind:
            return None  # not the plugin's: what test code wrote on the pipe is ignored
        match line:
            case pipe.ResultLine(position, payload):
                overrun = state.watch.overrun
                if overrun is not None and position == overrun.index:
                    return None  # it finished, but only after the runner stopped it
                order = state.order or []
                if 0 <= position < len(order):
                    state.reported.add(order[position])
                state.watch.since = self.clock()  # the next test starts now
                return payload  # already in the stream's wire format
            case pipe.OrderLine(node_ids):
                state.order = node_ids
                state.watch.since = self.clock()
                if state.on_collected is not None:
                    state.on_collected()
                    state.on_collected = None
            case pipe.FinishedLine(exit_status):
                state.finished = True
                state.exit_status = exit_status
            case pipe.TimeoutsLine(limits_s, armed):
                state.watch.marker_s = limits_s
                state.watch.timed_inside = armed
            case pipe.ArmedLine(index, limit_s, in_process):
                state.watch.arm(index, limit_s, in_process, self.clock())
            case pipe.CapturesLine(fds):
                test.keep_captures(fds)
            case pipe.OutputLine(index, output):
                state.watch.answer({"index": index, "output": output})
            case pipe.ModuleLine(module, node_ids, deselected):
                task = self.task
                collected = ModuleCollected(
                    task.run_id, task.shard_id, task.lease, module, tuple(node_ids), deselected
                )
                return encode_event(collected).encode()
            case pipe.CollectErrorLine(where, longrepr):
                state.collect_errors.append(f"{where}:\n{longrepr}")
                task = self.task
                failed = CollectFailed(task.run_id, task.shard_id, task.lease, where, longrepr)
                return encode_event(failed).encode()
        return None

    def _send(self, result: TestResult) -> None:
        """Send a result the runner made (see :mod:`farm.worker.synthetic`)."""
        self.sink.send([encode_event(result)])
