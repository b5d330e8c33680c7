"""Root-level plumbing under tests/netns_hosts.py: what touches the machine, in one place.

netns_hosts gives tests hosts and networks; the work beneath them acts on the
machine as root and must be undone even after a killed session, so it lives here:
the ``ip`` wrappers, killing a namespace's processes, the wrapper that hides folders,
lock files, subnet choice, teardown, ``cleanup_stale`` and the availability probe.

Everything the harness makes is named ``<prefix>...`` (``fm`` + 6 hex digits by
default) and is guarded by a lock file held for the network's lifetime, so two test
sessions can run at once and ``cleanup_stale`` removes only what a dead session
left behind. Needs root, iproute2 (``ip``), util-linux (``unshare``, ``mount``).
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
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from farm.run.embedded import find_redis_server

DEFAULT_PREFIX_PATTERN = "fm"
PREFIX_ATTEMPTS = 5
_SUBNET_ATTEMPTS = 200
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


def ip(*args: str, stdin_text: str | None = None, check: bool = True) -> str:
    ip_path = _tool("ip")
    if ip_path is None:
        raise NetnsError("iproute2's ip is not installed")
    done = subprocess.run(
        [ip_path, *args], input=stdin_text, capture_output=True, text=True, timeout=30
    )
    if check and done.returncode != 0:
        raise NetnsError(f"ip {' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


def ip_batch(lines: Sequence[str], *, netns: str | None = None, force: bool = False) -> None:
    # One ip process for many changes: each ip call costs a few milliseconds.
    args = [*(["-n", netns] if netns else []), *(["-force"] if force else []), "-batch", "-"]
    ip(*args, stdin_text="".join(f"{line}\n" for line in lines), check=not force)


def _list_netns() -> list[str]:
    # "name (id: 3)" lines; the id part is absent for namespaces without one.
    return [line.split()[0] for line in ip("netns", "list").splitlines() if line.strip()]


def _list_links() -> list[str]:
    data: list[dict[str, Any]] = json.loads(ip("-j", "link", "show") or "[]")
    return [str(link["ifname"]) for link in data]


def _netns_pids(name: str) -> list[int]:
    # A namespace that is already gone has no processes: not an error here.
    out = ip("netns", "pids", name, check=False)
    return [int(word) for word in out.split() if word.isdigit()]


def kill_netns_processes(name: str, *, timeout_s: float = 5.0) -> int:
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


def netns_argv(netns: str, argv: Sequence[str], cwd: Path, hide: Sequence[Path]) -> list[str]:
    """The command that runs ``argv`` in namespace ``netns`` with ``hide`` covered up."""
    if not argv:
        raise ValueError("argv is empty")
    ip_path, unshare, mount, sh = (_tool(t) for t in ("ip", "unshare", "mount", "sh"))
    if ip_path is None or unshare is None or mount is None or sh is None:
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
        ip_path, "netns", "exec", netns,
        unshare, "--mount", "--propagation", "private",
        sh, "-c", _HIDE_SCRIPT, "farm-netns",
        mount, str(cwd.absolute()), str(len(hidden)), *map(str, hidden),
        *argv,
    ]  # fmt: skip


# --- ownership: a lock file per prefix, held for the network's lifetime ------------


def _state_dir() -> Path:
    run = Path("/run")
    base = run if run.is_dir() and os.access(run, os.W_OK) else Path(tempfile.gettempdir())
    path = base / "farm-netns"
    path.mkdir(mode=0o700, exist_ok=True)
    return path


def _lock_path(prefix: str) -> Path:
    return _state_dir() / f"{prefix}.lock"


def redis_pid_path(prefix: str) -> Path:
    return _state_dir() / f"{prefix}.redis.pid"


def claim_new(prefix: str) -> int | None:
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
            created = claim_new(prefix)
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


def release(prefix: str, fd: int) -> None:
    path = _lock_path(prefix)
    with contextlib.suppress(FileNotFoundError):
        if os.stat(path).st_ino == os.fstat(fd).st_ino:
            path.unlink()
    os.close(fd)


@contextlib.contextmanager
def subnet_lock() -> Iterator[None]:
    # Serialises "pick a free /24 and take it" across sessions on this machine.
    with open(_state_dir() / "subnet.lock", "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        yield


# --- subnets -------------------------------------------------------------------------


def free_subnet(prefix: str) -> tuple[int, int]:
    """(X, Y) of a 10.X.Y.0/24 no route overlaps; hold ``subnet_lock`` until it is used."""
    used = _used_ipv4_networks()
    subnet = next((c for c in _subnet_candidates(prefix) if _subnet_free(*c, used)), None)
    if subnet is None:
        raise NetnsError("no free /24 in 10.0.0.0/8")
    return subnet


def _used_ipv4_networks() -> list[tuple[int, int]]:
    """(network, mask) of every IPv4 route in every table, the default route left out."""
    data: list[dict[str, Any]] = json.loads(ip("-4", "-j", "route", "show", "table", "all") or "[]")
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


def teardown(prefix: str) -> list[str]:
    """Remove everything named after ``prefix``; what could not be removed."""
    ns_re, link_re = _names_of(prefix)
    namespaces = [name for name in _list_netns() if ns_re.fullmatch(name)]
    problems: list[str] = []
    for name in namespaces:
        try:
            kill_netns_processes(name)
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
        ip_batch(lines, force=True)
    for temp in Path(tempfile.gettempdir()).glob(f"farm-netns-{prefix}-*"):
        shutil.rmtree(temp, ignore_errors=True)
    problems += [f"namespace {n} remains" for n in _list_netns() if ns_re.fullmatch(n)]
    problems += [f"link {n} remains" for n in _list_links() if link_re.fullmatch(n)]
    return problems


def _kill_recorded_redis(prefix: str) -> None:
    path = redis_pid_path(prefix)
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
            teardown(prefix)
        finally:
            release(prefix, fd)


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
        for _ in range(PREFIX_ATTEMPTS):
            prefix = f"{DEFAULT_PREFIX_PATTERN}{secrets.token_hex(3)}"
            fd = claim_new(prefix)
            if fd is not None:
                break
    except OSError as e:
        return f"cannot write the network harness's lock files: {e}"
    if fd is None:
        return "no free name for a probe namespace"
    probe_dir = tempfile.mkdtemp(prefix=f"farm-netns-{prefix}-")
    try:
        ip_batch(
            [
                f"netns add {prefix}-h0",
                f"link add {prefix}br type bridge",
                f"link add {prefix}v0 type veth peer name eth0 netns {prefix}-h0",
            ]
        )
        # As Host.run would start it, so the probe tries the very wrapper hosts use.
        done = subprocess.run(
            netns_argv(f"{prefix}-h0", ["ls", "-A", probe_dir], Path("/"), [Path(probe_dir)]),
            cwd="/", env={"PATH": "/usr/bin:/bin"}, stdin=subprocess.DEVNULL,
            capture_output=True, timeout=10, start_new_session=True,
        )  # fmt: skip
        if done.returncode != 0:
            return f"cannot hide a folder in a mount namespace: {done.stderr.decode().strip()}"
    except (NetnsError, OSError, subprocess.SubprocessError) as e:
        return f"cannot make network namespaces here: {e}"
    finally:
        shutil.rmtree(probe_dir, ignore_errors=True)
        with contextlib.suppress(NetnsError, OSError):
            teardown(prefix)
        release(prefix, fd)
    return None
