"""Starts the pytest processes that run shards, one ahead of need.

Starting pytest (the interpreter, pytest, its plugins, the suite's conftest files)
costs a few tenths of a second, more when many workers share few cores. A
:class:`Spawner` keeps one *spare*: a pytest process started for the next shard of
the same run, waiting in its collection hook for the shard it will run (see
:mod:`farm.worker.plugin`). The start-up then overlaps the current shard instead of
delaying the next one. A spare serves only the run and options it was started for,
so it never runs tests with code loaded before a later run's changes; a spare
nobody takes exits by itself after ``idle_s``.

Each process has two pipes: the *command* pipe, on which it receives its shard as
one line of JSON, and the *report* pipe, on which it writes its results. Its
output goes to a log file that is unlinked as soon as it is open, so nothing is
left on disk even when the worker is killed.

Each process leads a process group of its own, so that killing it (a test over its
time limit, a cancelled run) also kills what its tests started. With a memory
limit, the process and its children run under ``RLIMIT_AS`` of that size.

With a test user (:mod:`farm.core.test_user`), each process runs as that user, with
a folder of its own in the worker's temporary folder as its ``TMPDIR`` (and its
``HOME`` when the user has no usable one); that folder, like the coverage folder
the process writes in, belongs to the test user and is removed with the process.
"""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from farm.core import defaults
from farm.core.test_user import TestUser, popen_identity, private_dir, user_env
from farm.worker.coverage_capture import DATA_FILE_ENV
from farm.worker.pipe import CAPTURES_KEPT
from farm.worker.test_user import prepare_dir


@dataclass
class TestProcess:
    """A started pytest process and the parent's ends of its pipes."""

    __test__ = False  # not a pytest test class

    process: subprocess.Popen[bytes]
    command_fd: int
    report_fd: int
    log_fd: int  # read end of the process's output, already unlinked
    # The runner's own descriptions of the files pytest captures the running test's
    # stdout and stderr in: what a test printed survives the process's death.
    capture_fds: dict[str, int] = field(default_factory=dict)
    # The folder of the process's coverage data (a run that measures coverage), ""
    # for none: see farm.worker.coverage_relay. Removed with the process.
    coverage_dir: str = ""
    # The test user's folder for this process (its TMPDIR), "" without a test user.
    # Removed with the process.
    own_dir: str = ""

    def give(self, shard: bytes) -> bool:
        """Hand the process its shard (one line of JSON); False if it is already gone.

        The write blocks until the process has read it all: it is waiting for it.
        """
        data = shard + b"\n"
        try:
            while data:
                data = data[os.write(self.command_fd, data) :]
        except BrokenPipeError:
            self._close_commands()
            return False
        return True

    def _close_commands(self) -> None:
        if self.command_fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self.command_fd)
            self.command_fd = -1

    def tail(self, limit_bytes: int, *, start: int = 0, end: int | None = None) -> str:
        """The last ``limit_bytes`` of what the process printed (from ``start`` to ``end``)."""
        return _read_tail(self.log_fd, limit_bytes, start, end)

    def log_size(self) -> int:
        return os.fstat(self.log_fd).st_size

    def keep_captures(self, fds: Mapping[str, int]) -> None:
        """Open the process's capture files (its fds ``fds``) through ``/proc``, then
        tell the process, which waits for that before it runs a test, and close its
        command pipe.

        Only while the process lives can they be opened: without the wait, a test that
        ends its process at once (``os._exit``) could do so before a busy worker read
        this, and its output would be lost. A file that is not regular (the process
        is untrusted: a FIFO would block the read) is not kept.
        """
        try:
            self._open_captures(fds)
        finally:
            if self.command_fd >= 0:
                with contextlib.suppress(OSError):  # it died: nothing waits
                    os.write(self.command_fd, CAPTURES_KEPT + b"\n")
            self._close_commands()

    def _open_captures(self, fds: Mapping[str, int]) -> None:
        for name, fd in fds.items():
            try:
                own_fd = os.open(
                    f"/proc/{self.process.pid}/fd/{int(fd)}", os.O_RDONLY | os.O_NONBLOCK
                )
            except (OSError, ValueError):
                continue
            if stat.S_ISREG(os.fstat(own_fd).st_mode) and name not in self.capture_fds:
                self.capture_fds[name] = own_fd
            else:
                os.close(own_fd)

    def captured(self, limit_bytes: int) -> str | None:
        """What the running test printed and pytest has not read yet (None: unknown).

        pytest empties its capture files at the end of each phase of a test, so this
        is the in-flight phase's output.
        """
        if not self.capture_fds:
            return None
        return "".join(
            f"--- Captured {name} ---\n{text}\n"
            for name, fd in self.capture_fds.items()
            if (text := _read_tail(fd, limit_bytes))
        )

    def signal(self, signum: int) -> None:
        """Send ``signum`` to the process alone (not its group), if it is not reaped."""
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.process.pid, signum)

    def kill(self) -> None:
        """SIGKILL the process and its process group: what its tests started, too.

        Only while the process is not yet reaped: until then its pid, which names
        the group, cannot have been reused.
        """
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.kill()  # should a test have moved it to another group

    def close_fds(self) -> None:
        for fd in (self.command_fd, self.report_fd, self.log_fd, *self.capture_fds.values()):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self.command_fd = self.report_fd = self.log_fd = -1
        self.capture_fds = {}

    def discard(self) -> None:
        """Kill the process if it still runs, close its pipes and remove its log."""
        self.kill()
        self.process.wait()
        self.close_fds()
        self.remove_coverage_dir()
        if self.own_dir:
            shutil.rmtree(self.own_dir, ignore_errors=True)
            self.own_dir = ""

    def remove_coverage_dir(self) -> None:
        if self.coverage_dir:
            shutil.rmtree(self.coverage_dir, ignore_errors=True)
            self.coverage_dir = ""


def _read_tail(fd: int, limit_bytes: int, start: int = 0, end: int | None = None) -> str:
    """The last ``limit_bytes`` of the file ``fd`` between offsets ``start`` and ``end``."""
    end = os.fstat(fd).st_size if end is None else end
    begin = max(start, end - limit_bytes)
    data = os.pread(fd, max(0, end - begin), begin)
    return data.decode("utf-8", "replace")


def limit_memory(pid: int, limit_bytes: int) -> None:
    """Put process ``pid`` under an address-space limit of ``limit_bytes``.

    Soft and hard both, so the untrusted process cannot raise it again; never above
    the worker's own hard limit, which an unprivileged process may not exceed.
    """
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit_bytes = min(limit_bytes, hard)
    with contextlib.suppress(ProcessLookupError):
        resource.prlimit(pid, resource.RLIMIT_AS, (limit_bytes, limit_bytes))


@dataclass(frozen=True)
class Launch:
    """How to start a test process. A spare serves a shard only if its run and its
    launch are the shard's: equal launches start processes that behave the same."""

    command: Sequence[str]
    cwd: str
    extra_env: Mapping[str, str] = field(default_factory=dict)  # over the spawner's env
    memory_limit_bytes: int = 0  # > 0: caps the process's address space
    coverage: bool = False  # each process gets a folder of its own for coverage data


class Spawner:
    """Starts pytest processes for shards, keeping one spare for the same run and launch."""

    def __init__(
        self,
        *,
        env: Mapping[str, str],
        user: TestUser | None = None,
        idle_s: float = defaults.SPARE_IDLE_S,
        exit_grace_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.env = dict(env)
        self.user = user  # who the processes run as; None: the worker's own user
        self.idle_s = idle_s
        self.exit_grace_s = exit_grace_s
        self.clock = clock
        self.spare: tuple[tuple[str, Launch], TestProcess] | None = None
        # Done with their shard, not yet exited, with the time they were retired.
        self.exiting: list[tuple[float, TestProcess]] = []

    def take(self, run_id: str, launch: Launch) -> TestProcess:
        """A process for ``launch``: the spare if it is alive and was started for the
        same run and launch, else a new one."""
        self.reap()
        if self.spare is not None:
            spare_key, spare = self.spare
            if spare_key == (run_id, launch) and spare.process.poll() is None:
                self.spare = None
                return spare
            self._drop_spare()
        return self.start(launch)

    def prepare(self, run_id: str, launch: Launch) -> None:
        """Start the spare for the next shard of ``run_id`` with ``launch``."""
        self._drop_spare()
        test = self.start(launch)
        self.spare = ((run_id, launch), test)

    def _drop_spare(self) -> None:
        if self.spare is not None:
            _, spare = self.spare
            self.spare = None
            spare.discard()

    def start(self, launch: Launch) -> TestProcess:
        """Start a process for ``launch``, without a shard yet."""
        command_read, command_write = os.pipe()
        report_read, report_write = os.pipe()
        log_fd, log_name = tempfile.mkstemp(prefix="farm-pytest-", suffix=".log")
        log_read_fd = os.open(log_name, os.O_RDONLY)
        os.unlink(log_name)
        full = [
            *launch.command,
            "--farm-command-fd", str(command_read),
            "--farm-report-fd", str(report_write),
            "--farm-idle-s", str(self.idle_s),
        ]  # fmt: skip
        own_dir = coverage_dir = ""
        try:
            # In the worker's own TMPDIR, which its end removes however it ends.
            own_dir = private_dir(self.user, prefix="farm-test-") if self.user else ""
            user_vars = user_env(self.user, own_dir) if self.user else {}
            coverage_dir = tempfile.mkdtemp(prefix="farm-cov-") if launch.coverage else ""
            coverage_env = {DATA_FILE_ENV: f"{coverage_dir}/.coverage"} if coverage_dir else {}
            if coverage_dir:
                prepare_dir(coverage_dir, self.user)
            process = subprocess.Popen(
                full,
                cwd=launch.cwd,
                env={**self.env, **launch.extra_env, **coverage_env, **user_vars},
                stdin=subprocess.DEVNULL,
                stdout=log_fd,
                stderr=subprocess.STDOUT,
                pass_fds=(command_read, report_write),
                # setsid in the child, without a preexec_fn: see TestProcess.kill
                start_new_session=True,
                **popen_identity(self.user),
            )
        except BaseException:
            for fd in (command_write, report_read, log_read_fd):
                os.close(fd)
            for folder in (coverage_dir, own_dir):
                if folder:
                    shutil.rmtree(folder, ignore_errors=True)
            raise
        finally:
            for fd in (command_read, report_write, log_fd):
                os.close(fd)
        test = TestProcess(process, command_write, report_read, log_read_fd)
        test.coverage_dir = coverage_dir
        test.own_dir = own_dir
        if launch.memory_limit_bytes > 0:
            # Set from here rather than in a preexec_fn, which is unsafe in a process
            # with threads (a Celery worker has several) and makes subprocess fork
            # where it could vfork. Popen returns once exec succeeded: the child is
            # only starting the interpreter, no test code (conftest files included)
            # has run, and the limit binds everything after.
            try:
                limit_memory(process.pid, launch.memory_limit_bytes)
            except BaseException:
                test.discard()
                raise
        return test

    def retire(self, test: TestProcess) -> None:
        """Let a process whose session has ended exit in its own time."""
        test.close_fds()
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
        self._drop_spare()
        for _, test in self.exiting:
            with contextlib.suppress(subprocess.TimeoutExpired):
                test.process.wait(timeout=grace_s)
            test.discard()
        self.exiting = []
