"""The browser harness proven on a real ``farm serve``: Chromium reads the health
answer, signs in through the form with the API token and sees itself signed in;
the same server answers /metrics from its broker and store."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
from browser_support import browser_page  # noqa: F401
from helpers import farm_env

if TYPE_CHECKING:
    from playwright.sync_api import Page

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


def test_sign_in_through_the_browser(served: str, browser_page: Page) -> None:  # noqa: F811
    page = browser_page
    page.goto(f"{served}/api/health")
    assert '"status":"ok"' in page.content().replace(" ", "")

    page.goto(f"{served}/signin")
    page.fill("input[name=name]", "alice")
    page.fill("input[name=token]", "not the token")
    page.click("button[type=submit]")
    assert page.text_content("#problem") == "That token is not valid."

    page.fill("input[name=name]", "alice")
    page.fill("input[name=token]", API_TOKEN)
    page.click("button[type=submit]")
    page.wait_for_selector("#signed-in")
    assert page.text_content("#signed-in") == "Signed in as alice (writer)."
    (cookie,) = [c for c in page.context.cookies() if c["name"] == "farm_session"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"

    metrics = httpx.get(f"{served}/metrics", timeout=5)
    assert metrics.status_code == 200
    assert 'farm_metrics_source_up{source="broker"} 1.0' in metrics.text
    assert 'farm_metrics_source_up{source="store"} 1.0' in metrics.text
