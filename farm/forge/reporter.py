"""One way to tell any configured forge about a change: started, then finished.

:func:`reporter_for` picks from a :class:`~farm.core.server_config.RepositoryConfig`:

* GitHub with an App: a check run, opened by ``started`` and concluded, with its
  summary and annotations, by ``finished``;
* GitHub with a token, or GitLab: a commit status named ``status_context``, pending
  (GitLab: running), then the verdict;
* statuses turned off, or no credential: nothing is sent.

``started`` returns a :class:`StatusHandle` that ``finished`` takes back, so the
check run's id travels with the caller and no reporter holds state between the
two. A caller that never started (or lost the handle) passes ``StatusHandle(sha)``:
the check run is then created concluded.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from farm.core.server_config import ForgeKind, RepositoryConfig
from farm.forge.github import GitHubClient
from farm.forge.gitlab import GitLabClient
from farm.forge.status import StatusReport, StatusState, repository_path

STARTED_DESCRIPTION = "farm is running the tests"


@dataclass(frozen=True)
class StatusHandle:
    """A change whose status was started: ``check_run_id`` is the check run to
    conclude, None for commit statuses (or when none was opened)."""

    change_sha: str
    check_run_id: int | None = None


class StatusReporter(Protocol):
    """Tells a repository's forge that a change's run started, and what it decided."""

    def started(self, change_sha: str, target_url: str) -> StatusHandle: ...

    def finished(self, handle: StatusHandle, report: StatusReport) -> None: ...


class StatusClient(Protocol):
    def set_status(
        self,
        repository: str,
        sha: str,
        *,
        state: StatusState,
        description: str,
        target_url: str,
        context: str,
    ) -> None: ...


@dataclass(frozen=True)
class CommitStatusReporter:
    """One commit status per change, on GitHub or GitLab."""

    client: StatusClient
    repository: str  # host/path
    context: str

    def started(self, change_sha: str, target_url: str) -> StatusHandle:
        self.client.set_status(
            self.repository,
            change_sha,
            state=StatusState.PENDING,
            description=STARTED_DESCRIPTION,
            target_url=target_url,
            context=self.context,
        )
        return StatusHandle(change_sha)

    def finished(self, handle: StatusHandle, report: StatusReport) -> None:
        self.client.set_status(
            self.repository,
            handle.change_sha,
            state=report.state,
            description=report.description,
            target_url=report.target_url,
            context=self.context,
        )


@dataclass(frozen=True)
class CheckRunReporter:
    """One GitHub check run per change, written as a GitHub App."""

    client: GitHubClient
    repository: str
    context: str

    def started(self, change_sha: str, target_url: str) -> StatusHandle:
        run_id = self.client.start_check_run(
            self.repository, change_sha, name=self.context, details_url=target_url
        )
        return StatusHandle(change_sha, run_id)

    def finished(self, handle: StatusHandle, report: StatusReport) -> None:
        self.client.finish_check_run(
            self.repository,
            handle.change_sha,
            name=self.context,
            report=report,
            check_run_id=handle.check_run_id,
        )


class SilentReporter:
    """For a repository that gets no status: sends nothing."""

    def started(self, change_sha: str, target_url: str) -> StatusHandle:
        return StatusHandle(change_sha)

    def finished(self, handle: StatusHandle, report: StatusReport) -> None:
        return None


def reporter_for(
    repository: RepositoryConfig,
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.time,
) -> StatusReporter:
    """The reporter for ``repository``; a name no forge can take is a SettingsError now,
    not at the first status."""
    if not repository.reports_status:
        return SilentReporter()
    name, context = repository.name, repository.status_context
    if repository.forge is ForgeKind.GITLAB:
        repository_path(name)
        return CommitStatusReporter(
            GitLabClient(repository.api_url, repository.token, sleep=sleep), name, context
        )
    repository_path(name, parts=2)
    github = GitHubClient(
        repository.api_url,
        token=repository.token,
        app=repository.github_app,
        sleep=sleep,
        clock=clock,
    )
    if repository.github_app is not None:
        return CheckRunReporter(github, name, context)
    return CommitStatusReporter(github, name, context)


__all__ = [
    "STARTED_DESCRIPTION",
    "CheckRunReporter",
    "CommitStatusReporter",
    "SilentReporter",
    "StatusHandle",
    "StatusReporter",
    "reporter_for",
]
