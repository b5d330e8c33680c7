"""GitHub webhook deliveries (``X-GitHub-Event``) read into decisions.

=================  ==============================================================
event              decision
=================  ==============================================================
``ping``           skip, 200 "pong"
``push``           a branch's new head runs; tags and deleted branches skip
``pull_request``   opened, synchronize, reopened, ready_for_review run the head
                   commit; ``labeled`` with the trust label approves a fork's;
                   drafts skip unless ``test_drafts``; forks need trust
``merge_group``    ``checks_requested`` runs the merge queue's commit
anything else      skip, 200 "event X ignored"
=================  ==============================================================
"""

from __future__ import annotations

from collections.abc import Callable

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
)

# Actions that put new code (or code now ready) in front of the farm.
_PULL_REQUEST_RUNS = frozenset({"opened", "synchronize", "reopened", "ready_for_review"})


def github_repository(payload: object, config: ServerConfig) -> RepositoryConfig | Skip:
    """The configured repository a delivery's body names (``repository.html_url``).

    The caller checks the body's signature with this repository's secret before it
    acts on the delivery.
    """
    try:
        url = optional_text(payload, "repository.html_url") or optional_text(
            payload, "repository.clone_url"
        )
        if not url:
            raise MalformedPayload("field repository.html_url missing")
        return configured_repository(config, url, ForgeKind.GITHUB)
    except UsageError as e:
        return refused(e)


def read_github_event(
    event: str, payload: object, config: ServerConfig, *, delivery_id: str = ""
) -> Decision:
    """What to do with one delivery of ``event`` (``X-GitHub-Event``); never raises."""
    if event == "ping":
        return Skip(200, "pong")
    read = _READERS.get(event)
    if read is None:
        return Skip(200, f"event {shown(event)} ignored")
    found = github_repository(payload, config)
    if isinstance(found, Skip):
        return found
    try:
        return read(found, payload, delivery_id)
    except UsageError as e:
        return refused(e)


def _push(repository: RepositoryConfig, payload: object, delivery_id: str) -> Decision:
    ref = text(payload, "ref")
    if ref.startswith(TAG_PREFIX):
        return Skip(200, "tag push")
    if not ref.startswith(BRANCH_PREFIX):
        return Skip(200, f"ref {shown(ref)} ignored")
    branch = branch_of(ref, "ref")
    if flag(payload, "deleted"):
        return Skip(200, "branch deleted")
    after = text(payload, "after")
    if deleted(after):
        return Skip(200, "branch deleted")
    author = (
        optional_text(payload, "head_commit.author.email")
        or optional_text(payload, "pusher.name")
        or optional_text(payload, "sender.login")
        or ""
    )
    return trigger(
        repository,
        TriggerSource.GITHUB,
        commit_sha(after, "after"),
        branch=branch,
        author=author,
        delivery_id=delivery_id,
    )


def _pull_request(repository: RepositoryConfig, payload: object, delivery_id: str) -> Decision:
    action = text(payload, "action")
    if action not in _PULL_REQUEST_RUNS and action != "labeled":
        return Skip(200, f"action {shown(action)} ignored")
    number_ = number(payload, "pull_request.number")
    sha = commit_sha(text(payload, "pull_request.head.sha"), "pull_request.head.sha")
    branch = text(payload, "pull_request.head.ref")
    author = text(payload, "pull_request.user.login")
    labels = names(payload, "pull_request.labels", "name")
    # A deleted fork leaves head.repo null: still a fork, and one nobody can vouch for.
    head = optional_text(payload, "pull_request.head.repo.full_name")
    fork = head is None or head != text(payload, "pull_request.base.repo.full_name")
    if action == "labeled":
        added = text(payload, "label.name")
        if not is_trust_label(repository, [added]):
            return Skip(200, f"label '{shown(added)}' is not the trust label")
        if not fork:
            return Skip(200, "trust label on a pull request not from a fork")
    if optional_text(payload, "pull_request.state") == "closed":
        return Skip(200, "pull request closed")
    if flag(payload, "pull_request.draft") and not repository.test_drafts:
        return Skip(200, "draft pull request")
    # The label approves the commit it was added on, not what the fork pushes after
    # it: new commits need the label again (removed and added), as a new review.
    approved = [text(payload, "label.name")] if action == "labeled" else []
    if fork and not is_trusted(repository, author, approved):
        return untrusted(repository, author, labelled=is_trust_label(repository, labels))
    return trigger(
        repository,
        TriggerSource.GITHUB,
        sha,
        branch=branch,
        pull_request=str(number_),
        author=author,
        delivery_id=delivery_id,
    )


def _merge_group(repository: RepositoryConfig, payload: object, delivery_id: str) -> Decision:
    # The queue's branch holds pull requests a maintainer queued: no fork rule here.
    action = text(payload, "action")
    if action != "checks_requested":
        return Skip(200, f"action {shown(action)} ignored")
    sha = commit_sha(text(payload, "merge_group.head_sha"), "merge_group.head_sha")
    branch = branch_of(text(payload, "merge_group.head_ref"), "merge_group.head_ref")
    author = (
        optional_text(payload, "merge_group.head_commit.author.email")
        or optional_text(payload, "sender.login")
        or ""
    )
    return trigger(
        repository,
        TriggerSource.GITHUB,
        sha,
        branch=branch,
        author=author,
        delivery_id=delivery_id,
    )


_READERS: dict[str, Callable[[RepositoryConfig, object, str], Decision]] = {
    "push": _push,
    "pull_request": _pull_request,
    "merge_group": _merge_group,
}

__all__ = ["github_repository", "read_github_event"]
