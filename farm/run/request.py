"""What a run is asked for, and what it gives back."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from farm.core.domain import ChangeRef, RunSummary
from farm.core.test_user import TestUser


@dataclass(frozen=True)
class RunRequest:
    """What the user asked for: paths and pytest options as given, where, with what env."""

    paths: tuple[str, ...]
    pytest_args: tuple[str, ...]
    cwd: Path
    env: Mapping[str, str]
    rev: str | None = None  # test this commit of the cwd's git repository, not the disk
    change: ChangeRef | None = None  # the change the run belongs to; None outside git
    trigger: str = "cli"  # what asked for the run: cli, or a TriggerSource's value
    # Who collecting runs the suite's code as (farm.core.test_user); None: this process's
    # user, as for farm run. Set for code nobody vouched for (a webhook's change).
    test_user: TestUser | None = None


@dataclass(frozen=True)
class Finished:
    """A finished run: its summary and the estimates the report compares against."""

    summary: RunSummary
    estimates_s: dict[str, float]
