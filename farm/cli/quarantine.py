"""``farm quarantine list|add|remove``: the project's quarantined tests, by hand and automatic.

A quarantined test still runs and is reported, but its failures do not fail a
verdict. farm quarantines flaky tests on its own (its events name the actor
``farm``); people add and remove entries here with a reason, and every change is
kept as an event with who made it and why. The actor is ``$USER`` (else the login
name); ``farm`` is reserved for the automatic changes. The project is found as
``farm history`` finds it (``--project``, else pytest's rootdir from here).
"""

from __future__ import annotations

import contextlib
import datetime
import getpass
import os
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from farm.cli.options import common_options, settings_from, warn
from farm.core.errors import UsageError

if TYPE_CHECKING:
    from farm.store import ResultStore

# How people write and read the day a quarantine ends.
DATE_FORMAT = "%Y-%m-%d"
# How a moment is shown in the list: minutes are enough to tell events apart for people.
SHOWN_FORMAT = "%Y-%m-%d %H:%M"


@click.group()
def quarantine() -> None:
    """List, add or remove quarantined tests: they run, but their failures do not count."""


@quarantine.command("list")
@click.argument("node_id", required=False)
@click.option("--events", "show_events", is_flag=True, help="Show the history of changes.")
@common_options
def quarantine_list(node_id: str | None, show_events: bool, **flags: Any) -> None:
    """List the project's quarantined tests (or NODE_ID's entry), or with --events
    every time a test entered or left quarantine, newest last."""
    with _open(**flags) as (store, project):
        if show_events:
            events = store.quarantine.events(project, node_id)
            for event in reversed(events):  # the store gives the newest first
                click.echo(
                    f"{_when(event.at)}  {event.node_id}  {event.action.value} by {event.actor}: "
                    f"{event.reason}"
                )
            click.echo(f"{len(events)} event(s) in project {project!r}")
            return
        entries = [e for e in store.quarantine.entries(project) if node_id in (None, e.node_id)]
    for entry in entries:
        who = "automatic" if entry.automatic else f"by {entry.actor}"
        owner = f", owner {entry.owner}" if entry.owner else ""
        until = f", until {_day(entry.until_at)}" if entry.until_at is not None else ""
        click.echo(
            f"{entry.node_id}  since {_when(entry.since_at)}, {who}{owner}{until}: {entry.reason}"
        )
    click.echo(f"{len(entries)} quarantined test(s) in project {project!r}")


@quarantine.command("add")
@click.argument("node_id")
@click.option("--reason", required=True, help="Why: kept with the entry and its event.")
@click.option("--owner", default="", help="Who should fix the test.")
@click.option("--until", "until_day", metavar="YYYY-MM-DD", help="Last day of the quarantine.")
@common_options
def quarantine_add(
    node_id: str, reason: str, owner: str, until_day: str | None, **flags: Any
) -> None:
    """Quarantine NODE_ID in the project, with a reason (and an owner, an end)."""
    reason = _required_text("--reason", reason)
    until_at = None if until_day is None else end_of_day(until_day, datetime.date.today())
    actor = current_actor(os.environ)
    with _open(**flags) as (store, project):
        known = store.test_stats(project, [node_id])
        entry = store.quarantine.add(
            project, node_id, reason=reason, owner=owner.strip(), actor=actor, until_at=until_at
        )
    until = f" until the end of {until_day}" if until_day else ""
    click.echo(f"quarantined {entry.node_id} in project {project!r}{until}")
    if node_id not in known:
        warn(f"project {project!r} has no result of {node_id} yet: is the node id right?")


@quarantine.command("remove")
@click.argument("node_id")
@click.option("--reason", required=True, help="Why: kept with the event.")
@common_options
def quarantine_remove(node_id: str, reason: str, **flags: Any) -> None:
    """Take NODE_ID out of the project's quarantine, with a reason."""
    reason = _required_text("--reason", reason)
    actor = current_actor(os.environ)
    with _open(**flags) as (store, project):
        removed = store.quarantine.remove(project, node_id, reason=reason, actor=actor)
    if not removed:
        raise UsageError(f"{node_id} is not quarantined in project {project!r}")
    click.echo(f"took {node_id} out of quarantine in project {project!r}")


def end_of_day(text: str, today: datetime.date) -> float:
    """The unix time the local day ``text`` (YYYY-MM-DD) ends; today or later only."""
    try:
        day = datetime.datetime.strptime(text.strip(), DATE_FORMAT).date()
    except ValueError:
        raise UsageError(f"--until {text!r} is not a date written YYYY-MM-DD") from None
    if day < today:
        raise UsageError(f"--until {text} is in the past (today is {today.isoformat()})")
    next_day = datetime.datetime.combine(day + datetime.timedelta(days=1), datetime.time())
    return next_day.timestamp()  # local midnight after that day


def current_actor(env: Mapping[str, str]) -> str:
    """Who is changing the quarantine: ``$USER``, else the login name."""
    from farm.core.quarantine import ACTOR

    name = env.get("USER", "").strip()
    if not name:
        try:
            name = getpass.getuser().strip()
        except (OSError, KeyError, ImportError):
            name = ""
    if not name:
        raise UsageError("cannot tell who you are: set USER")
    if name == ACTOR:
        raise UsageError(
            f"the name {ACTOR!r} is kept for farm's own quarantine changes: set USER to who you are"
        )
    return name


@contextlib.contextmanager
def _open(**flags: Any) -> Iterator[tuple[ResultStore, str]]:
    """The store and the project a quarantine command works on; says which project
    on stderr, as ``farm plan`` does."""
    from farm.core.project import project_line, project_name, pytest_rootdir
    from farm.store import ResultStore

    settings = settings_from(**flags)
    project = project_name(settings.project, pytest_rootdir((), Path.cwd()))
    click.echo(project_line(project), err=True)
    with ResultStore.open(settings.database_url_or_default) as store:
        yield store, project


def _required_text(option: str, value: str) -> str:
    text = value.strip()
    if not text:
        raise UsageError(f"{option} must not be empty")
    return text


def _when(at: float) -> str:
    return time.strftime(SHOWN_FORMAT, time.localtime(at))


def _day(at: float) -> str:
    """The last day of a quarantine that ends at ``at`` (a local midnight)."""
    return time.strftime(DATE_FORMAT, time.localtime(at - 1))
