"""The change a CI job tests: what the CI system says, what git says, what flags say.

Each field is taken from the first that knows it: the flag (``--change``,
``--branch``, ``--repository``, ``--pull-request``, ``--build-url``), then the CI's
variables (:func:`farm.core.ci_context.detect_ci`), then git
(:func:`farm.run.change.change_from_git`). The commit is the CI's, not git's
``HEAD``: on a pull request the checkout is a merge commit the CI made, the change
is the pull request's head, which a shallow clone may not even hold, so the CI's
commit is never handed to git to resolve; a ``--change`` is, as ``farm run``
does. Git's author is kept only when git's commit is the change's.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from farm.core.ci_context import CiContext, CiSystem
from farm.core.domain import ChangeRef
from farm.core.errors import UsageError
from farm.core.repository_names import repository_name
from farm.run.change import change_from_git

# A full or abbreviated hex sha, as CI systems give them (always full in practice).
_SHA = re.compile(r"^[0-9a-f]{7,64}$")


@dataclass(frozen=True)
class CiChange:
    """The change a CI job tests, the system that runs the job, and links to show:
    the build's page and the commit's ("" when not known)."""

    change: ChangeRef
    system: CiSystem
    build_url: str = ""
    commit_url: str = ""


def ci_change(
    cwd: Path,
    env: Mapping[str, str],
    context: CiContext,
    *,
    change_sha: str | None = None,
    branch: str | None = None,
    repository: str | None = None,
    pull_request: str | None = None,
    build_url: str | None = None,
) -> CiChange:
    """The change of the job running in ``cwd`` (see the module's rules).

    Raises UsageError when nothing names a commit: no ``--change``, no commit from
    the CI, and ``cwd`` not in a git work tree (or a CI commit that is no sha).
    """
    if change_sha is not None:
        # The user's commit, resolved by git as farm run resolves it (a sha outside git).
        git = change_from_git(cwd, env, commit=change_sha)
        assert git is not None  # a commit was given: a change, or a UsageError
        sha = git.commit_sha
    else:
        git = change_from_git(cwd, env)
        sha = _ci_sha(context) or (git.commit_sha if git else "")
        if not sha:
            raise UsageError(_no_commit(context, cwd))
        if git is None:
            # Outside git: the folder names the repository, as farm run names it.
            git = change_from_git(cwd, env, commit=sha)
            assert git is not None
    same_commit = git.commit_sha == sha
    change = ChangeRef(
        repository=(repository_name(repository) if repository else "")
        or context.repository
        or git.repository,
        commit_sha=sha,
        branch=branch.strip() if branch is not None else (context.branch or git.branch),
        pull_request=pull_request.strip()
        if pull_request is not None
        else (context.pull_request or git.pull_request),
        author=context.author or (git.author if same_commit else ""),
    )
    return CiChange(
        change,
        context.system,
        build_url=build_url.strip() if build_url is not None else context.build_url,
        commit_url=context.commit_url(sha) if change.repository == context.repository else "",
    )


def _ci_sha(context: CiContext) -> str:
    sha = context.commit_sha.lower()
    if sha and not _SHA.match(sha):
        raise UsageError(
            f"{context.system.label} names commit {context.commit_sha[:80]!r}, which is not "
            "a commit sha; give --change SHA"
        )
    return sha


def _no_commit(context: CiContext, cwd: Path) -> str:
    if context.system is CiSystem.NONE:
        found = "no CI system found (GitHub Actions, GitLab CI, Jenkins, Buildkite or CircleCI)"
    else:
        found = f"{context.system.label} names no commit"
    return f"{found} and {cwd} is not in a git work tree: give --change SHA"


def folder_in_repository(folder: str) -> str:
    """``folder``'s path from the top of the git work tree holding it, "" when it is the
    top or is in none: CI systems place annotations by paths from the top, and a
    run's node ids start at its rootdir. The top is the nearest folder with a
    ``.git`` (a folder, or a file in worktrees and submodules)."""
    if not folder:
        return ""
    start = Path(folder).resolve()
    for top in (start, *start.parents):
        if (top / ".git").exists():
            path = start.relative_to(top).as_posix()
            return "" if path == "." else path
    return ""


__all__ = ["CiChange", "ci_change", "folder_in_repository"]
