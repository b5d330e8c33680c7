"""Which CI system a process runs in, and what it says of the change being built.

Each system names the change in variables of its own; :func:`detect_ci` reads them
from an environment mapping into one :class:`CiContext`. Fields a system does not
set are "": the caller fills them from git (:mod:`farm.run.ci_change`), and flags
override both. Pure: no subprocess, no clock; the one file a system hands over (the
GitHub Actions event payload) is read by :func:`read_github_event` and passed in.

What is read, by system (first non-empty wins):

=============== ==========================================================================
GitHub Actions  ``GITHUB_ACTIONS=true``; repository ``GITHUB_SERVER_URL`` +
                ``GITHUB_REPOSITORY``; commit the event's ``pull_request.head.sha``
                (``GITHUB_SHA`` is the merge commit of a pull request), else
                ``GITHUB_SHA``; branch ``GITHUB_HEAD_REF``, else ``GITHUB_REF_NAME``
                for a branch ref; pull request from ``GITHUB_REF``
                (``refs/pull/N/merge``) or the event's ``pull_request.number``; build
                ``$GITHUB_SERVER_URL/$GITHUB_REPOSITORY/actions/runs/$GITHUB_RUN_ID``;
                author ``GITHUB_ACTOR``.
GitLab CI       ``GITLAB_CI=true``; repository ``CI_PROJECT_URL``; commit
                ``CI_MERGE_REQUEST_SOURCE_BRANCH_SHA`` (merged-results pipelines),
                else ``CI_COMMIT_SHA``; branch ``CI_MERGE_REQUEST_SOURCE_BRANCH_NAME``,
                ``CI_COMMIT_BRANCH``, else ``CI_COMMIT_REF_NAME`` unless a tag; merge
                request ``CI_MERGE_REQUEST_IID``; build ``CI_JOB_URL``, else
                ``CI_PIPELINE_URL``; author the email of ``CI_COMMIT_AUTHOR``, else
                ``GITLAB_USER_EMAIL``, else ``GITLAB_USER_LOGIN``.
Jenkins         ``JENKINS_URL``; repository ``GIT_URL``; commit ``GIT_COMMIT``;
                branch ``CHANGE_BRANCH``, else ``GIT_BRANCH`` without its remote, else
                ``BRANCH_NAME`` (not on a pull request, where it is ``PR-N``); pull
                request ``CHANGE_ID``; build ``BUILD_URL``; author
                ``CHANGE_AUTHOR_EMAIL``, else ``CHANGE_AUTHOR``.
Buildkite       ``BUILDKITE=true``; repository ``BUILDKITE_REPO``; commit
                ``BUILDKITE_COMMIT`` unless ``HEAD``; branch ``BUILDKITE_BRANCH``; pull
                request ``BUILDKITE_PULL_REQUEST`` unless ``false``; build
                ``BUILDKITE_BUILD_URL``; author ``BUILDKITE_BUILD_AUTHOR_EMAIL``, else
                ``BUILDKITE_BUILD_CREATOR_EMAIL``.
CircleCI        ``CIRCLECI=true``; repository ``CIRCLE_REPOSITORY_URL``; commit
                ``CIRCLE_SHA1``; branch ``CIRCLE_BRANCH``; pull request
                ``CIRCLE_PR_NUMBER``, else the number ending ``CIRCLE_PULL_REQUEST``;
                build ``CIRCLE_BUILD_URL``; author ``CIRCLE_USERNAME``.
=============== ==========================================================================

Repositories are named by :func:`farm.core.repository_names.repository_name`
(``host/path``, no credentials); URLs shown to people lose any user information.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from farm.core.repository_names import repository_name

# The largest event payload read: GitHub's are a few KiB to a few hundred.
EVENT_LIMIT_BYTES = 8 * 1024 * 1024

_PULL_REF = re.compile(r"^refs/pull/(?P<number>\d+)/(?:merge|head)$")
_TRAILING_NUMBER = re.compile(r"/(?P<number>\d+)/?$")
_EMAIL_IN_BRACKETS = re.compile(r"<(?P<email>[^<>\s]+@[^<>\s]+)>")
_AUTHORITY = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<authority>[^/?#]*)")


class CiSystem(str, enum.Enum):
    """The CI system a process runs in."""

    GITHUB_ACTIONS = "github-actions"
    GITLAB_CI = "gitlab-ci"
    JENKINS = "jenkins"
    BUILDKITE = "buildkite"
    CIRCLECI = "circleci"
    NONE = "none"  # none of these: a person's shell, or a CI farm does not know

    @property
    def label(self) -> str:
        """The system's name as its makers write it."""
        return _LABELS[self]


_LABELS = {
    CiSystem.GITHUB_ACTIONS: "GitHub Actions",
    CiSystem.GITLAB_CI: "GitLab CI",
    CiSystem.JENKINS: "Jenkins",
    CiSystem.BUILDKITE: "Buildkite",
    CiSystem.CIRCLECI: "CircleCI",
    CiSystem.NONE: "no CI system",
}


@dataclass(frozen=True)
class CiContext:
    """What the CI system says of the change it builds; "" where it says nothing.

    ``repository`` is ``host/path``; ``commit_sha`` the commit under test (a pull
    request's head, not a merge commit the CI made); ``pull_request`` its number;
    ``build_url`` the page of this build; ``web_url`` the repository's web page, for
    links to commits (GitHub and GitLab only).
    """

    system: CiSystem
    repository: str = ""
    commit_sha: str = ""
    branch: str = ""
    pull_request: str = ""
    build_url: str = ""
    author: str = ""
    web_url: str = ""

    def commit_url(self, sha: str) -> str:
        """The web page of commit ``sha`` of this repository, "" when not known."""
        if not self.web_url or not sha:
            return ""
        if self.system is CiSystem.GITLAB_CI:
            return f"{self.web_url}/-/commit/{sha}"
        return f"{self.web_url}/commit/{sha}"


def detect_ci(env: Mapping[str, str], event: Mapping[str, object] | None = None) -> CiContext:
    """The CI system ``env`` belongs to and what it says of the change.

    ``event`` is the GitHub Actions event payload (see :func:`read_github_event`),
    ignored elsewhere. A system is recognised by its own marker variable, checked in
    the order of :data:`_DETECTORS`; none found is :attr:`CiSystem.NONE`.
    """
    for marker, detector in _DETECTORS:
        if marker(env):
            return detector(_Env(env), event or {})
    return CiContext(CiSystem.NONE)


def read_github_event(env: Mapping[str, str]) -> Mapping[str, object] | None:
    """The event payload at ``GITHUB_EVENT_PATH``, or None when there is none or it
    cannot be read as one JSON object (its absence only loses the pull request's
    head commit, so it is never an error)."""
    path = env.get("GITHUB_EVENT_PATH", "").strip()
    if not path:
        return None
    try:
        with open(Path(path), "rb") as file:
            data = json.loads(file.read(EVENT_LIMIT_BYTES + 1)[:EVENT_LIMIT_BYTES])
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


class _Env:
    """Reads variables stripped, "" when unset."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env

    def __call__(self, *names: str) -> str:
        """The first of ``names`` set to something other than blanks."""
        for name in names:
            value = self._env.get(name, "").strip()
            if value:
                return value
        return ""


def _github(env: _Env, event: Mapping[str, object]) -> CiContext:
    server = _without_user_info(env("GITHUB_SERVER_URL") or "https://github.com").rstrip("/")
    slug = env("GITHUB_REPOSITORY")
    web_url = f"{server}/{slug}" if slug else ""
    pull = _mapping(event.get("pull_request"))
    ref = env("GITHUB_REF")
    match = _PULL_REF.match(ref)
    number = pull.get("number")
    if match:
        pull_request = match["number"]
    elif isinstance(number, int) and not isinstance(number, bool):
        pull_request = str(number)
    else:
        pull_request = ""
    head_sha = _mapping(pull.get("head")).get("sha")
    is_branch = ref.startswith("refs/heads/") or env("GITHUB_REF_TYPE") == "branch"
    run_id = env("GITHUB_RUN_ID")
    return CiContext(
        CiSystem.GITHUB_ACTIONS,
        repository=repository_name(web_url) if web_url else "",
        commit_sha=_text(head_sha) or env("GITHUB_SHA"),
        branch=env("GITHUB_HEAD_REF") or (env("GITHUB_REF_NAME") if is_branch else ""),
        pull_request=pull_request,
        build_url=f"{web_url}/actions/runs/{run_id}" if web_url and run_id else "",
        author=env("GITHUB_ACTOR"),
        web_url=web_url,
    )


def _gitlab(env: _Env, event: Mapping[str, object]) -> CiContext:
    web_url = _without_user_info(env("CI_PROJECT_URL")).rstrip("/")
    author = _EMAIL_IN_BRACKETS.search(env("CI_COMMIT_AUTHOR"))
    tag = env("CI_COMMIT_TAG")
    return CiContext(
        CiSystem.GITLAB_CI,
        repository=repository_name(web_url or env("CI_REPOSITORY_URL")),
        commit_sha=env("CI_MERGE_REQUEST_SOURCE_BRANCH_SHA", "CI_COMMIT_SHA"),
        branch=env("CI_MERGE_REQUEST_SOURCE_BRANCH_NAME", "CI_COMMIT_BRANCH")
        or ("" if tag else env("CI_COMMIT_REF_NAME")),
        pull_request=env("CI_MERGE_REQUEST_IID"),
        build_url=_without_user_info(env("CI_JOB_URL", "CI_PIPELINE_URL")),
        author=author["email"] if author else env("GITLAB_USER_EMAIL", "GITLAB_USER_LOGIN"),
        web_url=web_url,
    )


def _jenkins(env: _Env, event: Mapping[str, object]) -> CiContext:
    pull_request = env("CHANGE_ID")
    branch = env("CHANGE_BRANCH") or _without_remote(env("GIT_BRANCH"))
    if not branch and not pull_request:
        branch = env("BRANCH_NAME")
    return CiContext(
        CiSystem.JENKINS,
        repository=repository_name(env("GIT_URL")) if env("GIT_URL") else "",
        commit_sha=env("GIT_COMMIT"),
        branch=branch,
        pull_request=pull_request,
        build_url=_without_user_info(env("BUILD_URL")),
        author=env("CHANGE_AUTHOR_EMAIL", "CHANGE_AUTHOR"),
    )


def _buildkite(env: _Env, event: Mapping[str, object]) -> CiContext:
    commit = env("BUILDKITE_COMMIT")
    pull_request = env("BUILDKITE_PULL_REQUEST")
    return CiContext(
        CiSystem.BUILDKITE,
        repository=repository_name(env("BUILDKITE_REPO")) if env("BUILDKITE_REPO") else "",
        # A build started by hand may name no commit: "HEAD" of the branch, as git has it.
        commit_sha="" if commit.upper() == "HEAD" else commit,
        branch=env("BUILDKITE_BRANCH"),
        pull_request="" if pull_request.lower() == "false" else pull_request,
        build_url=_without_user_info(env("BUILDKITE_BUILD_URL")),
        author=env("BUILDKITE_BUILD_AUTHOR_EMAIL", "BUILDKITE_BUILD_CREATOR_EMAIL"),
    )


def _circleci(env: _Env, event: Mapping[str, object]) -> CiContext:
    repository = env("CIRCLE_REPOSITORY_URL")
    number = _TRAILING_NUMBER.search(env("CIRCLE_PULL_REQUEST"))
    return CiContext(
        CiSystem.CIRCLECI,
        repository=repository_name(repository) if repository else "",
        commit_sha=env("CIRCLE_SHA1"),
        branch=env("CIRCLE_BRANCH"),
        pull_request=env("CIRCLE_PR_NUMBER") or (number["number"] if number else ""),
        build_url=_without_user_info(env("CIRCLE_BUILD_URL")),
        author=env("CIRCLE_USERNAME"),
    )


def _is_true(name: str) -> Callable[[Mapping[str, str]], bool]:
    return lambda env: env.get(name, "").strip().lower() == "true"


def _is_set(name: str) -> Callable[[Mapping[str, str]], bool]:
    return lambda env: bool(env.get(name, "").strip())


_DETECTORS: tuple[
    tuple[
        Callable[[Mapping[str, str]], bool],
        Callable[[_Env, Mapping[str, object]], CiContext],
    ],
    ...,
] = (
    (_is_true("GITHUB_ACTIONS"), _github),
    (_is_true("GITLAB_CI"), _gitlab),
    (_is_true("BUILDKITE"), _buildkite),
    (_is_true("CIRCLECI"), _circleci),
    # Last: a Jenkins agent's environment may leak into a job of another system.
    (_is_set("JENKINS_URL"), _jenkins),
)


def _without_remote(branch: str) -> str:
    """Jenkins' ``GIT_BRANCH`` (``origin/main``, ``refs/remotes/origin/main``) as a
    branch name."""
    for prefix in ("refs/remotes/origin/", "remotes/origin/", "origin/", "refs/heads/"):
        if branch.startswith(prefix):
            return branch[len(prefix) :]
    return branch


def _without_user_info(url: str) -> str:
    """``url`` without ``user:password@``: a URL is shown to people."""
    match = _AUTHORITY.match(url)
    if match is None or "@" not in match["authority"]:
        return url
    host = match["authority"].rsplit("@", 1)[1]
    return match["scheme"] + host + url[match.end() :]


def _mapping(value: object) -> Mapping[str, object]:
    return value if isinstance(value, dict) else {}


def _text(value: object) -> str:
    return value.strip() if isinstance(value, str) else ""


__all__ = ["CiContext", "CiSystem", "detect_ci", "read_github_event"]
