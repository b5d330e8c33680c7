"""Addresses of the dashboard's pages, written once for statuses, CI summaries and
the dashboard itself. Each is "" when no ``dashboard_url`` is set."""

from __future__ import annotations

from urllib.parse import quote


def run_page(dashboard_url: str, run_id: str) -> str:
    return f"{dashboard_url.rstrip('/')}/runs/{quote(run_id, safe='')}" if dashboard_url else ""


def change_page(dashboard_url: str, commit_sha: str) -> str:
    if not dashboard_url:
        return ""
    return f"{dashboard_url.rstrip('/')}/changes/{quote(commit_sha, safe='')}"


__all__ = ["change_page", "run_page"]
