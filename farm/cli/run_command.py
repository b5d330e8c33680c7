"""Running a suite and writing what it found: shared by ``farm run`` and ``farm ci``."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import click

from farm.cli.options import pytest_args
from farm.core.domain import ChangeRef, RunSummary
from farm.core.errors import CollectionError
from farm.core.settings import Settings


def run_and_report(
    settings: Settings,
    paths: tuple[str, ...],
    rev: str | None,
    change: ChangeRef | None,
    resume_id: str | None,
    junit_xml: str | None,
    json_path: str | None,
) -> RunSummary:
    """Run (or resume) the tests, write the reports and print the summary."""
    from farm.run.embedded import broker_for_run

    env = dict(os.environ)
    worker_env = {**env, "FARM_KEY_PREFIX": settings.key_prefix, "FARM_QUEUE": settings.queue}
    # Local workers keep what they fetch (with --rev or --snapshot on) in the state folder.
    worker_env.setdefault("FARM_CACHE_DIR", str((settings.state_dir / "cache").resolve()))
    started_at = time.time()
    try:
        with broker_for_run(
            settings.state_dir,
            broker_url=settings.broker_url,
            workers=settings.workers,
            env=worker_env,
        ) as (url, local):
            # Imported only now: the local workers boot meanwhile.
            from farm.run.request import RunRequest
            from farm.run.start import execute

            if resume_id:
                from farm.run.resume import resume

                outcome = resume(settings, resume_id, url=url, local=local)
            else:
                request = RunRequest(paths, pytest_args(), Path.cwd(), env, rev, change)
                outcome = execute(settings, request, url=url, local=local)
    except CollectionError as e:
        from farm.run.records import collection_failed

        failed = collection_failed(e, workers=settings.workers, started_at=started_at)
        report(failed, {}, junit_xml, json_path)
        # The summary showed each module's error: the one line of the error follows.
        raise CollectionError(str(e)) from None
    report(outcome.summary, outcome.estimates_s, junit_xml, json_path)
    return outcome.summary


def report(
    summary: RunSummary,
    estimates_s: Mapping[str, float],
    junit_xml: str | None,
    json_path: str | None,
) -> None:
    """Write the reports asked for, then print the summary."""
    from farm.report.json_report import write_json_report
    from farm.report.junit import write_junit_xml
    from farm.report.summary import format_summary
    from farm.report.text import on_ci, terminal_width

    if junit_xml:
        write_junit_xml(Path(junit_xml), summary)
    if json_path:
        write_json_report(Path(json_path), summary)
    color = sys.stdout.isatty() and "NO_COLOR" not in os.environ
    text = format_summary(
        summary, estimates=estimates_s, color=color, width=terminal_width(), ci=on_ci(os.environ)
    )
    click.echo(text)
