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
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

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
