"""Starts the pytest processes that run shards, one ahead of need.

Starting pytest (the interpreter, pytest, its plugins, the suite's conftest files)
costs a few tenths of a second, more when many workers share few cores. A
:class:`Spawner` keeps one *spare*: a pytest process started for the next shard of
the same run, waiting in its collection hook for the shard it will run (see
:mod:`worker.plugin`). The start-up then overlaps the current shard instead of
delaying the next one. A spare serves only the run and options it was started for,
so it never runs tests with code loaded before a later run's changes; a spare
nobody takes exits by itself after ``idle_s``.

Each process has two pipes: the *command* pipe, on which it receives its shard as
one line of JSON, and the *report* pipe, on which it writes its results. Its
output goes to a log file that is unlinked as soon as it is open, so nothing is
left on disk even when the worker is killed.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass


@dataclass
class TestProcess:
    """A started pytest process and the parent's ends of its pipes."""

    __test__ = False  # not a pytest test class

    process: subprocess.Popen[bytes]
    command_fd: int
    report_fd: int
    log_fd: int  # read end of the process's output, already unlinked

    def give(self, shard: bytes) -> bool:
        """Hand the process its shard (one line of JSON); False if it is already gone.

        The write blocks until the process has read it all: it is waiting for it.
        """
        data = shard + b"\n"
        try:
            while data:
                data = data[os.write(self.command_fd, data) :]
        except BrokenPipeError:
            return False
        finally:
            os.close(self.command_fd)
            self.command_fd = -1
        return True

    def tail(self, limit_bytes: int) -> str:
        """The last ``limit_bytes`` of what the process printed."""
        size = os.fstat(self.log_fd).st_size
        data = os.pread(self.log_fd, limit_bytes, max(0, size - limit_bytes))
        return data.decode("utf-8", "replace")

    def discard(self) -> None:
        """Kill the process if it still runs, close its pipes and remove its log."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        for fd in (self.command_fd, self.report_fd, self.log_fd):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self.command_fd = self.report_fd = self.log_fd = -1


class Spawner:
    """Starts pytest processes for shards, keeping one spare for the same key."""

    def __init__(
        self,
        *,
        env: Mapping[str, str],
        idle_s: float = 120.0,
        exit_grace_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.env = dict(env)
        self.idle_s = idle_s
        self.exit_grace_s = exit_grace_s
        self.clock = clock
        self.spare: tuple[tuple[str, ...], TestProcess] | None = None
        # Done with their shard, not yet exited, with the time they were retired.
        self.exiting: list[tuple[float, TestProcess]] = []

    def take(
        self,
        key: tuple[str, ...],
        command: Sequence[str],
        cwd: str,
        extra_env: Mapping[str, str] | None = None,
    ) -> TestProcess:
        """A process for ``key``: the spare if it is alive and fits, else a new one.

        ``key`` must tell apart everything ``command``, ``cwd`` and ``extra_env`` do.
        """
        self.reap()
        if self.spare is not None:
            spare_key, spare = self.spare
            self.spare = None
            if spare_key == key and spare.process.poll() is None:
                return spare
            spare.discard()
        return self.start(command, cwd, extra_env)

    def prepare(
        self,
        key: tuple[str, ...],
        command: Sequence[str],
        cwd: str,
        extra_env: Mapping[str, str] | None = None,
    ) -> None:
        """Start the spare for the next shard of ``key``."""
        if self.spare is not None:
            self.spare[1].discard()
        self.spare = (key, self.start(command, cwd, extra_env))

    def start(
        self, command: Sequence[str], cwd: str, extra_env: Mapping[str, str] | None = None
    ) -> TestProcess:
        command_read, command_write = os.pipe()
        report_read, report_write = os.pipe()
        log_fd, log_name = tempfile.mkstemp(prefix="farm-pytest-", suffix=".log")
        log_read_fd = os.open(log_name, os.O_RDONLY)
        os.unlink(log_name)
        full = [
            *command,
            "--farm-command-fd", str(command_read),
            "--farm-report-fd", str(report_write),
            "--farm-idle-s", str(self.idle_s),
        ]  # fmt: skip
        try:
            process = subprocess.Popen(
                full,
                cwd=cwd,
                env={**self.env, **(extra_env or {})},
                stdin=subprocess.DEVNULL,
                stdout=log_fd,
                stderr=subprocess.STDOUT,
                pass_fds=(command_read, report_write),
            )
        except BaseException:
            for fd in (command_write, report_read, log_read_fd):
                os.close(fd)
            raise
        finally:
            for fd in (command_read, report_write, log_fd):
                os.close(fd)
        return TestProcess(process, command_write, report_read, log_read_fd)

    def retire(self, test: TestProcess) -> None:
        """Let a process whose session has ended exit in its own time."""
        for fd in (test.command_fd, test.report_fd, test.log_fd):
            if fd >= 0:
                os.close(fd)
        test.command_fd = test.report_fd = test.log_fd = -1
        self.exiting.append((self.clock(), test))

    def reap(self) -> None:
        """Forget processes that have exited; kill those that would not (a test left a
        non-daemon thread behind, say) once ``exit_grace_s`` has passed."""
        still = []
        now = self.clock()
        for retired_at, test in self.exiting:
            if test.process.poll() is None and now - retired_at < self.exit_grace_s:
                still.append((retired_at, test))
            else:
                test.discard()
        self.exiting = still

    def close(self, *, grace_s: float = 5.0) -> None:
        if self.spare is not None:
            self.spare[1].discard()
            self.spare = None
        for _, test in self.exiting:
            with contextlib.suppress(subprocess.TimeoutExpired):
                test.process.wait(timeout=grace_s)
            test.discard()
        self.exiting = []
