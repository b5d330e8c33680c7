"""Which project's history a command reads and writes.

A *project* is the name the store keeps runs and duration history under. Every
command that touches history (``run``, ``plan``, ``history import``, ``history
export``) names it by one rule, :func:`project_name`: the configured name
(``--project``, ``FARM_PROJECT``, ``[tool.farm] project``) when set, else the name
of the folder pytest chooses as its rootdir for the command's paths from the
working folder. Node ids are relative to that rootdir too, so a durations file
written by pytest for a suite belongs to the project of that suite's rootdir.

A run knows its rootdir from pytest's own collection; a command that collects
nothing asks :func:`pytest_rootdir`, which calls the function pytest itself uses.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from farm.core.domain import module_of
from farm.core.errors import UsageError


def project_name(configured: str, rootdir: Path) -> str:
    """The project of a suite whose pytest rootdir is ``rootdir``.

    The rule itself, written only here: every command names its project by calling
    this with the rootdir it collected, or the one :func:`pytest_rootdir` finds.
    """
    return configured or rootdir.name or str(rootdir)


def project_line(name: str) -> str:
    """What a command prints on stderr to say whose history it uses."""
    return f"farm: project {name}"


def pytest_rootdir(paths: Sequence[str], cwd: Path) -> Path:
    """The rootdir pytest would choose when run from ``cwd`` with ``paths``.

    This is pytest's ``determine_setup`` (config files, then ``setup.py``, then the
    common ancestor of the paths and ``cwd``), so a change of pytest's rule is
    followed here. It is private API whose signature moved between releases: the
    arguments are passed by the names the installed pytest declares. pytest 7.4
    takes no invocation folder and uses the process's own; farm's commands run
    from ``cwd`` anyway.
    """
    import pytest
    from _pytest.config.findpaths import determine_setup

    # Relative paths are made absolute here: older pytest resolves them against
    # the process's folder, not against an invocation folder.
    args = [str(cwd / path) for path in paths]
    accepted = inspect.signature(determine_setup).parameters
    extra: dict[str, Any] = {}
    if "invocation_dir" in accepted:
        extra["invocation_dir"] = cwd
    if "override_ini" in accepted:
        extra["override_ini"] = None
    try:
        found = determine_setup(inifile=None, args=args, rootdir_cmd_arg=None, **extra)
    except pytest.UsageError as e:
        raise UsageError(f"pytest cannot find the rootdir of {cwd}: {e}") from e
    return Path(found[0])


def names_files_under(rootdir: Path, node_ids: Iterable[str]) -> bool:
    """Whether some node id names a test file under ``rootdir`` (true when none is given).

    A durations file whose ids name no file there was written for another rootdir,
    so its history would not meet the tests of this project.
    """
    modules = {module_of(node_id) for node_id in node_ids}
    return not modules or any((rootdir / module).is_file() for module in modules)
