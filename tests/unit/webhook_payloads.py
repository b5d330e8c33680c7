"""Webhook bodies for the tests of farm.server's event readers.

The builders make bodies shaped as GitHub's and GitLab's documentation shows them,
trimmed to a realistic subset; a test changes what its rule is about with
:func:`changed` and :func:`without`.
"""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any

from farm.core.server_config import ForgeKind, RepositoryConfig, ServerConfig
from farm.core.trigger import TriggerRequest
from farm.server.events import Decision, Skip, Trigger
from farm.server.github_events import read_github_event
from farm.server.gitlab_events import read_gitlab_event

SHA = "6113728f27ae82c7b1a177c8d03f9e96e0adf246"
BEFORE = "4544b87de3e2e6e0bf8fb1aa54b2a9c5fbd1d3b0"
ZERO = "0" * 40
DELIVERY = "72d3162e-cc78-11e3-81ab-4c9367dc0958"

GITHUB_REPOSITORY = RepositoryConfig(
    name="github.com/acme/shop",
    url="git@github.com:acme/shop.git",
    forge=ForgeKind.GITHUB,
    api_url="https://api.github.com",
    webhook_secret="gh-secret",
    trusted_authors=("Carol",),
    trust_label="safe to test",
)
GITLAB_REPOSITORY = RepositoryConfig(
    name="gitlab.example.com/acme/shop",
    url="https://gitlab.example.com/acme/shop.git",
    forge=ForgeKind.GITLAB,
    api_url="https://gitlab.example.com/api/v4",
    webhook_secret="gl-secret",
    trusted_authors=("carol",),
    trust_label="safe to test",
)


def config(**changes: Any) -> ServerConfig:
    """Both repositories, with ``changes`` applied to each."""
    return ServerConfig(
        repositories=(replace(GITHUB_REPOSITORY, **changes), replace(GITLAB_REPOSITORY, **changes))
    )


CONFIG = config()


def changed(payload: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of ``payload`` with the field at ``path`` (dotted keys) set to ``value``."""
    copied = copy.deepcopy(payload)
    *parents, last = path.split(".")
    node = copied
    for key in parents:
        node = node[key]
    node[last] = value
    return copied


def without(payload: dict[str, Any], path: str) -> dict[str, Any]:
    copied = copy.deepcopy(payload)
    *parents, last = path.split(".")
    node = copied
    for key in parents:
        node = node[key]
    del node[last]
    return copied


def skipped(decision: Decision) -> Skip:
    assert isinstance(decision, Skip), decision
    return decision


def triggered(decision: Decision) -> TriggerRequest:
    assert isinstance(decision, Trigger), decision
    return decision.request


# -- GitHub ----------------------------------------------------------------------


def gh_repository(full_name: str = "acme/shop") -> dict[str, Any]:
    owner, name = full_name.split("/")
    return {
        "id": 1296269,
        "name": name,
        "full_name": full_name,
        "private": False,
        "owner": {"login": owner, "id": 1, "type": "Organization"},
        "html_url": f"https://github.com/{full_name}",
        "clone_url": f"https://github.com/{full_name}.git",
        "ssh_url": f"git@github.com:{full_name}.git",
        "default_branch": "main",
    }


def gh_push(ref: str = "refs/heads/main", after: str = SHA) -> dict[str, Any]:
    commit = {
        "id": after,
        "tree_id": "f9d2a07e9488b91af2641b26b9407fe22a451433",
        "message": "Round totals half-even",
        "timestamp": "2026-11-30T10:30:36+00:00",
        "author": {"name": "Alice", "email": "alice@example.com", "username": "alice"},
        "committer": {"name": "Alice", "email": "alice@example.com", "username": "alice"},
        "added": [],
        "removed": [],
        "modified": ["shop/totals.py"],
    }
    return {
        "ref": ref,
        "before": BEFORE,
        "after": after,
        "created": False,
        "deleted": False,
        "forced": False,
        "base_ref": None,
        "compare": f"https://github.com/acme/shop/compare/{BEFORE[:12]}...{after[:12]}",
        "commits": [commit],
        "head_commit": commit,
        "repository": gh_repository(),
        "pusher": {"name": "alice", "email": "alice@example.com"},
        "sender": {"login": "alice", "id": 2, "type": "User"},
    }


def gh_pull_request(
    action: str = "opened",
    *,
    head_repo: str | None = "acme/shop",
    author: str = "alice",
    draft: bool = False,
    labels: tuple[str, ...] = (),
    state: str = "open",
) -> dict[str, Any]:
    head_owner = head_repo.split("/")[0] if head_repo else "ghost"
    return {
        "action": action,
        "number": 42,
        "pull_request": {
            "url": "https://api.github.com/repos/acme/shop/pulls/42",
            "html_url": "https://github.com/acme/shop/pull/42",
            "number": 42,
            "state": state,
            "locked": False,
            "title": "Round totals half-even",
            "user": {"login": author, "id": 3, "type": "User"},
            "draft": draft,
            "labels": [
                {"id": 7 + i, "name": name, "color": "0e8a16"} for i, name in enumerate(labels)
            ],
            "head": {
                "label": f"{head_owner}:round-totals",
                "ref": "round-totals",
                "sha": SHA,
                "user": {"login": head_owner},
                "repo": gh_repository(head_repo) if head_repo else None,
            },
            "base": {
                "label": "acme:main",
                "ref": "main",
                "sha": BEFORE,
                "user": {"login": "acme"},
                "repo": gh_repository(),
            },
        },
        "repository": gh_repository(),
        "sender": {"login": author, "id": 3, "type": "User"},
    }


def gh_labeled(label: str, **pull_request: Any) -> dict[str, Any]:
    payload = gh_pull_request("labeled", **pull_request)
    payload["label"] = {"id": 99, "name": label, "color": "0e8a16"}
    payload["sender"] = {"login": "maintainer", "id": 4, "type": "User"}
    return payload


def gh_merge_group(action: str = "checks_requested") -> dict[str, Any]:
    return {
        "action": action,
        "merge_group": {
            "head_sha": SHA,
            "head_ref": f"refs/heads/gh-readonly-queue/main/pr-42-{BEFORE}",
            "base_sha": BEFORE,
            "base_ref": "refs/heads/main",
            "head_commit": {
                "id": SHA,
                "tree_id": "f9d2a07e9488b91af2641b26b9407fe22a451433",
                "message": "Merge pull request #42 from acme/round-totals",
                "timestamp": "2026-11-30T10:30:36Z",
                "author": {"name": "Alice", "email": "alice@example.com"},
                "committer": {"name": "GitHub", "email": "noreply@github.com"},
            },
        },
        "repository": gh_repository(),
        "sender": {"login": "alice", "id": 2, "type": "User"},
    }


def github(event: str, payload: object, server: ServerConfig = CONFIG) -> Decision:
    return read_github_event(event, payload, server, delivery_id=DELIVERY)


# -- GitLab ----------------------------------------------------------------------


def gl_project(path: str = "acme/shop", project_id: int = 15) -> dict[str, Any]:
    return {
        "id": project_id,
        "name": path.rsplit("/", 1)[1],
        "description": "",
        "web_url": f"https://gitlab.example.com/{path}",
        "git_ssh_url": f"git@gitlab.example.com:{path}.git",
        "git_http_url": f"https://gitlab.example.com/{path}.git",
        "namespace": path.split("/")[0],
        "visibility_level": 20,
        "path_with_namespace": path,
        "default_branch": "main",
    }


def gl_push(
    ref: str = "refs/heads/main", after: str = SHA, checkout_sha: str | None = SHA
) -> dict[str, Any]:
    return {
        "object_kind": "push",
        "event_name": "push",
        "before": BEFORE,
        "after": after,
        "ref": ref,
        "ref_protected": True,
        "checkout_sha": checkout_sha,
        "user_id": 4,
        "user_name": "Alice",
        "user_username": "alice",
        "user_email": "alice@example.com",
        "project_id": 15,
        "project": gl_project(),
        "commits": [
            {
                "id": after,
                "message": "Round totals half-even",
                "timestamp": "2026-11-30T10:30:36+00:00",
                "author": {"name": "Alice", "email": "alice@example.com"},
            }
        ],
        "total_commits_count": 1,
    }


def gl_merge_request(
    action: str = "open",
    *,
    source_project_id: int | None = 15,
    user: str = "alice",
    draft: bool = False,
    labels: tuple[str, ...] = (),
    oldrev: str | None = None,
    state: str = "opened",
    changes: dict[str, Any] | None = None,
) -> dict[str, Any]:
    label_objects = [
        {"id": 200 + i, "title": name, "type": "ProjectLabel"} for i, name in enumerate(labels)
    ]
    source = gl_project("mallory/shop", 99) if source_project_id == 99 else gl_project()
    attributes: dict[str, Any] = {
        "id": 1201,
        "iid": 7,
        "target_branch": "main",
        "source_branch": "round-totals",
        "source_project_id": source_project_id,
        "target_project_id": 15,
        "author_id": 4,
        "title": "Round totals half-even",
        "state": state,
        "merge_status": "unchecked",
        "action": action,
        "draft": draft,
        "work_in_progress": draft,
        "url": "https://gitlab.example.com/acme/shop/-/merge_requests/7",
        "source": source,
        "target": gl_project(),
        "last_commit": {
            "id": SHA,
            "message": "Round totals half-even",
            "author": {"name": "Alice", "email": "alice@example.com"},
        },
        "labels": label_objects,
    }
    if oldrev is not None:
        attributes["oldrev"] = oldrev
    return {
        "object_kind": "merge_request",
        "event_type": "merge_request",
        "user": {"id": 4, "name": user.title(), "username": user, "email": "[REDACTED]"},
        "project": gl_project(),
        "object_attributes": attributes,
        "labels": label_objects,
        "changes": changes or {},
    }


def gitlab(header: str, payload: object, server: ServerConfig = CONFIG) -> Decision:
    return read_gitlab_event(header, payload, server, delivery_id=DELIVERY)
