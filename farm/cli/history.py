"""``farm history``: import and export test durations, and show what the history
says of a test, by the project rule."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from farm.cli.options import common_options, settings_from, warn

if TYPE_CHECKING:
    from farm.store.records import TestStats


@click.group()
def history() -> None:
    """Import, export or show test history."""


@history.command("import")
@click.argument("file", type=click.Path(dir_okay=False))
@click.argument("paths", nargs=-1)
@common_options
def history_import(file: str, paths: tuple[str, ...], **flags: Any) -> None:
    """Import durations from pytest-split's .test_durations or JUnit XML.

    They go to the project a run of PATHS from here uses; FILE's node ids are
    relative to that project's rootdir, as pytest writes them.
    """
    from farm.core.project import names_files_under, project_name, pytest_rootdir
    from farm.report.history_io import read_history_file
    from farm.store import ResultStore

    settings = settings_from(**flags)
    durations = read_history_file(Path(file))
    rootdir = pytest_rootdir(paths, Path.cwd())
    project = project_name(settings.project, rootdir)
    with ResultStore.open(settings.database_url_or_default) as store:
        count = store.import_durations(project, durations)
        has_runs = store.has_runs(project)
    click.echo(f"imported {count} durations into project {project!r}")
    if not has_runs:
        warn(f"project {project!r} has no runs yet; `farm run` prints the one it uses")
    if not settings.project and not names_files_under(rootdir, durations):
        warn(f"no test file named in {file} is under the rootdir {rootdir}")


@history.command("export")
@click.argument("file", type=click.Path(dir_okay=False), default=".test_durations")
@click.argument("paths", nargs=-1)
@common_options
def history_export(file: str, paths: tuple[str, ...], **flags: Any) -> None:
    """Write the history as pytest-split's .test_durations JSON.

    It is the history of the project a run of PATHS from here uses.
    """
    from farm.core.project import project_name, pytest_rootdir
    from farm.report.history_io import write_test_durations
    from farm.store import ResultStore

    settings = settings_from(**flags)
    project = project_name(settings.project, pytest_rootdir(paths, Path.cwd()))
    with ResultStore.open(settings.database_url_or_default) as store:
        durations = store.export_durations(project)
    write_test_durations(Path(file), durations)
    click.echo(f"exported {len(durations)} durations of project {project!r} to {file}")


@history.command("show")
@click.argument("node_ids", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@common_options
def history_show(node_ids: tuple[str, ...], as_json: bool, **flags: Any) -> None:
    """What the project's history says of each test NODE_ID: durations (the estimate,
    p50 and p90), outcomes, flakiness, when it was first and last seen and last
    failed, and its quarantine."""
    import json

    from farm.core.errors import UsageError
    from farm.core.project import project_name, pytest_rootdir
    from farm.store import ResultStore

    settings = settings_from(**flags)
    project = project_name(settings.project, pytest_rootdir((), Path.cwd()))
    with ResultStore.open(settings.database_url_or_default) as store:
        stats = store.test_stats(project, node_ids)
    if as_json:
        click.echo(json.dumps([_stats_json(stats[n]) for n in node_ids if n in stats], indent=1))
    else:
        for node_id in node_ids:
            if node_id in stats:
                click.echo("\n".join(_stats_lines(stats[node_id])))
    unknown = [n for n in node_ids if n not in stats]
    if unknown:
        raise UsageError(f"project {project!r} has no history of {', '.join(unknown)}")


def _stats_lines(stats: TestStats) -> list[str]:
    flaky = f"flaky in {stats.flaky_runs} run(s)"
    lines = [
        stats.node_id,
        f"  duration: estimate {stats.ewma_s:.3f}s, p50 {stats.p50_s:.3f}s, "
        f"p90 {stats.p90_s:.3f}s ({stats.samples} samples)",
        f"  attempts: {stats.passes} passed, {stats.failures} failed; {flaky}; last runs "
        f"{stats.recent_outcomes or '-'} (p clean, k flaky, f failed; flaky rate "
        f"{stats.flaky_rate:.0%})",
        f"  first seen {_when(stats.first_seen_at)}, last seen {_when(stats.last_seen_at)}, "
        f"last failure {_when(stats.last_failure_at)}"
        + (f" (run {stats.last_failure_run[:12]})" if stats.last_failure_run else ""),
    ]
    entry = stats.quarantine
    if entry is not None:
        until = f", until {_when(entry.until_at)}" if entry.until_at is not None else ""
        lines.append(
            f"  quarantined since {_when(entry.since_at)} by {entry.actor}{until}: {entry.reason}"
        )
    return lines


def _stats_json(stats: TestStats) -> dict[str, Any]:
    data = dataclasses.asdict(stats)
    data["quarantine"] = None if stats.quarantine is None else dataclasses.asdict(stats.quarantine)
    return data


def _when(at: float | None) -> str:
    if at is None:
        return "never"
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(at))
