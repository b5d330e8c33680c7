"""Several "hosts" on one machine, made of network namespaces, for multi-host tests.

farm's distributed mode means a submitter and workers on different machines that
share only a Redis broker. A test that runs them all as plain children of one
process cannot catch a worker that reaches for the submitter's files, nor show what
happens when a machine dies or its network goes. This harness gives each "host" its
own network namespace on a private bridge, a Redis reachable only over that bridge,
and a way to start processes that provably cannot read chosen folders (the
submitter's checkout), so those tests can be real without real machines. This
module holds what tests use; the root-level plumbing beneath it is in netns_admin.

Topology: one Linux bridge in the root namespace holding the gateway address
10.X.Y.1/24, where a dedicated redis-server listens; per host, a veth pair with the
root end on the bridge and the other end (``eth0``) in the host's namespace with
10.X.Y.(10+i)/24 and a default route via the gateway. Nothing is routed outward
and no global setting is changed, so the harness cannot touch the machine's real
network. It is no firewall, though: the gateway is the root namespace, so a host
reaches any root-namespace server listening on all addresses (or on another
network's gateway); only loopback-bound servers are out of its reach.

A caveat: when br_netfilter is loaded with ``bridge-nf-call-iptables=1`` and the
machine's iptables FORWARD policy drops (as Docker sets it), traffic between two
hosts is dropped by that firewall; traffic to the gateway (Redis) is not affected.
The harness does not change that global setting.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import redis
from netns_admin import (
    DEFAULT_PREFIX_PATTERN,
    PREFIX_ATTEMPTS,
    NetnsError,
    claim_new,
    cleanup_stale,
    free_subnet,
    ip,
    ip_batch,
    kill_netns_processes,
    namespaces_unavailable,
    netns_argv,
    redis_pid_path,
    release,
    subnet_lock,
    teardown,
)

from farm.run.embedded import find_redis_server

__all__ = [
    "DEFAULT_PREFIX_PATTERN",
    "MAX_HOSTS",
    "Host",
    "NetnsError",
    "Network",
    "cleanup_stale",
    "namespaces_unavailable",
]

Stream = int | IO[Any] | None

MAX_HOSTS = 244  # host addresses are .11 to .254 of the /24
_IFNAME_MAX = 15  # IFNAMSIZ - 1
_PREFIX_RE = re.compile(r"[a-z][a-z0-9]{0,10}")


# --- hosts ---------------------------------------------------------------------------


class Host:
    """One network namespace: a machine with one interface (``eth0``) on the bridge."""

    def __init__(self, name: str, address: str, veth: str) -> None:
        self.name = name  # the namespace's name
        self.address = address
        self.veth = veth  # the pair's root-side end, on the bridge

    def __repr__(self) -> str:
        return f"Host({self.name!r}, {self.address!r})"

    def popen(
        self,
        argv: Sequence[str],
        *,
        cwd: Path,
        env: Mapping[str, str],
        hide: Sequence[Path] = (),
        stdin: Stream = subprocess.DEVNULL,
        stdout: Stream = None,
        stderr: Stream = None,
    ) -> subprocess.Popen[bytes]:
        """Start ``argv`` on this host, unable to see the folders in ``hide``.

        Each hidden folder is covered by an empty read-only tmpfs in a mount namespace
        of the process's own, so it and its children cannot read what is underneath.
        The process leads a new session (kill its group to stop its children). Exit
        code 125 means the wrapper could not hide a folder or enter ``cwd``.
        """
        return subprocess.Popen(
            netns_argv(self.name, argv, cwd, hide),
            cwd="/",
            env=dict(env),
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,
        )

    def run(
        self,
        argv: Sequence[str],
        *,
        cwd: Path,
        env: Mapping[str, str],
        hide: Sequence[Path] = (),
        timeout_s: float = 30.0,
        input_bytes: bytes | None = None,
    ) -> subprocess.CompletedProcess[bytes]:
        """``popen``, waited for, its output captured; its group killed after ``timeout_s``."""
        process = self.popen(
            argv,
            cwd=cwd,
            env=env,
            hide=hide,
            stdin=subprocess.PIPE if input_bytes is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            out, err = process.communicate(input_bytes, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            out, err = process.communicate()
            raise subprocess.TimeoutExpired(process.args, timeout_s, out, err) from None
        return subprocess.CompletedProcess(process.args, process.returncode, out, err)

    def kill_all(self) -> int:
        """SIGKILL every process in this namespace, as when the machine dies; how many."""
        return kill_netns_processes(self.name)

    def link_down(self) -> None:
        """Cut this host off the network: established connections stall, new ones time out.

        Only the root-side end goes down: the host's own interface stays up with its
        routes, as a machine whose cable was pulled, and ``link_up`` restores it all.
        """
        ip("link", "set", self.veth, "down")

    def link_up(self) -> None:
        ip("link", "set", self.veth, "up")


# --- the network ---------------------------------------------------------------------


class Network:
    """A bridge, ``hosts`` namespaces on it and a Redis on the gateway; a context manager.

    ``broker_url``, ``gateway`` and ``hosts`` are set inside the ``with`` block.
    Leaving it kills every process on every host, stops Redis and deletes every
    namespace, link and temporary folder, also when the body raised.
    """

    def __init__(self, hosts: int, *, prefix: str | None = None) -> None:
        if not 1 <= hosts <= MAX_HOSTS:
            raise ValueError(f"hosts must be 1 to {MAX_HOSTS}, not {hosts}")
        if prefix is not None:
            longest = len(prefix) + 1 + len(str(hosts))  # <prefix>v<i>
            if not _PREFIX_RE.fullmatch(prefix) or longest > _IFNAME_MAX:
                raise ValueError(
                    f"prefix must be lowercase letters and digits, short enough for "
                    f"{prefix}v{hosts} to fit {_IFNAME_MAX} characters: {prefix!r}"
                )
        self.host_count = hosts
        self._fixed_prefix = prefix
        self.prefix = prefix or ""
        self.bridge = ""
        self.gateway = ""
        self.subnet = ""  # "10.X.Y.0/24"
        self.broker_url = ""
        self.hosts: list[Host] = []
        self.temp_dir: Path | None = None
        self._lock_fd: int | None = None
        self._redis: subprocess.Popen[bytes] | None = None

    # -- construction --

    def start(self) -> None:
        if self._lock_fd is not None:
            raise RuntimeError("this Network is already started")
        try:
            self._build()
            self._start_redis()
        except BaseException:
            self.close()
            raise

    def _build(self) -> None:
        for _ in range(PREFIX_ATTEMPTS):
            prefix = self._fixed_prefix or f"{DEFAULT_PREFIX_PATTERN}{secrets.token_hex(3)}"
            fd = claim_new(prefix)
            if fd is None:
                if self._fixed_prefix:
                    raise NetnsError(f"prefix {prefix} is in use by another network")
                continue
            self.prefix, self._lock_fd = prefix, fd
            try:
                self._make_links()
                return
            except NetnsError:
                # Names taken by something else (an ``ip netns add`` by hand, say):
                # undo what we made and try another prefix.
                if self._fixed_prefix:
                    raise
                teardown(prefix)
                release(prefix, fd)
                self._lock_fd = None
        raise NetnsError(f"no free prefix after {PREFIX_ATTEMPTS} attempts")

    def _make_links(self) -> None:
        p = self.prefix
        self.bridge = f"{p}br"
        with subnet_lock():
            subnet = free_subnet(p)
            base = f"10.{subnet[0]}.{subnet[1]}"
            self.subnet, self.gateway = f"{base}.0/24", f"{base}.1"
            self.hosts = [
                Host(f"{p}-h{i}", f"{base}.{10 + i}", f"{p}v{i}")
                for i in range(1, self.host_count + 1)
            ]
            lines = [f"netns add {host.name}" for host in self.hosts]
            lines += [
                f"link add {self.bridge} type bridge",
                f"addr add {self.gateway}/24 dev {self.bridge}",
                f"link set {self.bridge} up",
            ]
            for host in self.hosts:
                lines += [
                    f"link add {host.veth} type veth peer name eth0 netns {host.name}",
                    f"link set {host.veth} master {self.bridge} up",
                ]
            ip_batch(lines)
        for host in self.hosts:
            ip_batch(
                [
                    "link set lo up",
                    f"addr add {host.address}/24 dev eth0",
                    "link set eth0 up",
                    f"route add default via {self.gateway}",
                ],
                netns=host.name,
            )

    def _start_redis(self, *, start_timeout_s: float = 10.0) -> None:
        self.temp_dir = Path(tempfile.mkdtemp(prefix=f"farm-netns-{self.prefix}-"))
        redis_dir = self.temp_dir / "redis"
        redis_dir.mkdir()
        server = find_redis_server()
        # A free port can be taken between our probe and redis's bind: try again then.
        for _ in range(3):
            port = _free_port(self.gateway)
            command = [
                server,
                "--bind", self.gateway,
                "--port", str(port),
                "--protected-mode", "no",  # bound to the bridge only: our hosts are the clients
                "--save", "",
                "--appendonly", "no",
                "--dir", str(redis_dir),
                "--loglevel", "warning",
            ]  # fmt: skip
            log_path = redis_dir / "redis.log"
            with open(log_path, "ab") as log:
                self._redis = subprocess.Popen(
                    command, cwd=redis_dir, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                    start_new_session=True,
                )  # fmt: skip
            redis_pid_path(self.prefix).write_text(str(self._redis.pid))
            url = f"redis://{self.gateway}:{port}/0"
            if _wait_redis(self._redis, url, timeout_s=start_timeout_s):
                self.broker_url = url
                return
            log_text = log_path.read_text(errors="replace")
            self._stop_redis()
            if "in use" not in log_text:
                raise NetnsError(f"redis-server on {url} did not start: {log_text.strip()}")
        raise NetnsError("redis-server found no free port on the gateway")

    # -- teardown --

    def _stop_redis(self) -> None:
        if self._redis is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._redis.pid, signal.SIGKILL)
            self._redis.wait()
            self._redis = None
        if self.prefix:
            redis_pid_path(self.prefix).unlink(missing_ok=True)

    def close(self) -> list[str]:
        """Remove everything this network made; what could not be removed (else [])."""
        problems: list[str] = []
        try:
            if self._lock_fd is not None:
                try:
                    # Processes first, so none is still writing to Redis or the links.
                    for host in self.hosts:
                        try:
                            host.kill_all()
                        except NetnsError as e:
                            problems.append(str(e))
                    self._stop_redis()
                    problems += teardown(self.prefix)
                finally:
                    release(self.prefix, self._lock_fd)
                    self._lock_fd = None
        finally:
            self._stop_redis()
            if self.temp_dir is not None:
                shutil.rmtree(self.temp_dir, ignore_errors=True)
                self.temp_dir = None
        return problems

    def __enter__(self) -> Network:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        problems = self.close()
        if problems:
            message = f"network {self.prefix} not fully removed: {'; '.join(problems)}"
            if exc is None:
                raise NetnsError(message)
            # Do not hide the body's own error behind a cleanup one.
            warnings.warn(message, RuntimeWarning, stacklevel=2)


def _free_port(address: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((address, 0))
        port: int = probe.getsockname()[1]
        return port


def _wait_redis(process: subprocess.Popen[bytes], url: str, *, timeout_s: float) -> bool:
    """True once the server answers PING; False if it exited or stayed silent."""
    deadline = time.monotonic() + timeout_s
    client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
    try:
        while process.poll() is None:
            try:
                client.ping()
                return True
            except (redis.ConnectionError, redis.TimeoutError, OSError):
                if time.monotonic() > deadline:
                    return False
                time.sleep(0.02)
        return False
    finally:
        client.close()
