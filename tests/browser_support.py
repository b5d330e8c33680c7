"""A headless Chromium page for browser tests: Debian's chromium, driven by Playwright.

Playwright's own browser download is not used: the tests drive the distribution's
``/usr/bin/chromium`` (``.ci/run`` installs it), and skip, saying why, where it is
absent. Each test gets a fresh profile folder and leaves a screenshot of its last
page under ``$FARM_TEST_ARTIFACTS/screenshots`` (else the test's temporary folder),
taken however the test ended. Use it by importing the fixture into the test module::

    from browser_support import browser_page  # noqa: F401
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
from helpers import farm_env

if TYPE_CHECKING:
    from playwright.sync_api import Page

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS_ENV = "FARM_TEST_ARTIFACTS"
PAGE_TIMEOUT_MS = 10_000

# No sandbox (CI runs as root in a container); nothing fetched or synced behind the
# test's back, so a test sees only the traffic it makes.
CHROMIUM_FLAGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-quic",
)


def screenshots_dir(tmp_path: Path) -> Path:
    chosen = os.environ.get(ARTIFACTS_ENV)
    return (Path(chosen) if chosen else tmp_path) / "screenshots"


@pytest.fixture
def browser_page(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Page]:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is absent: apt-get install chromium to run browser tests")
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    shots = screenshots_dir(tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
    with sync_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=str(CHROMIUM),
            headless=True,
            args=list(CHROMIUM_FLAGS),
        )
        try:
            page = context.pages[0] if context.pages else context.new_page()
            page.set_default_timeout(PAGE_TIMEOUT_MS)
            yield page
            page.screenshot(path=str(shots / f"{name}.png"), full_page=True)
        finally:
            context.close()


API_TOKEN = "smoke-api-token-" + "x" * 16


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/api/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture
def served(tmp_path: Path, redis_url: str, key_prefix: str, db_url: str) -> Iterator[str]:
    """``farm serve`` without conductors; its URL."""
    config = tmp_path / "server.toml"
    config.write_text("[server]\napi_token_env = 'SMOKE_API_TOKEN'\n")
    env = farm_env(
        FARM_KEY_PREFIX=key_prefix, FARM_QUEUE=key_prefix + "q", FARM_DATABASE_URL=db_url,
        FARM_BROKER_URL=redis_url, FARM_STATE_DIR=str(tmp_path / "state"),
        FARM_TEST_USER="self", SMOKE_API_TOKEN=API_TOKEN,
    )  # fmt: skip
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as output:
        server = subprocess.Popen(
            [sys.executable, "-m", "farm", "serve", "--config", str(config), "--port", str(port),
             "--conductors", "0"],
            cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=output,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while not healthy(url):
            assert server.poll() is None, log.read_text(errors="replace")[-2000:]
            assert time.monotonic() < deadline, "farm serve did not answer within 30 s"
            time.sleep(0.1)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=20)
