"""What the ``farm`` commands share: settings from flags, pytest's options after
``--``, the options every store-reading command takes, the store a reading command
may open, and warnings."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from farm.core import defaults
from farm.core.settings import Settings, load_settings

WORKERS = click.IntRange(min=1)


def settings_from(**flags: Any) -> Settings:
    return load_settings(flags, os.environ, Path.cwd())


def pytest_args() -> tuple[str, ...]:
    obj = click.get_current_context().obj or {}
    return tuple(obj.get("pytest_args", ()))


def common_options(func: Any) -> Any:
    func = click.option("--db", "database_url", help="SQLAlchemy URL of the results database.")(
        func
    )
    func = click.option(
        "--state-dir", help=f"Folder for the embedded Redis and SQLite [{defaults.STATE_DIR}]."
    )(func)
    func = click.option("--project", help="History namespace [name of pytest's rootdir].")(func)
    return func


def existing_store_url(settings: Settings) -> str | None:
    """The configured store, else the state folder's SQLite file if a run made one;
    never a new database (or state folder) for a command that only reads."""
    if settings.database_url:
        return settings.database_url
    if not settings.state_dir.is_dir():
        return None  # asking for the default URL would make the folder
    from farm.store.urls import database_url

    url = settings.database_url_or_default
    database = database_url(url).database
    return url if database and Path(database).is_file() else None


def warn(message: str) -> None:
    """One line on stderr: the command did its work, but maybe not what was meant."""
    click.echo(f"farm: warning: {message}", err=True)
