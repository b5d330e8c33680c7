"""Reading a run's change from git (farm.run.change), against real repositories in tmp_path."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import GIT_AUTHOR, bare_env
from helpers import git as run_git

from farm.core.domain import ChangeRef
from farm.core.errors import UsageError
from farm.run.change import change_from_git, repository_name

AUTHOR = GIT_AUTHOR


def git(repo: Path, *args: str) -> str:
    return run_git(repo, *args, env=bare_env())


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    folder = tmp_path / "shop"
    folder.mkdir()
    git(folder, "init", "-q", "-b", "main")
    (folder / "a.txt").write_text("one\n")
    git(folder, "add", "a.txt")
    git(folder, "commit", "-q", "-m", "first")
    return folder


def commit(repo: Path, text: str) -> str:
    (repo / "a.txt").write_text(text)
    git(repo, "commit", "-q", "-am", text)
    return git(repo, "rev-parse", "HEAD")


def test_head_of_a_branch_without_a_remote(repo: Path) -> None:
    sha = git(repo, "rev-parse", "HEAD")
    got = change_from_git(repo, bare_env())
    assert got == ChangeRef("shop", sha, branch="main", author=AUTHOR)


def test_from_a_subfolder_the_repository_is_the_work_tree_folder(repo: Path) -> None:
    (repo / "sub").mkdir()
    got = change_from_git(repo / "sub", bare_env())
    assert got is not None and got.repository == "shop"


def test_origin_is_named_without_credentials(repo: Path) -> None:
    git(
        repo, "remote", "add", "origin", "https://x-access-token:ghs_SECRET@github.com/org/shop.git"
    )
    got = change_from_git(repo, bare_env())
    assert got is not None
    assert got.repository == "github.com/org/shop"
    assert "SECRET" not in repr(got)


@pytest.mark.parametrize(
    ("url", "name"),
    [
        ("https://github.com/org/shop.git", "github.com/org/shop"),
        ("https://ghp_TOKEN@github.com/org/shop", "github.com/org/shop"),
        ("https://user:p@ss/word@gitlab.example.com/g/shop.git/", "gitlab.example.com/g/shop"),
        ("https://gitlab.example.com/g/shop.git?private_token=TOKEN", "gitlab.example.com/g/shop"),
        ("git@github.com:org/shop.git", "github.com/org/shop"),
        ("ssh://git@github.com:22/org/shop.git", "github.com/org/shop"),
        ("file:///srv/git/shop.git", "/srv/git/shop"),
        ("/srv/git/shop.git", "/srv/git/shop"),
        ("shop", "shop"),
    ],
)
def test_repository_names(url: str, name: str) -> None:
    assert repository_name(url) == name


def test_a_given_commit_is_resolved_to_its_full_sha(repo: Path) -> None:
    first = git(repo, "rev-parse", "HEAD")
    commit(repo, "two\n")
    got = change_from_git(repo, bare_env(), commit=first[:7])
    assert got is not None
    assert got.commit_sha == first
    assert got.branch == ""  # not HEAD: the current branch says nothing of it


def test_a_tag_or_branch_name_is_resolved_to_its_commit(repo: Path) -> None:
    sha = git(repo, "rev-parse", "HEAD")
    git(repo, "tag", "-a", "v1", "-m", "release")  # an annotated tag: a tag object
    got = change_from_git(repo, bare_env(), commit="v1")
    assert got is not None and got.commit_sha == sha
    assert got.branch == "main"  # v1 is HEAD's commit


def test_a_commit_that_is_not_in_the_repository_is_a_usage_error(repo: Path) -> None:
    with pytest.raises(UsageError, match="'deadbeef' is not a commit of the git repository"):
        change_from_git(repo, bare_env(), commit="deadbeef")


def test_a_tree_is_not_a_commit(repo: Path) -> None:
    tree = git(repo, "rev-parse", "HEAD^{tree}")
    with pytest.raises(UsageError, match="is not a commit"):
        change_from_git(repo, bare_env(), commit=tree)


def test_an_option_is_never_passed_to_git_as_a_commit(repo: Path) -> None:
    with pytest.raises(UsageError, match="is not a commit"):
        change_from_git(repo, bare_env(), commit="--output=/tmp/x")


def test_branch_and_repository_given_win(repo: Path) -> None:
    got = change_from_git(repo, bare_env(), branch="feature", repository="https://t@h.io/o/r.git")
    assert got is not None
    assert (got.repository, got.branch) == ("h.io/o/r", "feature")


def test_detached_head_takes_branch_and_pull_request_from_github(repo: Path) -> None:
    git(repo, "checkout", "-q", "--detach")
    env = bare_env(GITHUB_HEAD_REF="fix-cart", GITHUB_REF_NAME="12/merge",
                   GITHUB_REF="refs/pull/12/merge")  # fmt: skip
    got = change_from_git(repo, env)
    assert got is not None
    assert (got.branch, got.pull_request) == ("fix-cart", "12")


def test_detached_head_takes_branch_and_merge_request_from_gitlab(repo: Path) -> None:
    git(repo, "checkout", "-q", "--detach")
    env = bare_env(CI_COMMIT_REF_NAME="fix-cart", CI_MERGE_REQUEST_IID="45")
    got = change_from_git(repo, env)
    assert got is not None
    assert (got.branch, got.pull_request) == ("fix-cart", "45")


def test_detached_head_without_ci_has_no_branch(repo: Path) -> None:
    git(repo, "checkout", "-q", "--detach")
    got = change_from_git(repo, bare_env())
    assert got is not None and got.branch == "" and got.pull_request == ""


def test_outside_git_there_is_no_change(tmp_path: Path) -> None:
    assert change_from_git(tmp_path, bare_env()) is None


def test_without_a_git_binary_there_is_no_change(repo: Path) -> None:
    assert change_from_git(repo, {"PATH": str(repo)}) is None


def test_outside_git_a_given_sha_names_the_folder(tmp_path: Path) -> None:
    folder = tmp_path / "export"
    folder.mkdir()
    got = change_from_git(folder, bare_env(), commit="ABCDEF1234", branch="main")
    assert got == ChangeRef("export", "abcdef1234", branch="main")


def test_outside_git_a_name_cannot_be_resolved(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"not a commit sha, and .* is not in a git work tree"):
        change_from_git(tmp_path, bare_env(), commit="main")


def test_a_repository_without_commits_has_no_change(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q")
    assert change_from_git(tmp_path, bare_env()) is None
