"""The run page during a real run: ``farm run`` (embedded Redis and local workers)
writes its results to the database a ``farm serve`` reads, and Chromium watches the
run's progress move, and the run end, without a reload."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from browser_support import browser_page, served  # noqa: F401
from helpers import farm_env
from sqlalchemy import text

from farm.store import ResultStore

if TYPE_CHECKING:
    from playwright.sync_api import Page

TESTS = 10
SUITE = "import time\nimport pytest\n\n\n@pytest.mark.parametrize('n', range({n}))\n" \
    "def test_slow(n):\n    time.sleep(0.3)\n"  # fmt: skip


def running_run_id(db_url: str, deadline_s: float) -> str:
    """The id of the run in state running, once there is one."""
    with ResultStore.open(db_url) as store:
        while time.monotonic() < deadline_s:
            with store._db.transaction("find the running run") as connection:
                found = connection.execute(
                    text("SELECT id FROM runs WHERE state = 'running'")
                ).scalar()
            if found:
                return str(found)
            time.sleep(0.1)
    raise AssertionError("no run started")


def test_the_run_page_follows_a_real_run(
    served: str,  # noqa: F811
    browser_page: Page,  # noqa: F811
    tmp_path: Path,
    db_url: str,
) -> None:
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "test_slow.py").write_text(SUITE.format(n=TESTS))
    env = farm_env(FARM_DATABASE_URL=db_url, FARM_STATE_DIR=str(tmp_path / "run-state"))
    run = subprocess.Popen(
        [sys.executable, "-m", "farm", "run", "-n", "1", "--retries", "0"],
        cwd=suite, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        run_id = running_run_id(db_url, time.monotonic() + 60)
        page = browser_page
        page.goto(f"{served}/runs/{run_id}")
        assert page.text_content("#total-tests") == str(TESTS)
        first = int(page.text_content("#tests-reported") or "0")
        # No reload from here on: the page's own script brings the numbers.
        page.wait_for_function(
            f"Number(document.querySelector('#tests-reported').textContent) > {first}",
            timeout=20_000,
        )
        page.wait_for_function(
            "document.querySelector('#run-state').textContent !== 'running'", timeout=30_000
        )
        assert page.text_content("#tests-reported") == str(TESTS)
        assert page.locator("svg.timeline g.lane").count() == 1  # one worker slot
    finally:
        output, _ = run.communicate(timeout=60)
    assert run.returncode == 0, output.decode(errors="replace")[-3000:]
