"""Several "hosts" on one machine, made of network namespaces, for multi-host tests.

farm's distributed mode means a submitter and workers on different machines that
share only a Redis broker. A test that runs them all as plain children of one
process cannot catch a worker that reaches for the submitter's files, nor show what
happens when a machine dies or its network goes. This harness gives each "host" its
own network namespace on a private bridge, a Redis reachable only over that bridge,
and a way to start processes that provably cannot read chosen folders (the
submitter's checkout), so those tests can be real without real machines.

Topology: one Linux bridge in the root namespace holding the gateway address
10.X.Y.1/24, where a dedicated redis-server listens; per host, a veth pair with the
root end on the bridge and the other end (``eth0``) in the host's namespace with
10.X.Y.(10+i)/24 and a default route via the gateway. Nothing is routed outward
and no global setting is changed, so the harness cannot touch the machine's real
network. It is no firewall, though: the gateway is the root namespace, so a host
reaches any root-namespace server listening on all addresses (or on another
network's gateway); only loopback-bound servers are out of its reach.

Everything it makes is named ``<prefix>...`` (``fm`` + 6 hex digits by default)
and is guarded by a lock file held for the network's lifetime, so two test
sessions can run at once and ``cleanup_stale`` removes only what a dead session
left behind. Needs root, iproute2 (``ip``), util-linux (``unshare``, ``mount``).

A caveat: when br_netfilter is loaded with ``bridge-nf-call-iptables=1`` and the
machine's iptables FORWARD policy drops (as Docker sets it), traffic between two
hosts is dropped by that firewall; traffic to the gateway (Redis) is not affected.
The harness does not change that global setting.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import redis

from farm.embedded import find_redis_server

Stream = int | IO[Any] | None

DEFAULT_PREFIX_PATTERN = "fm"
MAX_HOSTS = 244  # host addresses are .11 to .254 of the /24
_IFNAME_MAX = 15  # IFNAMSIZ - 1
_PREFIX_RE = re.compile(r"[a-z][a-z0-9]{0,10}")
_SUBNET_ATTEMPTS = 200
_PREFIX_ATTEMPTS = 5
_WRAPPER_FAILED = 125  # exit code of the in-namespace wrapper when it cannot hide or cd

# Runs inside the host's namespace and a private mount namespace. Paths arrive as
# positional arguments, never spliced into the script, so no path can inject shell.
# It mounts over each hidden folder, then changes directory (so a cwd inside a
# hidden folder cannot keep a handle on what is underneath), then becomes argv.
_HIDE_SCRIPT = """\
mount=$1 cwd=$2 n=$3
shift 3
while [ "$n" -gt 0 ]; do
    "$mount" -t tmpfs -o ro,size=1k,mode=0555 farm-hidden "$1" || exit 125
    shift
    n=$((n - 1))
done
cd "$cwd" || exit 125
exec "$@"
"""


def _tool(name: str) -> str | None:
    # The caller's env may lack /usr/sbin, so resolve once with sbin dirs added.
    path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin", "/usr/bin", "/bin"])
    return shutil.which(name, path=path)


class NetnsError(RuntimeError):
    """An ``ip`` command (or the setup around it) failed."""


def _ip(*args: str, stdin_text: str | None = None, check: bool = True) -> str:
    ip = _tool("ip")
    if ip is None:
        raise NetnsError("iproute2's ip is not installed")
    done = subprocess.run([ip, *args], input=stdin_text, capture_output=True, text=True, timeout=30)
    if check and done.returncode != 0:
        raise NetnsError(f"ip {' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


def _ip_batch(lines: Sequence[str], *, netns: str | None = None, force: bool = False) -> None:
    # One ip process for many changes: each ip call costs a few milliseconds.
    args = [*(["-n", netns] if netns else []), *(["-force"] if force else []), "-batch", "-"]
    _ip(*args, stdin_text="".join(f"{line}\n" for line in lines), check=not force)


def _list_netns() -> list[str]:
    # "name (id: 3)" lines; the id part is absent for namespaces without one.
    return [line.split()[0] for line in _ip("netns", "list").splitlines() if line.strip()]


def _list_links() -> list[str]:
    data: list[dict[str, Any]] = json.loads(_ip("-j", "link", "show") or "[]")
    return [str(link["ifname"]) for link in data]


def _netns_pids(name: str) -> list[int]:
    # A namespace that is already gone has no processes: not an error here.
    out = _ip("netns", "pids", name, check=False)
    return [int(word) for word in out.split() if word.isdigit()]


def _kill_netns_processes(name: str, *, timeout_s: float = 5.0) -> int:
    """SIGKILL every process in the namespace until none is left; how many were killed.

    Repeats because a process may fork between the listing and the kill. Killed
    children of ours become zombies, which ``ip netns pids`` no longer lists.
    """
    killed: set[int] = set()
    deadline = time.monotonic() + timeout_s
    while True:
        pids = _netns_pids(name)
        if not pids:
            return len(killed)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            killed.add(pid)
        if time.monotonic() > deadline:
            raise NetnsError(f"processes in {name} survived SIGKILL for {timeout_s}s: {pids}")
        time.sleep(0.01)


# --- ownership: a lock file per prefix, held for the network's lifetime ------------


def _state_dir() -> Path:
    run = Path("/run")
    base = run if run.is_dir() and os.access(run, os.W_OK) else Path(tempfile.gettempdir())
    path = base / "farm-netns"
    path.mkdir(mode=0o700, exist_ok=True)
    return path


def _lock_path(prefix: str) -> Path:
    return _state_dir() / f"{prefix}.lock"


def _redis_pid_path(prefix: str) -> Path:
    return _state_dir() / f"{prefix}.redis.pid"


def _claim_new(prefix: str) -> int | None:
    """Lock a prefix nobody used yet; None when its lock file exists (a collision).

    The file is locked before it appears under its name (link of a locked temp
    file), so no other session ever sees it unlocked and takes it for stale.
    """
    state = _state_dir()
    fd, temp = tempfile.mkstemp(dir=state, prefix=".claim-")
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.link(temp, _lock_path(prefix))
    except FileExistsError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    finally:
        os.unlink(temp)
    return fd


def _claim_abandoned(prefix: str) -> int | None:
    """Lock a prefix whose owner is gone (or never had a lock file); None while it lives."""
    path = _lock_path(prefix)
    for _ in range(3):
        try:
            fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            created = _claim_new(prefix)
            if created is not None:
                return created
            continue  # someone created it meanwhile: look again
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        # The owner may have released and unlinked it between our open and flock.
        with contextlib.suppress(FileNotFoundError):
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                return fd
        os.close(fd)
    return None


def _release(prefix: str, fd: int) -> None:
    path = _lock_path(prefix)
    with contextlib.suppress(FileNotFoundError):
        if os.stat(path).st_ino == os.fstat(fd).st_ino:
            path.unlink()
    os.close(fd)


@contextlib.contextmanager
def _subnet_lock() -> Iterator[None]:
    # Serialises "pick a free /24 and take it" across sessions on this machine.
    with open(_state_dir() / "subnet.lock", "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        yield


# --- subnets -------------------------------------------------------------------------


def _used_ipv4_networks() -> list[tuple[int, int]]:
    """(network, mask) of every IPv4 route in every table, the default route left out."""
    data: list[dict[str, Any]] = json.loads(
        _ip("-4", "-j", "route", "show", "table", "all") or "[]"
    )
    used = []
    for route in data:
        dst = str(route.get("dst", ""))
        if dst in ("", "default"):
            continue
        address, _, bits_text = dst.partition("/")
        bits = int(bits_text) if bits_text else 32
        if bits == 0:
            continue
        mask = (0xFFFFFFFF << (32 - bits)) & 0xFFFFFFFF
        used.append((_ipv4_to_int(address) & mask, mask))
    return used


def _ipv4_to_int(address: str) -> int:
    return int.from_bytes(socket.inet_aton(address), "big")


def _subnet_free(second: int, third: int, used: Sequence[tuple[int, int]]) -> bool:
    ours = _ipv4_to_int(f"10.{second}.{third}.0")
    ours_mask = 0xFFFFFF00
    # Two networks overlap when either contains the other's base address.
    return not any(
        (ours & mask) == network or (network & ours_mask) == ours for network, mask in used
    )


def _subnet_candidates(prefix: str) -> Iterator[tuple[int, int]]:
    digits = prefix[-4:]
    if re.fullmatch(r"[0-9a-f]{4}", digits):
        yield int(digits[:2], 16), int(digits[2:], 16)
    for _ in range(_SUBNET_ATTEMPTS):
        yield secrets.randbelow(256), secrets.randbelow(256)


# --- teardown, shared by Network and cleanup_stale ----------------------------------


def _names_of(prefix: str) -> tuple[re.Pattern[str], re.Pattern[str]]:
    p = re.escape(prefix)
    return re.compile(rf"{p}-h\d+"), re.compile(rf"{p}(?:br|v\d+)")


def _teardown(prefix: str) -> list[str]:
    """Remove everything named after ``prefix``; what could not be removed."""
    ns_re, link_re = _names_of(prefix)
    namespaces = [name for name in _list_netns() if ns_re.fullmatch(name)]
    problems: list[str] = []
    for name in namespaces:
        try:
            _kill_netns_processes(name)
        except NetnsError as e:
            problems.append(str(e))
    _kill_recorded_redis(prefix)
    links = [name for name in _list_links() if link_re.fullmatch(name)]
    # Root-side veths first: deleting one removes its peer at once, whereas a deleted
    # namespace is dismantled asynchronously and would leave the root end for a while.
    veths = sorted((name for name in links if not name.endswith("br")), key=len)
    bridges = [name for name in links if name.endswith("br")]
    lines = [f"link del {name}" for name in [*veths, *bridges]]
    lines += [f"netns del {name}" for name in namespaces]
    if lines:
        _ip_batch(lines, force=True)
    for temp in Path(tempfile.gettempdir()).glob(f"farm-netns-{prefix}-*"):
        shutil.rmtree(temp, ignore_errors=True)
    problems += [f"namespace {n} remains" for n in _list_netns() if ns_re.fullmatch(n)]
    problems += [f"link {n} remains" for n in _list_links() if link_re.fullmatch(n)]
    return problems


def _kill_recorded_redis(prefix: str) -> None:
    path = _redis_pid_path(prefix)
    try:
        pid = int(path.read_text().strip())
    except (OSError, ValueError):
        return
    # Only the server this harness started. redis-server rewrites its title to
    # "redis-server ADDR:PORT", dropping --dir, but its working folder names the prefix.
    with contextlib.suppress(OSError):
        cwd = os.readlink(f"/proc/{pid}/cwd")
        if f"/farm-netns-{prefix}-" in cwd:
            os.kill(pid, signal.SIGKILL)
    path.unlink(missing_ok=True)


def cleanup_stale(prefix_pattern: str = DEFAULT_PREFIX_PATTERN) -> None:
    """Remove networks a killed session left behind: ``<prefix_pattern>`` + 6 hex digits.

    A network whose owner still holds its lock (a concurrent session) is left alone.
    Prefixes given explicitly to ``Network`` that do not fit the pattern are not seen.
    """
    stem = rf"{re.escape(prefix_pattern)}[0-9a-f]{{6}}"
    found: set[str] = set()
    for name in _list_netns():
        if match := re.fullmatch(rf"({stem})-h\d+", name):
            found.add(match[1])
    for name in _list_links():
        if match := re.fullmatch(rf"({stem})(?:br|v\d+)", name):
            found.add(match[1])
    for path in _state_dir().iterdir():
        if match := re.fullmatch(rf"({stem})\.(?:lock|redis\.pid)", path.name):
            found.add(match[1])
    for path in Path(tempfile.gettempdir()).glob(f"farm-netns-{prefix_pattern}*"):
        if match := re.fullmatch(rf"farm-netns-({stem})-.*", path.name):
            found.add(match[1])
    for prefix in sorted(found):
        fd = _claim_abandoned(prefix)
        if fd is None:
            continue
        try:
            _teardown(prefix)
        finally:
            _release(prefix, fd)


# --- availability --------------------------------------------------------------------


@functools.cache
def namespaces_unavailable() -> str | None:
    """None when this machine can run a ``Network``, else why not (a skip reason).

    Makes a real probe namespace, bridge and veth, and hides a folder in it, because
    being root is not enough inside many containers (no CAP_NET_ADMIN or CAP_SYS_ADMIN).
    """
    if sys.platform != "linux":
        return f"network namespaces need Linux, not {sys.platform}"
    if os.geteuid() != 0:
        return "network namespaces need root (run the tests as root, e.g. in CI's container)"
    missing = [tool for tool in ("ip", "unshare", "mount", "sh") if _tool(tool) is None]
    if missing:
        return f"missing tools for network namespaces: {', '.join(missing)}"
    try:
        find_redis_server()
    except Exception as e:
        return str(e)
    fd: int | None = None
    try:
        for _ in range(_PREFIX_ATTEMPTS):
            prefix = f"{DEFAULT_PREFIX_PATTERN}{secrets.token_hex(3)}"
            fd = _claim_new(prefix)
            if fd is not None:
                break
    except OSError as e:
        return f"cannot write the network harness's lock files: {e}"
    if fd is None:
        return "no free name for a probe namespace"
    probe_dir = tempfile.mkdtemp(prefix=f"farm-netns-{prefix}-")
    try:
        _ip_batch(
            [
                f"netns add {prefix}-h0",
                f"link add {prefix}br type bridge",
                f"link add {prefix}v0 type veth peer name eth0 netns {prefix}-h0",
            ]
        )
        host = Host(f"{prefix}-h0", "0.0.0.0", f"{prefix}v0")
        done = host.run(
            ["ls", "-A", probe_dir], cwd=Path("/"), env={"PATH": "/usr/bin:/bin"},
            hide=[Path(probe_dir)], timeout_s=10,
        )  # fmt: skip
        if done.returncode != 0:
            return f"cannot hide a folder in a mount namespace: {done.stderr.decode().strip()}"
    except (NetnsError, OSError, subprocess.SubprocessError) as e:
        return f"cannot make network namespaces here: {e}"
    finally:
        shutil.rmtree(probe_dir, ignore_errors=True)
        with contextlib.suppress(NetnsError, OSError):
            _teardown(prefix)
        _release(prefix, fd)
    return None


# --- hosts ---------------------------------------------------------------------------


class Host:
    """One network namespace: a machine with one interface (``eth0``) on the bridge."""

    def __init__(self, name: str, address: str, veth: str) -> None:
        self.name = name  # the namespace's name
        self.address = address
        self.veth = veth  # the pair's root-side end, on the bridge

    def __repr__(self) -> str:
        return f"Host({self.name!r}, {self.address!r})"

    def _argv(self, argv: Sequence[str], cwd: Path, hide: Sequence[Path]) -> list[str]:
        if not argv:
            raise ValueError("argv is empty")
        ip, unshare, mount, sh = (_tool(t) for t in ("ip", "unshare", "mount", "sh"))
        if ip is None or unshare is None or mount is None or sh is None:
            raise NetnsError("ip, unshare, mount and sh are needed to start a process")
        hidden = [Path(path).resolve(strict=True) for path in hide]
        for path in hidden:
            if not path.is_dir():
                raise ValueError(f"only folders can be hidden, not {path}")
        # A program or working folder inside a hidden folder would fail with a
        # confusing exit 125 or "not found"; say so here instead.
        first = Path(argv[0])
        inside = [
            cwd.absolute(),
            *([first.absolute(), first.resolve()] if first.is_absolute() else []),
        ]
        for path in hidden:
            for candidate in inside:
                if candidate.is_relative_to(path):
                    raise ValueError(f"{candidate} is inside hidden folder {path}")
        return [
            ip, "netns", "exec", self.name,
            unshare, "--mount", "--propagation", "private",
            sh, "-c", _HIDE_SCRIPT, "farm-netns",
            mount, str(cwd.absolute()), str(len(hidden)), *map(str, hidden),
            *argv,
        ]  # fmt: skip

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
            self._argv(argv, cwd, hide),
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
        return _kill_netns_processes(self.name)

    def link_down(self) -> None:
        """Cut this host off the network: established connections stall, new ones time out.

        Only the root-side end goes down: the host's own interface stays up with its
        routes, as a machine whose cable was pulled, and ``link_up`` restores it all.
        """
        _ip("link", "set", self.veth, "down")

    def link_up(self) -> None:
        _ip("link", "set", self.veth, "up")


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
        for _ in range(_PREFIX_ATTEMPTS):
            prefix = self._fixed_prefix or f"{DEFAULT_PREFIX_PATTERN}{secrets.token_hex(3)}"
            fd = _claim_new(prefix)
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
                _teardown(prefix)
                _release(prefix, fd)
                self._lock_fd = None
        raise NetnsError(f"no free prefix after {_PREFIX_ATTEMPTS} attempts")

    def _make_links(self) -> None:
        p = self.prefix
        self.bridge = f"{p}br"
        with _subnet_lock():
            used = _used_ipv4_networks()
            subnet = next((c for c in _subnet_candidates(p) if _subnet_free(*c, used)), None)
            if subnet is None:
                raise NetnsError("no free /24 in 10.0.0.0/8")
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
            _ip_batch(lines)
        for host in self.hosts:
            _ip_batch(
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
            _redis_pid_path(self.prefix).write_text(str(self._redis.pid))
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
            _redis_pid_path(self.prefix).unlink(missing_ok=True)

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
                    problems += _teardown(self.prefix)
                finally:
                    _release(self.prefix, self._lock_fd)
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
