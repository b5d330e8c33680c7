"""``farm history``: import and export test durations, by the project rule."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from farm.cli.options import common_options, settings_from, warn


@click.group()
def history() -> None:
    """Import or export test duration history."""


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
