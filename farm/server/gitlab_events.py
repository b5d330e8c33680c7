"""GitLab webhook deliveries (``X-Gitlab-Event``) read into decisions.

==================  =============================================================
event               decision
==================  =============================================================
Push Hook           a branch's new head runs; deleted branches skip
Tag Push Hook       skip, 200 "tag push"
Merge Request Hook  open, reopen run the last commit; update runs when it brought
                    commits, took the draft off, or added the trust label to a
                    fork's; drafts skip unless ``test_drafts``; forks need trust
anything else       skip, 200 "event X ignored"
==================  =============================================================

A system hook (``System Hook``) names its kind only in the body's ``object_kind``;
a project hook names it in both, and a body whose kind contradicts the header is
refused.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from farm.core.errors import UsageError
from farm.core.server_config import ForgeKind, RepositoryConfig, ServerConfig
from farm.core.trigger import TriggerSource
from farm.server.events import (
    BRANCH_PREFIX,
    TAG_PREFIX,
    Decision,
    MalformedPayload,
    Skip,
    branch_of,
    commit_sha,
    configured_repository,
    deleted,
    flag,
    is_trust_label,
    is_trusted,
    names,
    number,
    optional_text,
    refused,
    shown,
    text,
    trigger,
    untrusted,
    value,
)

_KINDS = {"Push Hook": "push", "Tag Push Hook": "tag_push", "Merge Request Hook": "merge_request"}
_SYSTEM_HOOK = "System Hook"
_MERGE_REQUEST_RUNS = frozenset({"open", "reopen", "update"})


def gitlab_repository(payload: object, config: ServerConfig) -> RepositoryConfig | Skip:
    """The configured repository a delivery's body names (``project.web_url``); for a
    merge request that is the target project.

    The caller checks the delivery's token with this repository's secret before it
    acts on the delivery.
    """
    try:
        url = optional_text(payload, "project.web_url") or optional_text(
            payload, "project.git_http_url"
        )
        if not url:
            raise MalformedPayload("field project.web_url missing")
        return configured_repository(config, url, ForgeKind.GITLAB)
    except UsageError as e:
        return refused(e)


def read_gitlab_event(
    event_header: str, payload: object, config: ServerConfig, *, delivery_id: str = ""
) -> Decision:
    """What to do with one delivery (``X-Gitlab-Event`` is ``event_header``); never raises."""
    try:
        kind = _kind(event_header.strip(), payload)
    except UsageError as e:
        return refused(e)
    read = _READERS.get(kind)
    if read is None:
        return Skip(200, f"event {shown(kind or event_header.strip())} ignored")
    found = gitlab_repository(payload, config)
    if isinstance(found, Skip):
        return found
    try:
        return read(found, payload, delivery_id)
    except UsageError as e:
        return refused(e)


def _kind(header: str, payload: object) -> str:
    """The body's ``object_kind`` as the header names it; "" for a header we do not read."""
    if not isinstance(payload, Mapping):
        raise MalformedPayload("the body is not a JSON object")
    in_body = optional_text(payload, "object_kind")
    if header in ("", _SYSTEM_HOOK):
        if in_body is None:
            raise MalformedPayload("field object_kind missing")
        return in_body
    kind = _KINDS.get(header, "")
    if kind and in_body is not None and in_body != kind:
        raise MalformedPayload(f"object_kind {shown(in_body)} does not match {shown(header)}")
    return kind


def _push(repository: RepositoryConfig, payload: object, delivery_id: str) -> Decision:
    ref = text(payload, "ref")
    if ref.startswith(TAG_PREFIX):
        return Skip(200, "tag push")
    if not ref.startswith(BRANCH_PREFIX):
        return Skip(200, f"ref {shown(ref)} ignored")
    branch = branch_of(ref, "ref")
    after = optional_text(payload, "after")
    if after is not None and deleted(after):
        return Skip(200, "branch deleted")
    # checkout_sha is the pushed ref's head; it is null when the ref was deleted.
    field = "checkout_sha" if optional_text(payload, "checkout_sha") else "after"
    sha = text(payload, field)
    if deleted(sha):
        return Skip(200, "branch deleted")
    author = optional_text(payload, "user_username") or optional_text(payload, "user_email")
    return trigger(
        repository,
        TriggerSource.GITLAB,
        commit_sha(sha, field),
        branch=branch,
        author=author or "",
        delivery_id=delivery_id,
    )


def _merge_request(repository: RepositoryConfig, payload: object, delivery_id: str) -> Decision:
    action = text(payload, "object_attributes.action")
    if action not in _MERGE_REQUEST_RUNS:
        return Skip(200, f"action {shown(action)} ignored")
    attributes = "object_attributes"
    # A deleted source project leaves its id null: still a fork, and unvouched for.
    source = value(payload, f"{attributes}.source_project_id")
    fork = source is None or number(payload, f"{attributes}.source_project_id") != number(
        payload, f"{attributes}.target_project_id"
    )
    if value(payload, "labels") is not None:
        labels = names(payload, "labels", "title")
    else:
        labels = names(payload, f"{attributes}.labels", "title")
    if action == "update" and not _update_runs(repository, payload, fork):
        return Skip(200, "update without new commits ignored")
    state = optional_text(payload, f"{attributes}.state")
    if state in ("closed", "merged"):
        return Skip(200, f"merge request {state}")
    draft = flag(payload, f"{attributes}.draft") or flag(payload, f"{attributes}.work_in_progress")
    if draft and not repository.test_drafts:
        return Skip(200, "draft merge request")
    # The user is whoever caused the event: the one who opened, reopened or pushed.
    author = text(payload, "user.username")
    # The label approves the commit it was added on only (see github_events).
    approved = labels if action == "update" and _label_added(repository, payload) else []
    if fork and not is_trusted(repository, author, approved):
        return untrusted(repository, author, labelled=is_trust_label(repository, labels))
    sha = commit_sha(text(payload, f"{attributes}.last_commit.id"), f"{attributes}.last_commit.id")
    return trigger(
        repository,
        TriggerSource.GITLAB,
        sha,
        branch=text(payload, f"{attributes}.source_branch"),
        pull_request=str(number(payload, f"{attributes}.iid")),
        author=author,
        delivery_id=delivery_id,
    )


def _update_runs(repository: RepositoryConfig, payload: object, fork: bool) -> bool:
    """Whether an ``update`` is worth a run: new commits (``oldrev`` is set only then),
    the draft taken off, or, on a fork's merge request, the trust label added."""
    if optional_text(payload, "object_attributes.oldrev"):
        return True
    for field in ("draft", "work_in_progress"):
        if flag(payload, f"changes.{field}.previous") and not flag(
            payload, f"changes.{field}.current"
        ):
            return True
    return fork and _label_added(repository, payload)


def _label_added(repository: RepositoryConfig, payload: object) -> bool:
    """Whether this update added the trust label."""
    if value(payload, "changes.labels") is None:
        return False
    before = names(payload, "changes.labels.previous", "title")
    after = names(payload, "changes.labels.current", "title")
    return is_trust_label(repository, after) and not is_trust_label(repository, before)


_READERS: dict[str, Callable[[RepositoryConfig, object, str], Decision]] = {
    "push": _push,
    "tag_push": lambda _repository, _payload, _delivery_id: Skip(200, "tag push"),
    "merge_request": _merge_request,
}

__all__ = ["gitlab_repository", "read_gitlab_event"]
