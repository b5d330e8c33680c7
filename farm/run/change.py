"""The change a run tests, read from git: repository, commit, branch, pull request, author.

By default a run's change is the ``HEAD`` commit of the git work tree it starts in;
``--change`` (or ``--rev``) names another commit, ``--branch`` and
``--repository`` override what git says. The repository is named by its ``origin``
remote as ``host/path`` (``github.com/org/repo``: no scheme, no user or token, no
``.git``), so an SSH and an HTTPS clone of one repository name one change; without
a remote it is the work tree's folder name. On a detached ``HEAD`` (CI checkouts)
the branch and pull request come from the CI's variables.

It costs two git calls (three for a work tree without a remote), since ``farm run``
is timed: ``git log`` for the commit, its author and what ``HEAD`` points at, and
``git config`` for the remote.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from farm.core.domain import ChangeRef
from farm.core.errors import UsageError
from farm.core.repository_names import repository_name

# Git should answer at once here: no network, no lock waits. One that does not is
# treated as no git at all rather than holding up the run.
GIT_TIMEOUT_S = 10.0

# What git says when the folder is not one it can read as a repository.
_NOT_A_REPOSITORY = ("not a git repository", "dubious ownership")
# CI variables naming the branch of a detached checkout, first found wins.
_BRANCH_VARIABLES = ("GITHUB_HEAD_REF", "GITHUB_REF_NAME", "CI_COMMIT_REF_NAME")
_PULL_REF = re.compile(r"^refs/pull/(?P<number>[^/]+)/(?:merge|head)$")
_SHA = re.compile(r"^[0-9a-fA-F]{4,64}$")


def change_from_git(
    cwd: Path,
    env: Mapping[str, str],
    *,
    commit: str | None = None,
    branch: str | None = None,
    repository: str | None = None,
) -> ChangeRef | None:
    """The change of ``commit`` (default ``HEAD``) of the work tree at ``cwd``.

    Outside a git work tree (or without git) it is None, unless ``commit`` was given:
    then it must be a commit sha, and the repository defaults to ``cwd``'s folder
    name. In a work tree, a ``commit`` that is not one of its commits is a
    UsageError. ``env`` gives the CI variables and the environment git runs in.
    """
    if commit is not None:
        commit = commit.strip()
        if not commit or commit.startswith("-"):
            raise UsageError(f"{commit!r} is not a commit")
    found = _git_log(cwd, env, commit)
    if found is None:
        if commit is None:
            return None
        if not _SHA.match(commit):
            raise UsageError(
                f"{commit!r} is not a commit sha, and {cwd} is not in a git work tree "
                "to resolve it in"
            )
        name = repository_name(repository) if repository else _folder_name(cwd)
        return ChangeRef(name, commit.lower(), branch=(branch or "").strip())
    sha, author, decorations = found
    head_branch = _head_branch(decorations)
    at_head = head_branch is not None
    if repository:
        name = repository_name(repository)
    else:
        name = _origin_name(cwd, env) or _folder_name(_toplevel(cwd, env) or cwd)
    if branch is not None:
        chosen_branch = branch.strip()
    elif at_head:
        chosen_branch = head_branch or _ci_branch(env)
    else:
        chosen_branch = ""
    return ChangeRef(
        repository=name,
        commit_sha=sha,
        branch=chosen_branch,
        pull_request=_pull_request(env) if at_head else "",
        author=author,
    )


def _git_log(cwd: Path, env: Mapping[str, str], commit: str | None) -> tuple[str, str, str] | None:
    """(full sha, author email, ref names) of the commit, or None outside a work tree.

    Raises UsageError for a ``commit`` git cannot resolve to a commit."""
    rev = f"{commit or 'HEAD'}^{{commit}}"
    done = _git(cwd, env, ["log", "-1", "--no-walk", "--format=%H%x00%ae%x00%D", rev, "--"])
    if done is None:
        return None
    code, out, err = done
    if code != 0:
        if commit is None or any(marker in err for marker in _NOT_A_REPOSITORY):
            return None  # outside git, or a repository with no commit yet
        said = err.strip().splitlines()[-1] if err.strip() else f"git exited {code}"
        raise UsageError(f"{commit!r} is not a commit of the git repository at {cwd} ({said})")
    fields = out.strip("\n").split("\x00")
    if len(fields) != 3 or not fields[0]:
        return None
    return fields[0], fields[1], fields[2]


def _head_branch(decorations: str) -> str | None:
    """The branch ``HEAD`` points at ("" when detached) if the commit is ``HEAD``,
    else None."""
    for name in decorations.split(", "):
        if name == "HEAD":
            return ""
        if name.startswith("HEAD -> "):
            return name[len("HEAD -> ") :].removeprefix("refs/heads/")
    return None


def _origin_name(cwd: Path, env: Mapping[str, str]) -> str:
    done = _git(cwd, env, ["config", "--get", "remote.origin.url"])
    if done is None or done[0] != 0 or not done[1].strip():
        return ""
    return repository_name(done[1].strip())


def _toplevel(cwd: Path, env: Mapping[str, str]) -> Path | None:
    done = _git(cwd, env, ["rev-parse", "--show-toplevel"])
    if done is None or done[0] != 0 or not done[1].strip():
        return None
    return Path(done[1].strip())


def _ci_branch(env: Mapping[str, str]) -> str:
    for variable in _BRANCH_VARIABLES:
        value = env.get(variable, "").strip()
        if value:
            return value
    return ""


def _pull_request(env: Mapping[str, str]) -> str:
    match = _PULL_REF.match(env.get("GITHUB_REF", "").strip())
    if match:
        return match["number"]
    return env.get("CI_MERGE_REQUEST_IID", "").strip()


def _folder_name(path: Path) -> str:
    resolved = path.resolve()
    return resolved.name or str(resolved)


def _git(cwd: Path, env: Mapping[str, str], args: Sequence[str]) -> tuple[int, str, str] | None:
    """Run git in ``cwd``: (exit code, stdout, stderr), or None if it cannot be run."""
    command = ["git", "-c", "log.showSignature=false", "-c", "core.quotePath=false", *args]
    try:
        done = subprocess.run(
            command,
            cwd=cwd,
            env={**env, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"},
            capture_output=True,
            text=True,
            errors="replace",
            timeout=GIT_TIMEOUT_S,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.returncode, done.stdout, done.stderr


__all__ = ["change_from_git", "repository_name"]
