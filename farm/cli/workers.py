"""``farm workers``: the workers on the farm, then the machines tests fail on alone.

The live list comes from the worker registry in Redis. When a results store is at
hand (``--db`` or ``FARM_DATABASE_URL``, or the SQLite file of an earlier run in
the state folder) a "suspect machines" section follows: tests whose recent failures
all came from one machine while they passed on others. Without a store, or with
no suspect, nothing more is printed: the list is never held up or failed by it.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

from farm.cli.options import common_options, existing_store_url, settings_from
from farm.core import defaults
from farm.core.domain import MachineSuspect
from farm.core.errors import FarmError, SettingsError
from farm.core.settings import Settings

SUSPECTS_HEADING = "suspect machines:"


@click.command()
@click.option("--broker", "broker_url", help="Redis URL of the farm [FARM_BROKER_URL].")
@click.option("--key-prefix", help=f"Prefix of every Redis key [{defaults.KEY_PREFIX}].")
@click.option("--all", "show_all", is_flag=True, help="Also list workers not seen lately.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines (workers only).")
@common_options
def workers(show_all: bool, as_json: bool, **flags: Any) -> None:
    """List the workers on the farm: name, machine, pid, capacity, queue; then the
    machines the project's tests fail on alone."""
    from farm.core.broker import connect
    from farm.core.keys import Keys
    from farm.worker.registry import WorkerRegistry

    settings = settings_from(**flags)
    if not settings.broker_url:
        raise SettingsError("farm workers needs --broker URL or FARM_BROKER_URL")
    client = connect(settings.broker_url, timeout_s=settings.broker_timeout_s)
    try:
        registry = WorkerRegistry(client, Keys(settings.key_prefix))
        found = registry.all() if show_all else registry.live()
    finally:
        client.close()
    now = time.time()
    for info in found:
        if as_json:
            click.echo(info.to_json())
        else:
            click.echo(
                f"{info.name:20} {info.machine:20} pid {info.pid:<7} capacity {info.capacity:<3} "
                f"queue {info.queue}  seen {now - info.seen_at:.0f}s ago"
            )
    if as_json:
        return
    total = sum(i.capacity for i in found)
    click.echo(f"{len(found)} worker(s), {total} slot(s)")
    suspects = _suspects(settings)
    if suspects:
        click.echo(SUSPECTS_HEADING)
        for suspect in suspects:
            click.echo(f"  {suspect.sentence()}")


def _suspects(settings: Settings) -> tuple[MachineSuspect, ...]:
    """The project's suspect machines, or none when no store is at hand or it fails."""
    url = existing_store_url(settings)
    if url is None:
        return ()
    from farm.core.project import project_name, pytest_rootdir
    from farm.store import ResultStore

    try:
        project = project_name(settings.project, pytest_rootdir((), Path.cwd()))
        with ResultStore.open(url) as store:
            return store.suspect_machines(project, window_runs=settings.quarantine_window_runs)
    except FarmError:
        return ()
