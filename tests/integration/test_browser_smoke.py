"""The browser harness proven on a real ``farm serve``: Chromium reads the health
answer, signs in through the form with the API token and sees itself signed in;
the same server answers /metrics from its broker and store."""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx
from browser_support import API_TOKEN, browser_page, served  # noqa: F401

if TYPE_CHECKING:
    from playwright.sync_api import Page


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
