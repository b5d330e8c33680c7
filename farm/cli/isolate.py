"""``farm run --isolate NODE_ID [--after MODULE]... [PATHS] [-- PYTEST_ARGS]``.

Reruns one test alone and after the modules that ran before it (from the store's
last failing or differing attempt of it, or ``--after``), narrowing them down to
the one whose earlier run changes its outcome (see :mod:`farm.run.isolate`).
Every rerun is a plain pytest process on this machine; nothing goes to a farm, so
the options that shape a farm run are refused with it. Exit 0 with a diagnosis
(the module, or no order dependence), 1 when the outcome changes after all the
modules but after none alone, 4 for bad input (before anything runs), 3 when a
rerun could not run the test.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NoReturn

import click

from farm.cli.options import existing_store_url, pytest_args, settings_from
from farm.core.errors import UsageError

# The options of ``farm run`` that still mean something with --isolate.
_KEPT = frozenset({"database_url", "state_dir", "project"})


def isolate_options(func: Any) -> Any:
    func = click.option(
        "--after",
        "after",
        metavar="MODULE",
        multiple=True,
        help="With --isolate: a module to run before the test (repeat it; in order) "
        "[the modules before its last failing attempt, from the store].",
    )(func)
    func = click.option(
        "--isolate",
        "isolate",
        metavar="NODE_ID",
        help="Rerun this test alone and after the modules that ran before it, to find "
        "the one its outcome depends on (plain pytest here, not on the farm).",
    )(func)
    return func


def run_isolate(
    node_id: str | None,
    after: tuple[str, ...],
    paths: tuple[str, ...],
    given: Mapping[str, object],
    flags: Mapping[str, Any],
) -> NoReturn:
    """``farm run --isolate``: exits with its code. ``given`` maps the option names
    of ``farm run`` that --isolate refuses to their values; ``flags`` holds the rest."""
    if node_id is None:
        raise UsageError("--after goes with --isolate NODE_ID")
    refused = [name for name, value in given.items() if value not in (None, False, ())]
    refused += [
        f"--{name.replace('_', '-')}"
        for name, value in flags.items()
        if name not in _KEPT and value not in (None, False, ())
    ]
    if refused:
        raise UsageError(
            f"--isolate reruns one test with plain pytest here: it takes no {', '.join(refused)}"
        )
    settings = settings_from(**{name: flags.get(name) for name in _KEPT})
    from farm.run.isolate import IsolateRequest, isolate, prepare

    request = IsolateRequest(
        node_id=node_id,
        paths=paths,
        after=after,
        pytest_args=pytest_args(),
        cwd=Path.cwd(),
        env=dict(os.environ),
        project=settings.project,
        store_url=None if after else existing_store_url(settings),
    )
    isolation = prepare(request)
    _, code = isolate(isolation, click.echo)
    sys.exit(code)
