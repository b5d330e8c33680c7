"""GitHub webhook bodies read into decisions (farm.server.github_events), and any
body at all read by both readers: a decision, never an exception."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from webhook_payloads import (
    BEFORE,
    CONFIG,
    DELIVERY,
    GITHUB_REPOSITORY,
    SHA,
    ZERO,
    changed,
    config,
    gh_labeled,
    gh_merge_group,
    gh_pull_request,
    gh_push,
    gh_repository,
    github,
    gitlab,
    gl_merge_request,
    gl_push,
    skipped,
    triggered,
    without,
)

from farm.core.server_config import ForgeKind, ServerConfig
from farm.core.trigger import TriggerRequest, TriggerSource
from farm.server import events
from farm.server.events import Skip, Trigger
from farm.server.github_events import github_repository, read_github_event
from farm.server.gitlab_events import gitlab_repository, read_gitlab_event


def test_github_ping_is_answered_pong() -> None:
    assert github("ping", {"zen": "Design for failure.", "hook_id": 1}) == Skip(200, "pong")


def test_github_event_not_read_is_ignored() -> None:
    assert github("issues", {"action": "opened"}) == Skip(200, "event issues ignored")


def test_github_branch_push_runs_its_new_head() -> None:
    decision = github("push", gh_push(ref="refs/heads/feature/totals"))
    assert isinstance(decision, Trigger)
    assert decision.repository == GITHUB_REPOSITORY
    assert decision.request == TriggerRequest(
        repository="github.com/acme/shop",
        commit_sha=SHA,
        source=TriggerSource.GITHUB,
        branch="feature/totals",
        author="alice@example.com",
        delivery_id=DELIVERY,
    )


def test_github_push_sha_is_kept_in_lower_case() -> None:
    assert triggered(github("push", gh_push(after=SHA.upper()))).commit_sha == SHA


def test_github_push_without_head_commit_names_the_pusher() -> None:
    payload = changed(gh_push(), "head_commit", None)
    assert triggered(github("push", payload)).author == "alice"


def test_github_tag_push_is_skipped() -> None:
    assert github("push", gh_push(ref="refs/tags/v1.2.0")) == Skip(200, "tag push")


def test_github_push_of_another_ref_is_skipped() -> None:
    assert skipped(github("push", gh_push(ref="refs/notes/commits"))).status_code == 200


@pytest.mark.parametrize(
    "payload",
    [
        changed(changed(gh_push(after=ZERO), "deleted", True), "head_commit", None),
        gh_push(after=ZERO),
    ],
    ids=["deleted-flag", "zero-sha"],
)
def test_github_branch_deletion_is_skipped(payload: dict[str, Any]) -> None:
    assert github("push", payload) == Skip(200, "branch deleted")


def test_github_repository_not_configured_is_404() -> None:
    payload = changed(gh_push(), "repository", gh_repository("acme/other"))
    assert github("push", payload) == Skip(
        404, "repository github.com/acme/other is not configured"
    )


def test_github_repository_configured_for_gitlab_is_404() -> None:
    server = ServerConfig(repositories=(replace(GITHUB_REPOSITORY, forge=ForgeKind.GITLAB),))
    assert skipped(github("push", gh_push(), server)).status_code == 404


def test_github_repository_is_found_ignoring_case() -> None:
    payload = changed(gh_push(), "repository", gh_repository("Acme/Shop"))
    assert triggered(github("push", payload)).repository == "github.com/acme/shop"


def test_github_repository_by_clone_url_when_html_url_is_missing() -> None:
    payload = without(gh_push(), "repository.html_url")
    found = github_repository(payload, CONFIG)
    assert found == GITHUB_REPOSITORY


def test_github_repository_on_an_enterprise_host() -> None:
    enterprise = replace(GITHUB_REPOSITORY, name="ghe.acme.test/shop/web")
    payload = changed(gh_push(), "repository.html_url", "https://ghe.acme.test/shop/web")
    found = github_repository(payload, ServerConfig(repositories=(enterprise,)))
    assert found == enterprise


@pytest.mark.parametrize("action", ["opened", "synchronize", "reopened", "ready_for_review"])
def test_github_pull_request_runs_its_head(action: str) -> None:
    request = triggered(github("pull_request", gh_pull_request(action)))
    assert request == TriggerRequest(
        repository="github.com/acme/shop",
        commit_sha=SHA,
        source=TriggerSource.GITHUB,
        branch="round-totals",
        pull_request="42",
        author="alice",
        delivery_id=DELIVERY,
    )


@pytest.mark.parametrize("action", ["closed", "edited", "assigned", "unlabeled"])
def test_github_pull_request_other_actions_are_ignored(action: str) -> None:
    assert github("pull_request", gh_pull_request(action)) == Skip(200, f"action {action} ignored")


def test_github_draft_pull_request_is_skipped() -> None:
    assert github("pull_request", gh_pull_request(draft=True)) == Skip(200, "draft pull request")


def test_github_draft_pull_request_runs_when_drafts_are_tested() -> None:
    decision = github("pull_request", gh_pull_request(draft=True), config(test_drafts=True))
    assert triggered(decision).pull_request == "42"


def test_github_fork_pull_request_by_an_untrusted_author_is_skipped() -> None:
    decision = github("pull_request", gh_pull_request(head_repo="mallory/shop", author="mallory"))
    assert decision == Skip(
        200, "pull request from a fork by mallory: not trusted (add the label 'safe to test')"
    )


def test_github_untrusted_fork_reason_names_no_label_when_none_is_configured() -> None:
    payload = gh_pull_request(head_repo="mallory/shop", author="mallory")
    decision = github("pull_request", payload, config(trust_label=""))
    assert decision == Skip(200, "pull request from a fork by mallory: not trusted")


def test_github_fork_pull_request_by_a_trusted_author_runs_whatever_the_case() -> None:
    payload = gh_pull_request(head_repo="carol/shop", author="carol")
    assert triggered(github("pull_request", payload)).author == "carol"


def test_github_trust_label_does_not_approve_a_fork_s_later_commits() -> None:
    payload = gh_pull_request(
        "synchronize", head_repo="mallory/shop", author="mallory", labels=("bug", "Safe To Test")
    )
    reason = skipped(github("pull_request", payload)).reason
    assert "not trusted" in reason and "remove and add the label" in reason


def test_github_pull_request_from_a_deleted_fork_is_untrusted() -> None:
    payload = gh_pull_request(head_repo=None, author="mallory")
    assert "not trusted" in skipped(github("pull_request", payload)).reason
    labelled = gh_labeled(
        "safe to test", head_repo=None, author="mallory", labels=("safe to test",)
    )
    assert triggered(github("pull_request", labelled)).author == "mallory"


def test_github_trust_label_added_to_a_fork_pull_request_approves_a_run() -> None:
    payload = gh_labeled(
        "safe to test", head_repo="mallory/shop", author="mallory", labels=("safe to test",)
    )
    request = triggered(github("pull_request", payload))
    assert (request.pull_request, request.author) == ("42", "mallory")


def test_github_other_label_added_is_skipped() -> None:
    payload = gh_labeled("bug", head_repo="mallory/shop", author="mallory", labels=("bug",))
    assert github("pull_request", payload) == Skip(200, "label 'bug' is not the trust label")


def test_github_label_added_when_no_trust_label_is_configured_is_skipped() -> None:
    payload = gh_labeled("", head_repo="mallory/shop", author="mallory", labels=("",))
    assert skipped(github("pull_request", payload, config(trust_label=""))).status_code == 200


def test_github_trust_label_on_a_pull_request_from_the_repository_is_skipped() -> None:
    # It ran when opened: labelling it must not run it a second time.
    payload = gh_labeled("safe to test", labels=("safe to test",))
    assert skipped(github("pull_request", payload)).status_code == 200


def test_github_trust_label_on_a_closed_or_draft_fork_pull_request_is_skipped() -> None:
    fork = {"head_repo": "mallory/shop", "author": "mallory", "labels": ("safe to test",)}
    closed = gh_labeled("safe to test", state="closed", **fork)
    assert github("pull_request", closed) == Skip(200, "pull request closed")
    draft = gh_labeled("safe to test", draft=True, **fork)
    assert github("pull_request", draft) == Skip(200, "draft pull request")


def test_github_merge_group_checks_requested_runs_the_queue_commit() -> None:
    request = triggered(github("merge_group", gh_merge_group()))
    assert request.commit_sha == SHA
    assert request.branch == f"gh-readonly-queue/main/pr-42-{BEFORE}"
    assert request.author == "alice@example.com"


def test_github_merge_group_other_actions_are_ignored() -> None:
    assert github("merge_group", gh_merge_group("destroyed")) == Skip(
        200, "action destroyed ignored"
    )


@pytest.mark.parametrize(
    ("event", "payload", "field"),
    [
        ("push", without(gh_push(), "ref"), "ref"),
        ("push", without(gh_push(), "after"), "after"),
        ("push", changed(gh_push(), "after", 7), "after"),
        ("push", changed(gh_push(), "after", "g" * 40), "after"),
        ("push", changed(gh_push(), "after", SHA[:-1]), "after"),
        ("push", changed(gh_push(), "deleted", "no"), "deleted"),
        ("push", changed(gh_push(), "ref", "refs/heads/"), "ref"),
        ("push", without(gh_push(), "repository"), "repository"),
        ("push", changed(gh_push(), "repository", "acme/shop"), "repository"),
        ("pull_request", without(gh_pull_request(), "action"), "action"),
        ("pull_request", without(gh_pull_request(), "pull_request.head.sha"), "head.sha"),
        ("pull_request", changed(gh_pull_request(), "pull_request.head.sha", None), "head.sha"),
        ("pull_request", changed(gh_pull_request(), "pull_request.number", "42"), "number"),
        ("pull_request", changed(gh_pull_request(), "pull_request.number", True), "number"),
        ("pull_request", changed(gh_pull_request(), "pull_request.user", []), "user"),
        ("pull_request", changed(gh_pull_request(), "pull_request.labels", "x"), "labels"),
        ("pull_request", changed(gh_pull_request(), "pull_request.labels", [7]), "labels"),
        ("pull_request", changed(gh_pull_request(), "pull_request.draft", 1), "draft"),
        ("pull_request", without(gh_pull_request(), "pull_request.base"), "base"),
        ("pull_request", without(gh_labeled("safe to test"), "label"), "label"),
        ("merge_group", without(gh_merge_group(), "merge_group.head_sha"), "head_sha"),
        ("merge_group", changed(gh_merge_group(), "merge_group.head_ref", "main"), "head_ref"),
    ],
)
def test_github_malformed_body_is_400_naming_the_field(
    event: str, payload: dict[str, Any], field: str
) -> None:
    decision = skipped(github(event, payload))
    assert decision.status_code == 400
    assert field in decision.reason


@pytest.mark.parametrize("payload", [[], "push", 7, None])
def test_github_body_that_is_not_an_object_is_400(payload: object) -> None:
    assert skipped(github("push", payload)).status_code == 400


def test_github_fields_the_trigger_request_refuses_are_400() -> None:
    too_long = changed(gh_pull_request(), "pull_request.head.ref", "b" * 600)
    assert skipped(github("pull_request", too_long)).status_code == 400
    decision = read_github_event("push", gh_push(), CONFIG, delivery_id="a\nb")
    assert skipped(decision).status_code == 400


def test_github_sha256_repository_sha_runs() -> None:
    long_sha = SHA + "0123456789abcdef01234567"
    assert triggered(github("push", gh_push(after=long_sha))).commit_sha == long_sha


def test_the_readers_answer_alike_from_farm_server_events() -> None:
    assert events.read_github_event("push", gh_push(), CONFIG, delivery_id=DELIVERY) == github(
        "push", gh_push()
    )
    assert events.read_gitlab_event("Push Hook", gl_push(), CONFIG, delivery_id=DELIVERY) == (
        gitlab("Push Hook", gl_push())
    )


# -- Any body ----------------------------------------------------------------------

# Keys the readers look for, so random bodies reach past the first check.
KEYS = (
    "ref", "after", "before", "deleted", "checkout_sha", "head_commit", "author", "email",
    "pusher", "name", "sender", "login", "repository", "html_url", "clone_url", "full_name",
    "action", "pull_request", "number", "head", "base", "sha", "repo", "user", "labels",
    "label", "draft", "state", "merge_group", "head_sha", "head_ref", "object_kind",
    "project", "web_url", "git_http_url", "user_username", "user_email",
    "object_attributes", "source_project_id", "target_project_id", "oldrev", "changes",
    "previous", "current", "title", "work_in_progress", "last_commit", "id", "iid",
    "source_branch", "username",
)  # fmt: skip
STRINGS = (
    "", "main", "refs/heads/main", "refs/heads/", "refs/tags/v1", "refs/heads/a\nb", SHA,
    SHA.upper(), ZERO, "g" * 40, "https://github.com/acme/shop", "acme/shop",
    "https://gitlab.example.com/acme/shop", "opened", "labeled", "checks_requested",
    "open", "update", "push", "merge_request", "safe to test", "carol", "\x00\u202e",
    "x" * 2000,
)  # fmt: skip


def random_json(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(8 if depth < 4 else 5)
    if kind == 0:
        return None
    if kind == 1:
        return rng.random() < 0.5
    if kind == 2:
        return rng.choice([0, 15, 99, -1, 2**70, 1.5])
    if kind in (3, 4):
        return rng.choice(STRINGS)
    if kind == 5:
        return [random_json(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {rng.choice(KEYS): random_json(rng, depth + 1) for _ in range(rng.randrange(6))}


def mutated(rng: random.Random, payload: Any) -> Any:
    """``payload`` with one field, at any depth, replaced by a random value or removed."""
    if not isinstance(payload, dict) or not payload or rng.random() < 0.2:
        return random_json(rng)
    copied = dict(payload)
    key = rng.choice(list(copied))
    roll = rng.random()
    if roll < 0.3:
        del copied[key]
    elif roll < 0.6:
        copied[key] = random_json(rng)
    else:
        copied[key] = mutated(rng, copied[key])
    return copied


GITHUB_BODIES: tuple[tuple[str, Callable[[], dict[str, Any]]], ...] = (
    ("push", gh_push),
    ("pull_request", lambda: gh_pull_request(head_repo="mallory/shop", labels=("safe to test",))),
    ("pull_request", lambda: gh_labeled("safe to test", head_repo="mallory/shop")),
    ("merge_group", gh_merge_group),
)
GITLAB_BODIES: tuple[tuple[str, Callable[[], dict[str, Any]]], ...] = (
    ("Push Hook", gl_push),
    ("Merge Request Hook", lambda: gl_merge_request("update", oldrev=BEFORE)),
    ("System Hook", lambda: gl_merge_request(source_project_id=99, labels=("safe to test",))),
)


def assert_a_decision(decision: object) -> None:
    assert isinstance(decision, Trigger | Skip)
    if isinstance(decision, Skip):
        assert decision.status_code in (200, 400, 404)
        assert decision.reason.isprintable()
        assert 0 < len(decision.reason) <= 200


@pytest.mark.parametrize("seed", range(4))
def test_any_body_is_a_decision_never_an_exception(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(500):
        event, build = rng.choice(GITHUB_BODIES)
        body = mutated(rng, build()) if rng.random() < 0.7 else random_json(rng)
        assert_a_decision(read_github_event(event, body, CONFIG, delivery_id=DELIVERY))
        header, build = rng.choice(GITLAB_BODIES)
        body = mutated(rng, build()) if rng.random() < 0.7 else random_json(rng)
        assert_a_decision(read_gitlab_event(header, body, CONFIG, delivery_id=DELIVERY))


@pytest.mark.parametrize("seed", range(2))
def test_any_body_names_a_repository_or_is_skipped(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(500):
        body = mutated(rng, rng.choice((gh_push, gl_push))())
        for found in (github_repository(body, CONFIG), gitlab_repository(body, CONFIG)):
            if isinstance(found, Skip):
                assert_a_decision(found)
            else:
                assert found in CONFIG.repositories
