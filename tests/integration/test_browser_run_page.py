"""The Run page in Chromium, served by uvicorn on loopback from a real store: the
progress of a running run changes on the open page as results arrive, without a
reload; the time line has a lane per slot; a failure's traceback opens in place,
and so does a failure group, to its tests and their tracebacks."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

import httpx
import pytest
import uvicorn
from browser_support import browser_page, free_port  # noqa: F401
from fastapi import FastAPI
from store_fakes import result

from farm.core.domain import Outcome
from farm.server.pages import page_environment
from farm.server.pages_runs import run_routes
from farm.store import ResultStore, ShardRecord

if TYPE_CHECKING:
    from playwright.sync_api import Page


@pytest.fixture
def store(db_url: str) -> Iterator[ResultStore]:
    with ResultStore.open(db_url) as opened:
        yield opened


@pytest.fixture
def served(store: ResultStore) -> Iterator[str]:
    app = FastAPI()
    app.include_router(run_routes(store.dashboard, environment=page_environment()))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_a_running_run_updates_in_place(
    served: str,
    store: ResultStore,
    browser_page: Page,  # noqa: F811
) -> None:
    run_id = store.create_run(project="proj", trigger="ci", settings={})
    store.start_run(
        run_id,
        total_tests=6,
        estimated_makespan_s=30.0,
        shards=[ShardRecord(0, 3, 15.0), ShardRecord(1, 3, 15.0)],
    )
    now = time.time()
    store.shard_started(run_id, 0, worker="w1:1", started_at=now, machine="m1")
    store.shard_started(run_id, 1, worker="w2:2", started_at=now, machine="m2")
    failing = result(
        run_id, "t.py::db", Outcome.FAILED, shard_id=1,
        longrepr="E       ConnectionRefusedError: [Errno 111] refused\n",
    )  # fmt: skip
    store.record_results([result(run_id, "t.py::a"), failing])

    page = browser_page
    page.goto(f"{served}/runs/{run_id}")
    assert page.text_content("#tests-reported") == "2"
    assert page.locator("#timeline svg g.lane").count() == 2
    headline = page.text_content(".failure-groups details.failure-group summary strong") or ""
    assert headline == "1 test failed with ConnectionRefusedError: [Errno <n>] refused"
    loaded = page.evaluate("performance.timeOrigin")

    store.record_results([result(run_id, "t.py::b"), result(run_id, "t.py::c")])
    page.wait_for_function(
        "document.getElementById('tests-reported').textContent === '4'", timeout=6000
    )
    assert page.evaluate("performance.timeOrigin") == loaded  # the same page, not a reload
    assert page.text_content("#percent") == "66.7%"
    assert page.locator("#timeline svg g.lane").count() == 2  # the refetched drawing

    traceback = page.locator("details.failure pre.traceback")
    assert not traceback.is_visible()
    page.click("details.failure summary")
    traceback.wait_for(state="visible")
    assert "ConnectionRefusedError" in (traceback.text_content() or "")
    assert httpx.get(f"{served}/api/runs/{run_id}", timeout=5).json()["live"] is True

    # A failure group opens to its tests, loaded from the server, each traceback a
    # click away.
    page.click("details.failure-group summary")
    member = page.locator("details.failure-group .group-failures details.failure")
    member.first.wait_for(state="visible")
    assert member.count() == 1
    assert page.text_content("details.failure-group code.node-id") == "t.py::db"
    grouped = page.locator("details.failure-group pre.traceback")
    assert not grouped.is_visible()
    page.click("details.failure-group details.failure summary")
    grouped.wait_for(state="visible")
    assert "ConnectionRefusedError: [Errno 111]" in (grouped.text_content() or "")
