"""The one exception tree of farm.

Every error a user can cause or meet is a :class:`FarmError`; the CLI turns it into
one line on stderr and the exit code the class names, never a traceback.
"""

from __future__ import annotations

from farm.core.domain import ExitCode
from farm.core.pytest_options import PytestOptions


class FarmError(Exception):
    """Raised when farm cannot do what it was asked; the base of every farm error."""

    exit_code: ExitCode = ExitCode.INFRA_ERROR

    def __init__(self, message: str, details: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.details = details  # longer text (a traceback) shown below the one-line message

    def __str__(self) -> str:
        return self.message


class UsageError(FarmError):
    """Raised when a command line, setting or input file is invalid."""

    exit_code = ExitCode.USAGE_ERROR


class SettingsError(UsageError):
    """Raised when a setting from flags, environment or pyproject.toml is invalid."""


class DurationsFileError(UsageError):
    """Raised when a durations or history file cannot be read or holds invalid data."""


class PlanError(UsageError):
    """Raised when a plan cannot be made from the given tests, estimates and workers."""


class CollectionError(FarmError):
    """Raised when pytest cannot collect the suite (syntax error, import error, bad option).

    ``failed`` holds ``(node id of the collector, pytest's report)`` for each module
    that failed to collect, which pytest reports as one error each; ``skipped``
    ``(node id, path, line, reason)`` for each that skipped itself, which pytest
    still counts and lists; ``options`` the options pytest resolved, which say how.
    """

    exit_code = ExitCode.INTERRUPTED

    def __init__(
        self,
        message: str,
        details: str = "",
        failed: tuple[tuple[str, str], ...] = (),
        *,
        skipped: tuple[tuple[str, str, int | None, str], ...] = (),
        options: PytestOptions | None = None,
        messages: tuple[str | None, ...] = (),
    ) -> None:
        super().__init__(message, details)
        self.failed = failed
        self.skipped = skipped
        self.options = options  # as pytest resolved them; None: not known
        self.messages = messages  # each failure's short-summary message (None: none)


class Interrupted(FarmError):
    """Raised when a signal (Ctrl-C, SIGTERM, SIGHUP) stopped ``farm run``."""

    exit_code = ExitCode.INTERRUPTED


class NoTestsCollected(FarmError):
    """Raised when collection succeeds but selects no test."""

    exit_code = ExitCode.NO_TESTS


class InfrastructureError(FarmError):
    """Raised when a part of the farm itself fails: broker, database, workers."""

    exit_code = ExitCode.INFRA_ERROR


class BrokerUnavailable(InfrastructureError):
    """Raised when the Redis broker does not answer or cannot be started."""


class StoreError(InfrastructureError):
    """Raised when the results database cannot be opened, migrated or written."""


class WorkerLost(InfrastructureError):
    """Raised when the workers of a run stop before every shard has reported."""


class ForgeError(InfrastructureError):
    """Raised when a forge (GitHub, GitLab) refuses a status or cannot be reached."""


class CommitNotFound(UsageError):
    """Raised when a commit to check out is not in its repository, even after fetching."""
