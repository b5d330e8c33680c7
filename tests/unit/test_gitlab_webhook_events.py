"""GitLab webhook bodies read into decisions (farm.server.gitlab_events)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from webhook_payloads import (
    BEFORE,
    CONFIG,
    DELIVERY,
    GITLAB_REPOSITORY,
    SHA,
    ZERO,
    changed,
    config,
    gitlab,
    gl_merge_request,
    gl_project,
    gl_push,
    skipped,
    triggered,
    without,
)

from farm.core.server_config import ForgeKind, ServerConfig
from farm.core.trigger import TriggerRequest, TriggerSource
from farm.server.events import Skip, Trigger
from farm.server.gitlab_events import gitlab_repository


def test_gitlab_branch_push_runs_its_checkout_sha() -> None:
    decision = gitlab("Push Hook", gl_push(ref="refs/heads/feature/totals"))
    assert isinstance(decision, Trigger)
    assert decision.repository == GITLAB_REPOSITORY
    assert decision.request == TriggerRequest(
        repository="gitlab.example.com/acme/shop",
        commit_sha=SHA,
        source=TriggerSource.GITLAB,
        branch="feature/totals",
        author="alice",
        delivery_id=DELIVERY,
    )


def test_gitlab_push_without_checkout_sha_runs_after() -> None:
    payload = without(gl_push(), "checkout_sha")
    assert triggered(gitlab("Push Hook", payload)).commit_sha == SHA


def test_gitlab_push_without_user_name_names_the_email() -> None:
    payload = without(gl_push(), "user_username")
    assert triggered(gitlab("Push Hook", payload)).author == "alice@example.com"


def test_gitlab_branch_deletion_is_skipped() -> None:
    payload = gl_push(after=ZERO, checkout_sha=None)
    assert gitlab("Push Hook", payload) == Skip(200, "branch deleted")


def test_gitlab_tag_push_is_skipped() -> None:
    tag = changed(gl_push(ref="refs/tags/v1.2.0"), "object_kind", "tag_push")
    assert gitlab("Tag Push Hook", tag) == Skip(200, "tag push")
    assert gitlab("Push Hook", gl_push(ref="refs/tags/v1.2.0")) == Skip(200, "tag push")


def test_gitlab_event_not_read_is_ignored() -> None:
    note = {"object_kind": "note", "project": gl_project()}
    assert gitlab("Note Hook", note) == Skip(200, "event Note Hook ignored")


def test_gitlab_system_hook_is_read_by_its_object_kind() -> None:
    assert triggered(gitlab("System Hook", gl_push())).branch == "main"
    assert gitlab("System Hook", {"object_kind": "repository_update"}) == Skip(
        200, "event repository_update ignored"
    )
    assert skipped(gitlab("System Hook", without(gl_push(), "object_kind"))).status_code == 400


def test_gitlab_body_kind_contradicting_the_header_is_400() -> None:
    decision = skipped(gitlab("Merge Request Hook", gl_push()))
    assert decision.status_code == 400
    assert "object_kind" in decision.reason


def test_gitlab_repository_not_configured_is_404() -> None:
    payload = changed(gl_push(), "project", gl_project("acme/other"))
    assert gitlab("Push Hook", payload) == Skip(
        404, "repository gitlab.example.com/acme/other is not configured"
    )


def test_gitlab_repository_configured_for_github_is_404() -> None:
    server = ServerConfig(repositories=(replace(GITLAB_REPOSITORY, forge=ForgeKind.GITHUB),))
    assert skipped(gitlab("Push Hook", gl_push(), server)).status_code == 404


def test_gitlab_repository_by_http_url_when_web_url_is_missing() -> None:
    payload = without(gl_push(), "project.web_url")
    assert gitlab_repository(payload, CONFIG) == GITLAB_REPOSITORY


@pytest.mark.parametrize(
    "payload",
    [
        gl_merge_request("open"),
        gl_merge_request("reopen"),
        gl_merge_request("update", oldrev=BEFORE),
    ],
    ids=["open", "reopen", "update-with-commits"],
)
def test_gitlab_merge_request_runs_its_last_commit(payload: dict[str, Any]) -> None:
    request = triggered(gitlab("Merge Request Hook", payload))
    assert request == TriggerRequest(
        repository="gitlab.example.com/acme/shop",
        commit_sha=SHA,
        source=TriggerSource.GITLAB,
        branch="round-totals",
        pull_request="7",
        author="alice",
        delivery_id=DELIVERY,
    )


def test_gitlab_merge_request_update_without_commits_is_skipped() -> None:
    payload = gl_merge_request("update", changes={"title": {"previous": "a", "current": "b"}})
    assert gitlab("Merge Request Hook", payload) == Skip(200, "update without new commits ignored")


@pytest.mark.parametrize("action", ["close", "merge", "approved", "unapproved"])
def test_gitlab_merge_request_other_actions_are_ignored(action: str) -> None:
    decision = gitlab("Merge Request Hook", gl_merge_request(action))
    assert decision == Skip(200, f"action {action} ignored")


def test_gitlab_merge_request_closed_before_the_update_is_skipped() -> None:
    payload = gl_merge_request("update", oldrev=BEFORE, state="closed")
    assert gitlab("Merge Request Hook", payload) == Skip(200, "merge request closed")


def test_gitlab_draft_merge_request_is_skipped_by_either_flag() -> None:
    assert gitlab("Merge Request Hook", gl_merge_request(draft=True)) == Skip(
        200, "draft merge request"
    )
    old_gitlab = without(gl_merge_request(draft=True), "object_attributes.draft")
    assert skipped(gitlab("Merge Request Hook", old_gitlab)).reason == "draft merge request"


def test_gitlab_draft_merge_request_runs_when_drafts_are_tested() -> None:
    decision = gitlab("Merge Request Hook", gl_merge_request(draft=True), config(test_drafts=True))
    assert triggered(decision).pull_request == "7"


def test_gitlab_merge_request_marked_ready_runs() -> None:
    payload = gl_merge_request("update", changes={"draft": {"previous": True, "current": False}})
    assert triggered(gitlab("Merge Request Hook", payload)).commit_sha == SHA


def test_gitlab_fork_merge_request_by_an_untrusted_user_is_skipped() -> None:
    payload = gl_merge_request(source_project_id=99, user="mallory")
    assert gitlab("Merge Request Hook", payload) == Skip(
        200, "pull request from a fork by mallory: not trusted (add the label 'safe to test')"
    )
    pushed = gl_merge_request("update", source_project_id=99, user="mallory", oldrev=BEFORE)
    assert "not trusted" in skipped(gitlab("Merge Request Hook", pushed)).reason


def test_gitlab_fork_merge_request_by_a_trusted_user_runs() -> None:
    payload = gl_merge_request(source_project_id=99, user="Carol")
    assert triggered(gitlab("Merge Request Hook", payload)).author == "Carol"


def test_gitlab_trust_label_does_not_approve_a_fork_s_later_commits() -> None:
    payload = gl_merge_request(source_project_id=99, user="mallory", labels=("safe to test",))
    reason = skipped(gitlab("Merge Request Hook", payload)).reason
    assert "not trusted" in reason and "remove and add the label" in reason


def test_gitlab_merge_request_from_a_deleted_source_project_is_untrusted() -> None:
    payload = gl_merge_request(source_project_id=None, user="mallory")
    assert "not trusted" in skipped(gitlab("Merge Request Hook", payload)).reason


def test_gitlab_trust_label_added_to_a_fork_merge_request_approves_a_run() -> None:
    added = {
        "labels": {
            "previous": [{"title": "bug"}],
            "current": [{"title": "bug"}, {"title": "safe to test"}],
        }
    }
    payload = gl_merge_request(
        "update",
        source_project_id=99,
        user="maintainer",
        labels=("bug", "safe to test"),
        changes=added,
    )
    assert triggered(gitlab("Merge Request Hook", payload)).commit_sha == SHA


def test_gitlab_other_label_added_or_trust_label_on_a_non_fork_is_skipped() -> None:
    other = {"labels": {"previous": [], "current": [{"title": "bug"}]}}
    payload = gl_merge_request("update", source_project_id=99, labels=("bug",), changes=other)
    assert skipped(gitlab("Merge Request Hook", payload)).status_code == 200
    trust = {"labels": {"previous": [], "current": [{"title": "safe to test"}]}}
    own = gl_merge_request("update", labels=("safe to test",), changes=trust)
    assert gitlab("Merge Request Hook", own) == Skip(200, "update without new commits ignored")


PUSH, MR = "Push Hook", "Merge Request Hook"
A = "object_attributes"


@pytest.mark.parametrize(
    ("header", "payload", "field"),
    [
        (PUSH, without(gl_push(), "ref"), "ref"),
        (PUSH, without(without(gl_push(), "after"), "checkout_sha"), "after"),
        (PUSH, changed(gl_push(), "checkout_sha", "not-a-sha"), "checkout_sha"),
        (PUSH, changed(gl_push(), "checkout_sha", 12), "checkout_sha"),
        (PUSH, without(gl_push(), "project"), "project"),
        (PUSH, changed(gl_push(), "project", [1]), "project"),
        (PUSH, changed(gl_push(), "object_kind", 3), "object_kind"),
        (MR, without(gl_merge_request(), A), "action"),
        (MR, without(gl_merge_request(), f"{A}.last_commit"), "last_commit"),
        (MR, changed(gl_merge_request(), f"{A}.last_commit.id", "z" * 40), "last_commit"),
        (MR, changed(gl_merge_request(), f"{A}.iid", "7"), "iid"),
        (MR, changed(gl_merge_request(), f"{A}.target_project_id", "15"), "target_project_id"),
        (MR, without(gl_merge_request(), "user"), "user"),
        (MR, changed(gl_merge_request(), "labels", [{"id": 1}]), "labels"),
        (MR, changed(gl_merge_request(), f"{A}.work_in_progress", "no"), "work_in_progress"),
    ],
)
def test_gitlab_malformed_body_is_400_naming_the_field(
    header: str, payload: dict[str, Any], field: str
) -> None:
    decision = skipped(gitlab(header, payload))
    assert decision.status_code == 400
    assert field in decision.reason


@pytest.mark.parametrize("payload", [[], "push", 7, None])
def test_gitlab_body_that_is_not_an_object_is_400(payload: object) -> None:
    assert skipped(gitlab("Push Hook", payload)).status_code == 400
