"""Running a suite and writing what it found: shared by ``farm run`` and ``farm ci``.

``plain`` output is for CI logs, which are no terminal even when a CI system gives
the job a pseudo-terminal: progress as plain lines at intervals, no colour.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO, cast

import click

from farm.cli.options import WORKERS, pytest_args
from farm.core import defaults
from farm.core.domain import ChangeRef, RunSummary
from farm.core.errors import CollectionError
from farm.core.settings import Settings

if TYPE_CHECKING:
    from farm.run.request import Finished


def submit_options(func: Any) -> Any:
    """The options that say which farm runs the suite and how it gets the code."""
    options = [
        click.option("-n", "--workers", type=WORKERS, help="Local worker processes [CPU count]."),
        click.option(
            "--broker", "broker_url", help="Redis URL of an existing farm (no embedded Redis)."
        ),
        click.option("--strategy", help=f"Sharding strategy [{defaults.STRATEGY}]."),
        click.option(
            "--snapshot",
            type=click.Choice(["auto", "on", "off"]),
            help="Pack the code for the workers [auto: only with --broker].",
        ),
        click.option(
            "--artifacts", help="Where snapshots go: redis, a folder, s3://bucket/prefix."
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


REPORT_PATH = click.Path(dir_okay=False, writable=True)


def in_writable_folder(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """A report path whose folder can take it, checked before the run, not after it."""
    if value is None:
        return None
    folder = Path(value).parent
    if not folder.is_dir():
        problem = "is not a folder" if folder.exists() else "does not exist"
        raise click.BadParameter(f"{str(folder)!r}, the folder of {value!r}, {problem}")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise click.BadParameter(f"{str(folder)!r}, the folder of {value!r}, is not writable")
    return value


class _NotATerminal:
    """A stream that writes to another and says it is no terminal."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        return self._stream.write(text)

    def flush(self) -> None:
        self._stream.flush()

    def isatty(self) -> bool:
        return False


def run_and_report(
    settings: Settings,
    paths: tuple[str, ...],
    rev: str | None,
    change: ChangeRef | None,
    resume_id: str | None,
    junit_xml: str | None,
    json_path: str | None,
    *,
    plain: bool = False,
    on_report: Callable[[Finished], None] | None = None,
) -> RunSummary:
    """Run (or resume) the tests, write the reports and print the summary.

    ``on_report`` is called once the summary is printed, also for a run whose
    collection failed (with no estimates), before that error is raised.
    """
    from farm.run.embedded import broker_for_run
    from farm.run.request import Finished

    out = cast(TextIO, _NotATerminal(sys.stdout)) if plain else sys.stdout

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

                outcome = resume(settings, resume_id, url=url, local=local, out=out)
            else:
                request = RunRequest(paths, pytest_args(), Path.cwd(), env, rev, change)
                outcome = execute(settings, request, url=url, local=local, out=out)
    except CollectionError as e:
        from farm.run.records import collection_failed

        failed = collection_failed(e, workers=settings.workers, started_at=started_at)
        report(failed, {}, junit_xml, json_path, plain=plain)
        if on_report is not None:
            on_report(Finished(failed, {}))
        # The summary showed each module's error: the one line of the error follows.
        raise CollectionError(str(e)) from None
    report(outcome.summary, outcome.estimates_s, junit_xml, json_path, plain=plain)
    if on_report is not None:
        on_report(outcome)
    return outcome.summary


def report(
    summary: RunSummary,
    estimates_s: Mapping[str, float],
    junit_xml: str | None,
    json_path: str | None,
    *,
    plain: bool = False,
) -> None:
    """Write the reports asked for, then print the summary (without colour when
    ``plain``)."""
    from farm.report.json_report import write_json_report
    from farm.report.junit import write_junit_xml
    from farm.report.summary import format_summary
    from farm.report.text import on_ci, terminal_width

    if junit_xml:
        write_junit_xml(Path(junit_xml), summary)
    if json_path:
        write_json_report(Path(json_path), summary)
    color = not plain and sys.stdout.isatty() and "NO_COLOR" not in os.environ
    text = format_summary(
        summary, estimates=estimates_s, color=color, width=terminal_width(), ci=on_ci(os.environ)
    )
    click.echo(text)
