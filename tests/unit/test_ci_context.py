"""What each CI system says of the change (farm.core.ci_context, pure), and the change
farm ci takes from it, git and flags (farm.run.ci_change, against real repositories)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import GIT_AUTHOR, bare_env
from helpers import git as run_git

from farm.core.ci_context import CiContext, CiSystem, detect_ci, read_github_event
from farm.core.domain import ChangeRef
from farm.core.errors import UsageError
from farm.run.ci_change import ci_change, folder_in_repository

SHA = "0123456789abcdef0123456789abcdef01234567"
HEAD_SHA = "fedcba9876543210fedcba9876543210fedcba98"


def git(repo: Path, *args: str) -> str:
    return run_git(repo, *args, env=bare_env())


# -- detection ---------------------------------------------------------------------------

GITHUB = {
    "GITHUB_ACTIONS": "true",
    "GITHUB_SERVER_URL": "https://github.com",
    "GITHUB_REPOSITORY": "org/shop",
    "GITHUB_RUN_ID": "4242",
    "GITHUB_ACTOR": "octocat",
}


def test_github_push() -> None:
    env = {**GITHUB, "GITHUB_SHA": SHA, "GITHUB_REF": "refs/heads/main", "GITHUB_REF_NAME": "main",
           "GITHUB_REF_TYPE": "branch", "GITHUB_HEAD_REF": ""}  # fmt: skip
    got = detect_ci(env)
    assert got == CiContext(
        CiSystem.GITHUB_ACTIONS,
        repository="github.com/org/shop",
        commit_sha=SHA,
        branch="main",
        build_url="https://github.com/org/shop/actions/runs/4242",
        author="octocat",
        web_url="https://github.com/org/shop",
    )
    assert got.commit_url(SHA) == f"https://github.com/org/shop/commit/{SHA}"


def test_github_pull_request_takes_the_head_commit_from_the_event_file(tmp_path: Path) -> None:
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"pull_request": {"number": 12, "head": {"sha": HEAD_SHA}}}))
    env = {**GITHUB, "GITHUB_SHA": SHA, "GITHUB_REF": "refs/pull/12/merge",
           "GITHUB_REF_NAME": "12/merge", "GITHUB_HEAD_REF": "fix-cart",
           "GITHUB_EVENT_PATH": str(event)}  # fmt: skip
    got = detect_ci(env, read_github_event(env))
    # GITHUB_SHA is the merge commit GitHub made; the change is the pull request's head.
    assert (got.commit_sha, got.branch, got.pull_request) == (HEAD_SHA, "fix-cart", "12")
    # Without the payload: the merge commit, and the number from the ref.
    bare = detect_ci(env)
    assert (bare.commit_sha, bare.pull_request) == (SHA, "12")


def test_github_enterprise_server_tags_and_unreadable_events(tmp_path: Path) -> None:
    broken = tmp_path / "event.json"
    broken.write_text("{not json")
    env = {**GITHUB, "GITHUB_SERVER_URL": "https://user:pw@ghe.example.com/",
           "GITHUB_SHA": SHA, "GITHUB_REF": "refs/tags/v1", "GITHUB_REF_NAME": "v1",
           "GITHUB_REF_TYPE": "tag", "GITHUB_EVENT_PATH": str(broken)}  # fmt: skip
    assert read_github_event(env) is None
    assert read_github_event({"GITHUB_EVENT_PATH": str(tmp_path / "none.json")}) is None
    got = detect_ci(env, read_github_event(env))
    assert got.repository == "ghe.example.com/org/shop"
    assert got.web_url == "https://ghe.example.com/org/shop"  # no user information
    assert got.branch == ""  # a tag is no branch
    # An event of another kind (pull_request_target names the number only in it).
    target = detect_ci({**env, "GITHUB_REF": "refs/heads/main"}, {"pull_request": {"number": 3}})
    assert target.pull_request == "3"


GITLAB = {
    "GITLAB_CI": "true",
    "CI_PROJECT_URL": "https://gitlab.example.com/group/shop",
    "CI_COMMIT_SHA": SHA,
    "CI_JOB_URL": "https://gitlab.example.com/group/shop/-/jobs/77",
    "CI_PIPELINE_URL": "https://gitlab.example.com/group/shop/-/pipelines/5",
    "CI_COMMIT_AUTHOR": "Dev One <dev@example.com>",
    "GITLAB_USER_EMAIL": "starter@example.com",
    "GITLAB_USER_LOGIN": "starter",
}


def test_gitlab_branch_pipeline() -> None:
    env = {**GITLAB, "CI_COMMIT_REF_NAME": "main", "CI_COMMIT_BRANCH": "main"}
    got = detect_ci(env)
    assert got == CiContext(
        CiSystem.GITLAB_CI,
        repository="gitlab.example.com/group/shop",
        commit_sha=SHA,
        branch="main",
        build_url="https://gitlab.example.com/group/shop/-/jobs/77",
        author="dev@example.com",
        web_url="https://gitlab.example.com/group/shop",
    )
    assert got.commit_url(SHA) == f"https://gitlab.example.com/group/shop/-/commit/{SHA}"


def test_gitlab_merge_request_pipeline() -> None:
    env = {**GITLAB, "CI_COMMIT_REF_NAME": "refs/merge-requests/9/merge",
           "CI_MERGE_REQUEST_IID": "9", "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME": "fix-cart",
           "CI_MERGE_REQUEST_SOURCE_BRANCH_SHA": HEAD_SHA.upper(), "CI_COMMIT_AUTHOR": "",
           "CI_JOB_URL": ""}  # fmt: skip
    got = detect_ci(env)
    assert (got.commit_sha, got.branch, got.pull_request) == (HEAD_SHA.upper(), "fix-cart", "9")
    assert got.author == "starter@example.com"
    assert got.build_url == "https://gitlab.example.com/group/shop/-/pipelines/5"


def test_gitlab_tag_pipeline_has_no_branch() -> None:
    got = detect_ci({**GITLAB, "CI_COMMIT_REF_NAME": "v1.0", "CI_COMMIT_TAG": "v1.0"})
    assert got.branch == ""


JENKINS = {
    "JENKINS_URL": "https://ci.example.com/",
    "GIT_URL": "https://jenkins:TOKEN@github.com/org/shop.git",
    "GIT_COMMIT": SHA,
    "BUILD_URL": "https://ci.example.com/job/shop/15/",
}


def test_jenkins_branch_build() -> None:
    got = detect_ci({**JENKINS, "GIT_BRANCH": "origin/release/2", "BRANCH_NAME": "release/2"})
    assert got == CiContext(
        CiSystem.JENKINS,
        repository="github.com/org/shop",
        commit_sha=SHA,
        branch="release/2",
        build_url="https://ci.example.com/job/shop/15/",
    )
    assert "TOKEN" not in repr(got)
    assert got.commit_url(SHA) == ""  # no web page known


def test_jenkins_multibranch_pull_request() -> None:
    env = {**JENKINS, "BRANCH_NAME": "PR-31", "CHANGE_ID": "31", "CHANGE_BRANCH": "fix-cart",
           "CHANGE_AUTHOR": "dev", "CHANGE_AUTHOR_EMAIL": "dev@example.com"}  # fmt: skip
    got = detect_ci(env)
    assert (got.branch, got.pull_request, got.author) == ("fix-cart", "31", "dev@example.com")
    # A pull request without its branch: never the PR-N job name.
    assert detect_ci({**JENKINS, "BRANCH_NAME": "PR-31", "CHANGE_ID": "31"}).branch == ""


def test_buildkite() -> None:
    env = {"BUILDKITE": "true", "BUILDKITE_REPO": "git@github.com:org/shop.git",
           "BUILDKITE_COMMIT": SHA, "BUILDKITE_BRANCH": "fix-cart",
           "BUILDKITE_PULL_REQUEST": "44", "BUILDKITE_BUILD_URL": "https://buildkite.com/o/s/b/8",
           "BUILDKITE_BUILD_CREATOR_EMAIL": "starter@example.com"}  # fmt: skip
    got = detect_ci(env)
    assert got == CiContext(
        CiSystem.BUILDKITE,
        repository="github.com/org/shop",
        commit_sha=SHA,
        branch="fix-cart",
        pull_request="44",
        build_url="https://buildkite.com/o/s/b/8",
        author="starter@example.com",
    )
    # A build started by hand: no pull request, and the commit is git's HEAD.
    by_hand = detect_ci({**env, "BUILDKITE_COMMIT": "HEAD", "BUILDKITE_PULL_REQUEST": "false"})
    assert (by_hand.commit_sha, by_hand.pull_request) == ("", "")


def test_circleci() -> None:
    env = {"CIRCLECI": "true", "CIRCLE_REPOSITORY_URL": "git@github.com:org/shop.git",
           "CIRCLE_SHA1": SHA, "CIRCLE_BRANCH": "fix-cart",
           "CIRCLE_PULL_REQUEST": "https://github.com/org/shop/pull/57",
           "CIRCLE_BUILD_URL": "https://circleci.com/gh/org/shop/123",
           "CIRCLE_USERNAME": "dev"}  # fmt: skip
    got = detect_ci(env)
    assert got == CiContext(
        CiSystem.CIRCLECI,
        repository="github.com/org/shop",
        commit_sha=SHA,
        branch="fix-cart",
        pull_request="57",
        build_url="https://circleci.com/gh/org/shop/123",
        author="dev",
    )
    assert detect_ci({**env, "CIRCLE_PR_NUMBER": "58"}).pull_request == "58"


def test_no_ci_system() -> None:
    assert detect_ci(bare_env(GITHUB_ACTIONS="false", GITLAB_CI="")) == CiContext(CiSystem.NONE)


# -- the change: CI, then git, flags over both ----------------------------------------------


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    folder = tmp_path / "shop"
    folder.mkdir()
    git(folder, "init", "-q", "-b", "main")
    git(folder, "remote", "add", "origin", "git@github.com:org/shop.git")
    (folder / "a.txt").write_text("one\n")
    git(folder, "add", "a.txt")
    git(folder, "commit", "-q", "-m", "first")
    return folder


def test_without_ci_the_change_is_gits(repo: Path) -> None:
    sha = git(repo, "rev-parse", "HEAD")
    found = ci_change(repo, bare_env(), CiContext(CiSystem.NONE))
    assert found.change == ChangeRef("github.com/org/shop", sha, branch="main", author=GIT_AUTHOR)
    assert (found.system, found.build_url, found.commit_url) == (CiSystem.NONE, "", "")


def test_the_ci_commit_wins_even_when_the_clone_does_not_hold_it(repo: Path) -> None:
    # A pull request's head that a shallow merge checkout lacks: never given to git.
    context = detect_ci({**GITHUB, "GITHUB_SHA": SHA, "GITHUB_REF": "refs/pull/12/merge",
                         "GITHUB_HEAD_REF": "fix-cart"},
                        {"pull_request": {"number": 12, "head": {"sha": HEAD_SHA}}})  # fmt: skip
    found = ci_change(repo, bare_env(), context)
    assert found.change == ChangeRef(
        "github.com/org/shop", HEAD_SHA, branch="fix-cart", pull_request="12", author="octocat"
    )
    assert found.commit_url == f"https://github.com/org/shop/commit/{HEAD_SHA}"
    assert found.build_url == "https://github.com/org/shop/actions/runs/4242"


def test_gits_author_only_for_its_own_commit(repo: Path) -> None:
    context = CiContext(CiSystem.BUILDKITE, commit_sha=HEAD_SHA.upper())
    found = ci_change(repo, bare_env(), context)
    assert found.change == ChangeRef("github.com/org/shop", HEAD_SHA, branch="main")
    head = CiContext(CiSystem.BUILDKITE)  # BUILDKITE_COMMIT=HEAD: git's commit
    assert ci_change(repo, bare_env(), head).change.author == GIT_AUTHOR


def test_flags_override_ci_and_git(repo: Path) -> None:
    first = git(repo, "rev-parse", "HEAD")
    (repo / "a.txt").write_text("two\n")
    git(repo, "commit", "-q", "-am", "second")
    context = detect_ci({**GITLAB, "CI_COMMIT_BRANCH": "main", "CI_MERGE_REQUEST_IID": "9"})
    found = ci_change(
        repo, bare_env(), context, change_sha=first[:8], branch="hotfix",
        repository="https://gitlab.example.com/other/shop.git", pull_request="10",
        build_url="https://ci.example.com/b/1",
    )  # fmt: skip
    assert found.change == ChangeRef(
        "gitlab.example.com/other/shop", first, branch="hotfix", pull_request="10",
        author="dev@example.com",
    )  # fmt: skip
    assert found.build_url == "https://ci.example.com/b/1"
    assert found.commit_url == ""  # another repository than the CI's: no link to guess


def test_a_commit_given_must_be_one_of_the_repository(repo: Path) -> None:
    with pytest.raises(UsageError, match="is not a commit of the git repository"):
        ci_change(repo, bare_env(), CiContext(CiSystem.NONE), change_sha="deadbeef")


def test_outside_git_the_ci_commit_and_the_folder_name_the_change(tmp_path: Path) -> None:
    context = CiContext(CiSystem.JENKINS, commit_sha=SHA, build_url="https://ci/1/")
    found = ci_change(tmp_path, bare_env(), context, branch="main")
    assert found.change == ChangeRef(tmp_path.name, SHA, branch="main")
    given = ci_change(tmp_path, bare_env(), CiContext(CiSystem.NONE), change_sha=SHA)
    assert given.change.commit_sha == SHA


def test_unknown_ci_without_git_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"no CI system found .* give --change SHA"):
        ci_change(tmp_path, bare_env(), detect_ci(bare_env()))
    with pytest.raises(UsageError, match=r"^Jenkins names no commit"):
        ci_change(tmp_path, bare_env(), detect_ci({"JENKINS_URL": "https://ci/"}))


def test_a_ci_commit_that_is_no_sha_is_a_usage_error(repo: Path) -> None:
    context = detect_ci({**GITLAB, "CI_COMMIT_SHA": "--upload-pack=evil"})
    with pytest.raises(UsageError, match="GitLab CI names commit '--upload-pack=evil'"):
        ci_change(repo, bare_env(), context)


def test_the_rootdirs_folder_in_the_repository(repo: Path) -> None:
    (repo / "python" / "tests").mkdir(parents=True)
    assert folder_in_repository(str(repo)) == ""
    assert folder_in_repository(str(repo / "python")) == "python"
    assert folder_in_repository(str(repo / "python" / "tests")) == "python/tests"
    assert folder_in_repository("") == ""
