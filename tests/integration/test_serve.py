"""``farm serve`` around its app: polling branch heads, refusing bad configuration in
one line, and leaving nothing behind when it is killed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
from helpers import farm_env, git, run_farm

from farm.core.server_config import parse_server_config
from farm.core.settings import Settings
from farm.core.trigger import changes_queue
from farm.run.conductor import ChangeQueue
from farm.run.mirror import remote_heads
from farm.server.intake import Intake
from farm.server.poller import Poller
from farm.store import ResultStore

pytestmark = pytest.mark.integration


def bare_repository(tmp_path: Path) -> tuple[Path, Path]:
    remote = tmp_path / "shop.git"
    work = tmp_path / "work"
    git(tmp_path, "init", "--quiet", "--bare", "--initial-branch=main", str(remote))
    git(tmp_path, "clone", "--quiet", str(remote), str(work))
    (work / "test_a.py").write_text("def test_a():\n    pass\n")
    git(work, "add", "-A")
    git(work, "commit", "--quiet", "-m", "a")
    git(work, "push", "--quiet", "origin", "HEAD:main")
    return remote, work


def test_polling_queues_each_branch_head_once(
    tmp_path: Path, redis_url: str, key_prefix: str, db_url: str
) -> None:
    remote, work = bare_repository(tmp_path)
    git(work, "checkout", "--quiet", "-b", "feature")
    git(work, "commit", "--quiet", "--allow-empty", "-m", "feature")
    git(work, "push", "--quiet", "origin", "feature")
    config = parse_server_config(
        {"repository": [{"name": "github.com/acme/shop", "url": str(remote)}]}, {}
    )
    queue = ChangeQueue(Settings(broker_url=redis_url, key_prefix=key_prefix))
    try:
        with ResultStore.open(db_url) as store:
            poller = Poller(
                config,
                lambda repository: remote_heads(repository.url),
                Intake(store.deliveries, queue.send),
            )
            assert poller.poll_once() == 2  # main and feature
            assert poller.poll_once() == 0  # nothing new
            git(work, "commit", "--quiet", "--allow-empty", "-m", "more")
            git(work, "push", "--quiet", "origin", "feature")
            assert poller.poll_once() == 1
    finally:
        queue.close()
    client = redis.Redis.from_url(redis_url)
    try:
        raw = client.lrange(f"{key_prefix}{changes_queue('farm')}", 0, -1)
    finally:
        client.close()
    assert len(raw) == 3
    sources = {json.loads(json.loads(item)["headers"]["argsrepr"].replace("'", '"'))[0]["source"]
               for item in raw}  # fmt: skip
    assert sources == {"poll"}


@pytest.mark.parametrize(
    ("config_text", "env", "message"),
    [
        (None, {}, "give the server's configuration"),
        ("[[repository]]\nurl = 3\n", {}, "url must be a string"),
        ("[[repository]]\nurl = 'x'\nwebhook_secret_env = 'NOPE'\n", {},
         "the environment variable NOPE is not set"),
        ("[server]\npoll = 1\n", {}, "unknown key 'poll'"),
        ("[[repository]]\nurl = 'https://github.com/a/b'\n", {"FARM_BROKER_URL": ""},
         "needs the farm's broker"),
        ("[[repository]]\nurl = 'https://github.com/a/b'\n",
         {"FARM_BROKER_URL": "redis://127.0.0.1:1", "FARM_TEST_USER": "no-such-user"},
         "'no-such-user' is not a user of this machine"),
    ],
)  # fmt: skip
def test_bad_configuration_is_one_line(
    tmp_path: Path, config_text: str | None, env: dict[str, str], message: str
) -> None:
    args = ["serve"]
    if config_text is not None:
        path = tmp_path / "server.toml"
        path.write_text(config_text)
        args += ["--config", str(path)]
    done = run_farm(*args, cwd=tmp_path, env=farm_env(**env), timeout_s=30)
    assert done.returncode == 4, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("farm: error: ") and message in line


def conductor_pids(config: Path) -> list[int]:
    """Processes whose environment names this test's server configuration."""
    marker = f"FARM_SERVER_CONFIG={config}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker in (entry / "environ").read_bytes().split(b"\0"):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL])
def test_nothing_is_left_when_the_server_ends(
    tmp_path: Path, redis_url: str, key_prefix: str, signum: int
) -> None:
    config = tmp_path / "server.toml"
    config.write_text("[[repository]]\nurl = 'https://github.com/acme/shop'\n")
    env = farm_env(
        FARM_BROKER_URL=redis_url, FARM_KEY_PREFIX=key_prefix,
        FARM_STATE_DIR=str(tmp_path / "state"), FARM_CACHE_DIR=str(tmp_path / "cache"),
    )  # fmt: skip
    server = subprocess.Popen(
        [sys.executable, "-m", "farm", "serve", "--config", str(config), "--port", str(_port()),
         "--conductors", "1"],
        cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not conductor_pids(config) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert conductor_pids(config), "no conductor started"
        time.sleep(1.0)  # the conductor's pool is up
        os.kill(server.pid, signum)
        server.wait(timeout=30)
        deadline = time.monotonic() + 20
        while conductor_pids(config) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert conductor_pids(config) == []
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
        for pid in conductor_pids(config):
            os.kill(pid, signal.SIGKILL)


def _port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port
