"""Nothing ``farm run`` starts outlives it, however it ends.

Each test runs farm as a user does (embedded Redis, local workers, real pytest
processes), stops it with a signal while its tests run, and then looks for what
is left: processes (the run's whole process tree, and any process whose command
line or environment names the test's folder), unix sockets, temporary folders.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis
from celery import Celery
from helpers import WorkerProcess, farm_env, make_suite

from farm.core.broker import celery_config, redis_py_url
from farm.core.keys import Keys
from farm.core.shard_task import TASK_NAME
from farm.run.embedded import EmbeddedRedis
from farm.worker.registry import WorkerRegistry

pytestmark = pytest.mark.integration

_START_S = 60.0  # farm run's start-up up to its tests running, on a busy 2-core machine
_GONE_S = 5.0  # what a stopped run started must be gone within this
_TEST_PROCESS = "farm.worker.plugin"  # in the command line of every pytest process farm starts


def _wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"{what} within {timeout_s}s"
        time.sleep(0.1)


def _live_processes() -> dict[int, tuple[int, str]]:
    """pid to (parent pid, command line) of every process that is not a zombie."""
    found = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat_line = (proc / "stat").read_bytes()
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        state, parent = stat_line[stat_line.rfind(b")") + 2 :].split()[:2]
        if state != b"Z":
            found[int(proc.name)] = (int(parent), cmdline)
    return found


def _tree(root_pid: int) -> dict[int, str]:
    """pid to command line of ``root_pid`` and every live process below it."""
    live = _live_processes()
    found = {root_pid: live[root_pid][1]} if root_pid in live else {}
    grew = True
    while grew:
        grew = False
        for pid, (parent, cmdline) in live.items():
            if parent in found and pid not in found:
                found[pid] = cmdline
                grew = True
    return found


def _naming(marker: str) -> dict[int, str]:
    """Live processes (not this one) whose command line or environment holds ``marker``."""
    found = {}
    for pid, (_, cmdline) in _live_processes().items():
        if pid == os.getpid():
            continue
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().decode("utf-8", "replace")
        except OSError:
            environ = ""
        if marker in cmdline or marker in environ:
            found[pid] = cmdline
    return found


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().decode("utf-8", "replace")
    return dict(item.split("=", 1) for item in raw.split("\0") if "=" in item)


def _broker_password(processes: dict[int, str]) -> str:
    """The embedded server's password, from the local worker's environment."""
    worker = next(pid for pid, cmdline in processes.items() if "farm worker" in cmdline)
    password = urlsplit(_environ(worker)["FARM_BROKER_URL"]).password
    assert password
    return password


def _sockets(folder: Path) -> list[Path]:
    return [
        Path(root, name)
        for root, _, names in os.walk(folder)
        for name in names
        if stat.S_ISSOCK(os.lstat(Path(root, name)).st_mode)
    ]


@pytest.mark.parametrize(
    "signum",
    [signal.SIGTERM, signal.SIGHUP, signal.SIGINT, signal.SIGKILL],
    ids=lambda s: signal.Signals(s).name,
)
def test_nothing_outlives_farm_run(tmp_path: Path, signum: int) -> None:
    suite = tmp_path / "suite"
    # Tests that sleep far longer than the test: a leftover pytest process would show.
    make_suite(suite, "--tests", "4", "--modules", "2", "--median", "30", "--sigma", "0")
    state, own_tmp = tmp_path / "state", tmp_path / "tmpdir"
    own_tmp.mkdir()
    farm = subprocess.Popen(
        [sys.executable, "-m", "farm", "run", "-n", "2", "--state-dir", str(state)],
        cwd=suite, env=farm_env(TMPDIR=str(own_tmp)), stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        _wait_for(
            lambda: sum(_TEST_PROCESS in c for c in _tree(farm.pid).values()) >= 2,
            _START_S,
            "two shards running",
        )
        started = _tree(farm.pid)
        password = _broker_password(started)
        for pid in (p for p, cmdline in started.items() if _TEST_PROCESS in cmdline):
            # Test code never sees farm's settings, the broker's password least of all.
            seen = _environ(pid)
            assert not [k for k in seen if k.startswith(("FARM_", "CELERY_"))]
            assert password not in str(seen)
            assert seen.get("TMPDIR") == str(own_tmp)  # not the workers' own
        farm.send_signal(signum)
        out, err = farm.communicate(timeout=30)
    finally:
        if farm.poll() is None:
            farm.kill()
            farm.wait()

    live = _live_processes()
    _wait_for(
        lambda: not (set(started) & set(_live_processes())) and not _naming(str(tmp_path)),
        _GONE_S,
        f"every process of the run gone (left: {[started[p] for p in started if p in live]})",
    )
    assert _sockets(tmp_path) == []
    assert list(own_tmp.iterdir()) == []  # nothing in the TMPDIR farm run was given
    assert not (state / "tmp").exists()  # the workers' own TMPDIR (pymp-* folders)
    logs = "".join(p.read_text(errors="replace") for p in state.glob("*.log"))
    assert password not in out + err + logs
    if signum == signal.SIGKILL:
        return
    assert farm.returncode == 2, out + err
    errors = [line for line in err.splitlines() if line.startswith("farm: error:")]
    assert errors == [f"farm: error: interrupted by {signal.Signals(signum).name}"], err
    assert err.splitlines()[-1] == errors[0]
    assert "Traceback" not in err
    assert "verdict INTERRUPTED" in out


def test_a_hanging_collection_dies_with_a_killed_farm_run(tmp_path: Path) -> None:
    suite = tmp_path / "suite"
    suite.mkdir()
    # An import that never returns: the collection subprocess waits forever.
    (suite / "conftest.py").write_text("import time\ntime.sleep(300)\n")
    (suite / "test_x.py").write_text("def test_x():\n    pass\n")
    own_tmp = tmp_path / "tmpdir"
    own_tmp.mkdir()
    farm = subprocess.Popen(
        [sys.executable, "-m", "farm", "run", "-n", "1", "--state-dir", str(tmp_path / "state")],
        cwd=suite, env=farm_env(TMPDIR=str(own_tmp)), stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        _wait_for(
            lambda: any("--collect-only" in c for c in _tree(farm.pid).values()),
            _START_S,
            "the collection started",
        )
        started = _tree(farm.pid)
        farm.kill()
        farm.wait()
    finally:
        if farm.poll() is None:
            farm.kill()
            farm.wait()
    _wait_for(
        lambda: not (set(started) & set(_live_processes())),
        _GONE_S,
        "the collection and every other process of the run gone",
    )
    assert list(own_tmp.iterdir()) == []  # nothing of the collection's in the TMPDIR


def test_a_worker_of_an_earlier_server_cannot_take_shards(tmp_path: Path) -> None:
    """A worker that outlived its run (simulated: started by hand, no lifeline) finds
    the next run's server on the same socket, but not its password."""
    state = tmp_path / "state"
    first = EmbeddedRedis(state)
    first.start()
    env = farm_env(FARM_BROKER_URL=first.url, FARM_KEY_PREFIX="farm:", FARM_QUEUE="farm")
    worker = WorkerProcess(tmp_path / "worker.log", "-c", "1", "--local", cwd=tmp_path, env=env)
    second = EmbeddedRedis(state)
    try:
        _wait_for(lambda: _live_workers(first.url) == 1, _START_S, "the worker announced")
        second.start()  # stops the first server through its pid file, as a new run does
        assert second.url != first.url
        assert first.process is not None
        first.process.wait(timeout=_GONE_S)
        app = Celery("farm-test")
        app.conf.update(celery_config(second.url, key_prefix="farm:", queue="farm"))
        app.send_task(TASK_NAME, args=[{}])
        app.close()
        # Long enough for the worker's reconnection, which without the password
        # would take the task and fail it at once.
        time.sleep(4)
        client = redis.Redis.from_url(redis_py_url(second.url))
        try:
            assert client.llen("farm:farm") == 1
        finally:
            client.close()
        assert _live_workers(second.url) == 0
    finally:
        worker.kill()
        second.stop()
        if first.process is not None and first.process.poll() is None:
            first.stop()  # the second never started: its files are the first's


def _live_workers(url: str) -> int:
    client = redis.Redis.from_url(redis_py_url(url), socket_connect_timeout=1)
    try:
        return len(WorkerRegistry(client, Keys("farm:")).live())
    except redis.ConnectionError:
        return 0
    finally:
        client.close()


def test_a_killed_worker_leaves_its_temporary_folder_to_the_next_one(
    tmp_path: Path, redis_url: str, key_prefix: str
) -> None:
    """``farm worker`` on a farm: Celery's pool folder lives in the worker's cache,
    and a worker killed with SIGKILL leaves it only until the next one starts."""
    own_tmp, cache = tmp_path / "tmpdir", tmp_path / "cache"
    own_tmp.mkdir()
    env = farm_env(
        FARM_BROKER_URL=redis_url, FARM_KEY_PREFIX=key_prefix, FARM_QUEUE=f"{key_prefix}q",
        TMPDIR=str(own_tmp),
    )  # fmt: skip

    def start(name: str) -> WorkerProcess:
        args = ("-c", "1", "--cache", str(cache), "--name", name)
        return WorkerProcess(tmp_path / f"{name}.log", *args, cwd=tmp_path, env=env)

    def folders() -> list[str]:
        return sorted(p.name for p in (cache / "tmp").iterdir())

    first = start("first")
    try:
        _wait_for(lambda: bool(first.events("worker.ready")), _START_S, "the first worker ready")
        mine = cache / "tmp" / f"worker-{first.process.pid}"
        assert folders() == [mine.name]
        assert any(p.name.startswith("pymp-") for p in mine.iterdir())
    finally:
        first.kill()
    assert list(own_tmp.iterdir()) == []  # nothing of the worker's in the TMPDIR it was given
    second = start("second")
    try:
        _wait_for(lambda: bool(second.events("worker.ready")), _START_S, "the second worker ready")
        assert folders() == [f"worker-{second.process.pid}"]  # the dead one's is gone
    finally:
        second.kill()


def test_a_deep_state_folder_under_a_deep_tmpdir_still_gets_a_socket(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A unix socket's path is at most 108 bytes: with both the state folder and the
    temporary folder too deep for one, the socket goes to a private folder in /tmp,
    which the stop removes."""
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    monkeypatch.setattr(tempfile, "tempdir", str(deep / "tmp"))
    (deep / "tmp").mkdir(parents=True)
    server = EmbeddedRedis(deep / "state")
    server.start()
    try:
        assert str(server.socket_path).startswith("/tmp/farm-")
        client = redis.Redis.from_url(redis_py_url(server.url))
        try:
            assert client.ping()
        finally:
            client.close()
    finally:
        server.stop()
    assert not server.socket_path.parent.exists()
