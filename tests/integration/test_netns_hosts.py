"""The namespace harness itself: what multi-host tests rely on must hold here first.

Each test checks one promise of tests/netns_hosts.py with real namespaces and
processes: the broker is reachable from every host, hidden folders are unreadable,
hosts reach each other, a host can die or lose its network, and nothing outlives
the network, not even after the session that made it was killed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from netns_hosts import Host, Network, cleanup_stale, namespaces_unavailable

pytestmark = pytest.mark.integration

_UNAVAILABLE = namespaces_unavailable()
if _UNAVAILABLE is not None:
    pytest.skip(_UNAVAILABLE, allow_module_level=True)

TESTS_DIR = Path(__file__).resolve().parent.parent

PING = (
    "import sys, redis; "
    "timeout_s = float(sys.argv[2]); "
    "client = redis.Redis.from_url(sys.argv[1], "
    "socket_connect_timeout=timeout_s, socket_timeout=timeout_s); "
    "print(client.ping())"
)


def _env() -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONDONTWRITEBYTECODE": "1"}


def _ping(host: Host, url: str, *, timeout_s: float = 2.0) -> subprocess.CompletedProcess[bytes]:
    return host.run(
        [sys.executable, "-c", PING, url, str(timeout_s)],
        cwd=Path("/"),
        env=_env(),
        timeout_s=timeout_s + 15,
    )


def _start_ready(host: Host, script: str, *args: str) -> tuple[subprocess.Popen[bytes], str]:
    """A Python process on ``host`` and the first line it printed (so it is running)."""
    process = host.popen(
        [sys.executable, "-c", script, *args], cwd=Path("/"), env=_env(), stdout=subprocess.PIPE
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line, f"process on {host.name} exited before it was ready: {process.wait()}"
    return process, line.decode().strip()


SLEEPER = "import time; print('ready', flush=True); time.sleep(60)"


def _leftovers(prefix: str) -> list[str]:
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    links = subprocess.run(["ip", "-br", "link"], capture_output=True, text=True).stdout
    found = [line for line in (netns + links).splitlines() if prefix in line]
    # redis-server rewrites its title, but its working folder names the prefix.
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes()
                cwd = os.readlink(proc / "cwd")
            except OSError:
                continue
            if prefix.encode() in cmdline or prefix in cwd:
                found.append(f"process {proc.name}: {cmdline!r} in {cwd}")
    return found


@pytest.fixture(scope="module")
def network() -> Iterator[Network]:
    with Network(2) as net:
        yield net


def test_every_host_pings_the_broker(network: Network) -> None:
    assert network.broker_url.startswith(f"redis://{network.gateway}:")
    for host in network.hosts:
        done = _ping(host, network.broker_url)
        assert done.returncode == 0, done.stderr.decode()
        assert done.stdout.strip() == b"True"


def test_hidden_folder_is_empty_inside_and_intact_outside(network: Network, tmp_path: Path) -> None:
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    (checkout / "secret.txt").write_text("submitter only")
    host = network.hosts[0]

    listing = host.run(["ls", "-A", str(checkout)], cwd=Path("/"), env=_env(), hide=[checkout])
    assert listing.returncode == 0, listing.stderr.decode()
    assert listing.stdout == b""
    read = host.run(
        ["cat", str(checkout / "secret.txt")], cwd=Path("/"), env=_env(), hide=[checkout]
    )
    assert read.returncode != 0
    assert b"submitter only" not in read.stdout
    # The cover lives in that process's own mount namespace: nobody else is affected.
    assert (checkout / "secret.txt").read_text() == "submitter only"
    unhidden = host.run(["cat", str(checkout / "secret.txt")], cwd=Path("/"), env=_env())
    assert unhidden.stdout == b"submitter only"


def test_a_working_folder_inside_a_hidden_one_is_refused(network: Network, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="inside hidden folder"):
        network.hosts[0].popen(["true"], cwd=tmp_path / "sub", env=_env(), hide=[tmp_path])


def test_hosts_reach_each_other(network: Network) -> None:
    server_host, client_host = network.hosts[1], network.hosts[0]
    server, port = _start_ready(
        server_host,
        textwrap.dedent(
            """
            import socket, sys
            listener = socket.create_server((sys.argv[1], 0))
            print(listener.getsockname()[1], flush=True)
            connection, peer = listener.accept()
            connection.sendall(f"hello {peer[0]}".encode())
            connection.close()
            """
        ),
        server_host.address,
    )
    try:
        client = client_host.run(
            [
                sys.executable,
                "-c",
                "import socket, sys; "
                "s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5); "
                "print(s.recv(100).decode())",
                server_host.address,
                port,
            ],
            cwd=Path("/"),
            env=_env(),
            timeout_s=15,
        )
        assert client.returncode == 0, client.stderr.decode()
        assert client.stdout.decode().strip() == f"hello {client_host.address}"
        assert server.wait(timeout=5) == 0
    finally:
        server.kill()
        server.wait()


def test_kill_all_kills_a_sleeping_process(network: Network) -> None:
    host = network.hosts[1]
    sleeper, _ = _start_ready(host, SLEEPER)
    assert host.kill_all() >= 1
    assert sleeper.wait(timeout=5) == -signal.SIGKILL
    assert _ping(host, network.broker_url).returncode == 0  # the host itself lives on


def test_link_down_cuts_the_host_off_and_link_up_restores_it(network: Network) -> None:
    host = network.hosts[0]
    assert _ping(host, network.broker_url).returncode == 0
    host.link_down()
    try:
        cut = _ping(host, network.broker_url, timeout_s=0.5)
        assert cut.returncode != 0
        assert b"True" not in cut.stdout
        # The other host is not affected.
        assert _ping(network.hosts[1], network.broker_url).returncode == 0
    finally:
        host.link_up()
    restored = _ping(host, network.broker_url)
    assert restored.returncode == 0, restored.stderr.decode()


def test_two_networks_at_once_stay_apart(network: Network) -> None:
    with Network(1) as other:
        assert other.prefix != network.prefix
        assert other.subnet != network.subnet
        assert _ping(other.hosts[0], other.broker_url).returncode == 0
    assert _ping(network.hosts[0], network.broker_url).returncode == 0


@pytest.mark.parametrize("body_raises", [False, True])
def test_nothing_remains_after_the_network(body_raises: bool) -> None:
    class BodyError(Exception):
        pass

    sleepers: list[subprocess.Popen[bytes]] = []
    temp_dir: Path | None = None
    prefix = ""
    try:
        with Network(2) as net:
            prefix, temp_dir = net.prefix, net.temp_dir
            sleepers = [_start_ready(host, SLEEPER)[0] for host in net.hosts]
            if body_raises:
                raise BodyError
    except BodyError:
        assert body_raises
    assert prefix
    assert _leftovers(prefix) == []
    assert all(sleeper.wait(timeout=5) == -signal.SIGKILL for sleeper in sleepers)
    assert temp_dir is not None
    assert not temp_dir.exists()


def test_cleanup_stale_removes_a_killed_sessions_network_only(network: Network) -> None:
    owner = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from netns_hosts import Network; "
            "net = Network(1); net.start(); print(net.prefix, flush=True); time.sleep(60)",
        ],
        cwd=TESTS_DIR,
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    assert owner.stdout is not None
    stale = owner.stdout.readline().decode().strip()
    assert stale, f"the owner exited: {owner.wait()}"
    os.killpg(owner.pid, signal.SIGKILL)
    owner.wait()
    left = _leftovers(stale)  # a killed session leaves its network and Redis behind
    assert any(item.startswith(f"{stale}-h1") for item in left), left
    assert any(item.startswith("process ") for item in left), left

    deadline = time.monotonic() + 5
    cleanup_stale()
    while _leftovers(stale) and time.monotonic() < deadline:
        time.sleep(0.05)  # a SIGKILLed redis-server can take a moment to be reaped
    assert _leftovers(stale) == []
    # This session's network is alive and still held: it was not touched.
    assert _leftovers(network.prefix) != []
    assert _ping(network.hosts[0], network.broker_url).returncode == 0
