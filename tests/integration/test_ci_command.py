"""``farm ci`` as a CI job runs it: a ``farm`` subprocess in a git checkout, the CI
system's variables in its environment, an embedded farm (Redis and SQLite).

GitHub Actions and GitLab CI end to end with failures, step summary and workflow
commands; Jenkins, Buildkite and CircleCI with one passing test each, for the change
they name and the exit code (tests/unit/test_ci_context.py covers every variable)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import farm_env, git, run_farm

pytestmark = pytest.mark.integration

SUITE = """\
def check(value):
    assert value == 2, "value must be two"


def test_one():
    pass


def test_two():
    check(2)


def test_three():
    pass


def test_fail():
    print("::warning::a test's output is no workflow command")
    check(3)
"""
FAILING_LINE = SUITE.splitlines().index('    assert value == 2, "value must be two"') + 1
# Variables of the CI systems farm ci reads: none of the CI running these tests leaks in.
CI_PREFIXES = ("GITHUB_", "GITLAB_", "CI_", "BUILDKITE", "CIRCLE", "JENKINS_", "GIT_", "CHANGE_")
MERGE_COMMIT = "1" * 40  # the merge commit a CI made for a pull request: not the change


@pytest.fixture
def checkout(tmp_path: Path) -> tuple[Path, str]:
    """A checkout of a pull request's merge: HEAD is a merge commit on top of the
    pull request's head, whose sha it returns."""
    repo = tmp_path / "shop"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "fix-cart")
    (repo / "test_x.py").write_text(SUITE)
    git(repo, "add", "test_x.py")
    git(repo, "commit", "-q", "-m", "the pull request")
    head = git(repo, "rev-parse", "HEAD")
    git(repo, "checkout", "-q", "--detach")
    git(repo, "commit", "-q", "--allow-empty", "-m", "merge")
    return repo, head


def ci_env(tmp_path: Path, **variables: str) -> dict[str, str]:
    env = {k: v for k, v in farm_env().items() if not k.startswith(CI_PREFIXES)}
    env.update(FARM_STATE_DIR=str(tmp_path / "state"), **variables)
    return env


def change_shown(repo: Path, env: dict[str, str], sha: str) -> dict[str, object]:
    shown = run_farm("change", "show", sha, "--json", cwd=repo, env=env)
    assert shown.returncode in (0, 1), shown.stdout + shown.stderr
    data: dict[str, object] = json.loads(shown.stdout)
    return data


def test_github_actions_pull_request(tmp_path: Path, checkout: tuple[Path, str]) -> None:
    repo, head = checkout
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"pull_request": {"number": 12, "head": {"sha": head}}}))
    step_summary = tmp_path / "step_summary.md"
    step_summary.write_text("earlier step\n")
    env = ci_env(
        tmp_path, GITHUB_ACTIONS="true", GITHUB_STEP_SUMMARY=str(step_summary),
        GITHUB_SERVER_URL="https://github.com", GITHUB_REPOSITORY="org/shop",
        GITHUB_SHA=MERGE_COMMIT, GITHUB_REF="refs/pull/12/merge", GITHUB_REF_NAME="12/merge",
        GITHUB_HEAD_REF="fix-cart", GITHUB_EVENT_PATH=str(event), GITHUB_RUN_ID="777",
        GITHUB_ACTOR="octocat",
    )  # fmt: skip
    done = run_farm("ci", "-n", "2", cwd=repo, env=env, timeout_s=60)
    out = done.stdout
    assert done.returncode == 1, out + done.stderr
    assert f"GitHub Actions: change github.com/org/shop {head}" in done.stderr

    # The summary is printed while GitHub reads no command; the errors after it.
    stop = next(line for line in out.splitlines() if line.startswith("::stop-commands::"))
    token = stop.removeprefix("::stop-commands::")
    assert len(token) >= 32
    resumed = out.index(f"\n::{token}::\n")
    assert out.index(stop) < out.index("::warning::a test's output") < resumed
    error = (
        f"::error file=test_x.py,line={FAILING_LINE},title=test_x.py%3A%3Atest_fail"
        "::AssertionError: value must be two%0Aassert 3 == 2"
    )
    assert error in out.splitlines() and out.index(error) > resumed
    assert out.count("::error ") == 1
    assert out.rstrip().endswith(
        "farm ci: change verdict failed: 1 test failed on every attempt: test_x.py::test_fail"
    )

    summary = step_summary.read_text()
    assert summary.startswith("earlier step\n## farm: ❌ failed\n")  # appended
    assert "failed: 1 test failed on every attempt: test\\_x\\.py::test\\_fail" in summary
    assert f"[`{head[:12]}`](<https://github.com/org/shop/commit/{head}>)" in summary
    assert "[build](<https://github.com/org/shop/actions/runs/777>)" in summary
    assert f"at test\\_x\\.py:{FAILING_LINE}\n" in summary
    assert '>       assert value == 2, "value must be two"\nE       AssertionError' in summary

    junit = repo / "farm-junit.xml"
    assert junit.is_file() and 'failures="1"' in junit.read_text()
    shown = change_shown(repo, env, head)
    assert shown["change"] == {
        "repository": "github.com/org/shop", "commit_sha": head, "branch": "fix-cart",
        "pull_request": "12", "author": "octocat",
    }  # fmt: skip
    assert (shown["verdict"], shown["failed"]) == ("failed", ["test_x.py::test_fail"])


def test_gitlab_merge_request_exits_with_the_changes_verdict(
    tmp_path: Path, checkout: tuple[Path, str]
) -> None:
    repo, head = checkout
    env = ci_env(
        tmp_path, GITLAB_CI="true", CI_PROJECT_URL="https://gitlab.example.com/group/shop",
        CI_COMMIT_SHA=head, CI_MERGE_REQUEST_IID="9",
        CI_MERGE_REQUEST_SOURCE_BRANCH_NAME="fix-cart",
        CI_JOB_URL="https://gitlab.example.com/group/shop/-/jobs/5",
        CI_COMMIT_AUTHOR="Dev <dev@example.com>",
    )  # fmt: skip
    report = tmp_path / "reports" / "junit.xml"
    report.parent.mkdir()
    first = run_farm("ci", "-n", "2", "--junit-xml", str(report), cwd=repo, env=env, timeout_s=60)
    assert first.returncode == 1, first.stdout + first.stderr
    assert report.is_file() and not (repo / "farm-junit.xml").exists()
    # No workflow commands outside GitHub Actions.
    assert not any(line.startswith(("::error", "::stop")) for line in first.stdout.splitlines())
    # The job again without the failing test: the run passes, but the change still
    # fails, by the test's result in its earlier run.
    again = run_farm("ci", "-n", "2", "--", "-k", "not test_fail", cwd=repo, env=env, timeout_s=60)
    assert again.returncode == 1, again.stdout + again.stderr
    assert "verdict PASSED" in again.stdout
    assert "farm ci: change verdict failed: 1 test failed on every attempt" in again.stdout
    shown = change_shown(repo, env, head)
    assert shown["change"] == {
        "repository": "gitlab.example.com/group/shop", "commit_sha": head, "branch": "fix-cart",
        "pull_request": "9", "author": "dev@example.com",
    }  # fmt: skip
    assert len(shown["runs"]) == 2  # type: ignore[arg-type]


def test_no_ci_and_no_git_is_a_usage_error(tmp_path: Path) -> None:
    folder = tmp_path / "loose"
    folder.mkdir()
    env = ci_env(tmp_path, GIT_CEILING_DIRECTORIES=str(tmp_path))
    done = run_farm("ci", cwd=folder, env=env, timeout_s=60)
    assert done.returncode == 4
    assert done.stderr.strip().splitlines() == [
        "farm: error: no CI system found (GitHub Actions, GitLab CI, Jenkins, Buildkite or "
        f"CircleCI) and {folder} is not in a git work tree: give --change SHA"
    ]


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        (
            {"JENKINS_URL": "https://ci.example.com/", "GIT_URL": "git@example.com:org/shop.git",
             "GIT_BRANCH": "origin/fix-cart", "CHANGE_ID": "4", "CHANGE_AUTHOR": "jen",
             "BUILD_URL": "https://ci.example.com/job/shop/7/"},
            {"repository": "example.com/org/shop", "branch": "fix-cart", "pull_request": "4",
             "author": "jen"},
        ),
        (
            {"BUILDKITE": "true", "BUILDKITE_REPO": "https://github.com/org/shop.git",
             "BUILDKITE_COMMIT": "HEAD", "BUILDKITE_BRANCH": "fix-cart",
             "BUILDKITE_PULL_REQUEST": "false", "BUILDKITE_BUILD_AUTHOR_EMAIL": "bk@example.com",
             "BUILDKITE_BUILD_URL": "https://buildkite.com/org/shop/builds/3"},
            {"repository": "github.com/org/shop", "branch": "fix-cart", "pull_request": "",
             "author": "bk@example.com"},
        ),
        (
            {"CIRCLECI": "true", "CIRCLE_REPOSITORY_URL": "git@github.com:org/shop.git",
             "CIRCLE_BRANCH": "fix-cart", "CIRCLE_USERNAME": "circ",
             "CIRCLE_PULL_REQUEST": "https://github.com/org/shop/pull/6",
             "CIRCLE_BUILD_URL": "https://circleci.com/gh/org/shop/8"},
            {"repository": "github.com/org/shop", "branch": "fix-cart", "pull_request": "6",
             "author": "circ"},
        ),
    ],
    ids=["jenkins", "buildkite", "circleci"],
)  # fmt: skip
def test_other_ci_systems_name_the_change_and_exit_with_its_verdict(
    tmp_path: Path, variables: dict[str, str], expected: dict[str, str]
) -> None:
    repo = tmp_path / "shop"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "fix-cart")
    (repo / "test_y.py").write_text("def test_ok():\n    pass\n")
    git(repo, "add", "test_y.py")
    git(repo, "commit", "-q", "-m", "passing")
    head = git(repo, "rev-parse", "HEAD")
    sha_variable = {"JENKINS_URL": "GIT_COMMIT", "CIRCLECI": "CIRCLE_SHA1"}
    extra = {sha_variable[k]: head for k in sha_variable if k in variables}
    env = ci_env(tmp_path, **variables, **extra)
    done = run_farm("ci", "-n", "1", cwd=repo, env=env, timeout_s=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (repo / "farm-junit.xml").is_file()
    shown = change_shown(repo, env, head)
    assert shown["change"] == {"commit_sha": head, **expected}
    assert shown["verdict"] == "passed"
