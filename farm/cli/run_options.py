"""The options of ``farm run`` that name its change and set its retries and flaky policy.

``--change``, ``--branch`` and ``--repository`` name the change the run belongs to
(read from git by :func:`farm.run.change.change_from_git`; with ``--rev`` the change
is that revision). ``--retries``, ``--flaky`` and ``--new-tests-repeat`` are
settings, passed on with the others.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click

from farm.core import defaults
from farm.core.domain import ChangeRef, FlakyPolicy


def run_options(func: Any) -> Any:
    options = [
        click.option(
            "--change",
            "change_sha",
            metavar="SHA",
            help="The commit the run tests, for `farm change show` [--rev, else HEAD].",
        ),
        click.option("--branch", metavar="NAME", help="The change's branch [from git or CI]."),
        click.option(
            "--repository",
            metavar="NAME",
            help="The change's repository [origin's host/path, else the work tree's folder].",
        ),
        click.option(
            "--retries",
            type=click.IntRange(min=0),
            metavar="N",
            help=f"More attempts a failed test gets, each on another slot [{defaults.RETRIES}].",
        ),
        click.option(
            "--flaky",
            type=click.Choice([policy.value for policy in FlakyPolicy]),
            help=f"What a test that passed on a retry makes the verdict [{defaults.FLAKY.value}].",
        ),
        click.option(
            "--new-tests-repeat",
            type=click.IntRange(min=0),
            metavar="N",
            help=f"Runs of a test never seen before [{defaults.NEW_TESTS_REPEAT}].",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def run_change(
    cwd: Path,
    env: Mapping[str, str],
    *,
    rev: str | None,
    change_sha: str | None,
    branch: str | None,
    repository: str | None,
) -> ChangeRef | None:
    """The change a run of ``rev`` (None: the disk) belongs to, from git and the options."""
    from farm.run.change import change_from_git

    commit = change_sha if change_sha is not None else rev
    return change_from_git(cwd, env, commit=commit, branch=branch, repository=repository)
