"""Webhook deliveries read into decisions: run one commit, or skip with a reason.

A reader (:func:`read_github_event`, :func:`read_gitlab_event`, each written in a
module of its own) takes what a delivery is made of, the event name, the parsed
JSON body and the server's configuration, and returns a :data:`Decision`:

* :class:`Trigger`: the configured repository and the :class:`TriggerRequest` to
  queue (the caller answers 202);
* :class:`Skip`: nothing to run, with the HTTP status and a one-line reason:
  200 for an event understood and not tested (a tag, a closed pull request, an
  untrusted fork), 400 for a body lacking a field or holding one of the wrong type,
  404 for a repository not configured.

Readers never raise on a body, whatever it holds: anyone who reaches the server
can post one, and the signature is checked with the secret of the repository the
body names (see ``github_repository`` and ``gitlab_repository``).

Trust. A pull request from the repository itself was pushed by someone with write
access, so it runs. One from a fork runs only when its author is one of the
repository's ``trusted_authors`` or it carries the ``trust_label``, which only
maintainers can set: labelling it is how a maintainer approves a run.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from farm.core.errors import UsageError
from farm.core.repository_names import repository_name
from farm.core.server_config import ForgeKind, RepositoryConfig, ServerConfig
from farm.core.trigger import FULL_SHA, TriggerRequest, TriggerSource


@dataclass(frozen=True)
class Trigger:
    """Run ``request`` for ``repository`` (the configuration the body named)."""

    repository: RepositoryConfig
    request: TriggerRequest


@dataclass(frozen=True)
class Skip:
    """Run nothing; answer ``status_code`` with ``reason`` (one line)."""

    status_code: int
    reason: str


Decision = Trigger | Skip


class MalformedPayload(UsageError):
    """Raised when a webhook body lacks a field a reader needs, or holds one of another type."""


_SHOWN_CHARS = 100  # payload text quoted in a reason: enough to recognise, one line
BRANCH_PREFIX = "refs/heads/"
TAG_PREFIX = "refs/tags/"


def shown(value: object) -> str:
    """Text from a body as a reason may quote it: printable, one line, bounded."""
    text = "".join(c if c.isprintable() else "?" for c in str(value))
    return text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 3] + "..."


def value(payload: object, path: str) -> object:
    """The value at ``path`` (dotted keys); None when it, or an object on the way, is
    missing or null. An object on the way that is another type is malformed."""
    node = payload
    walked: list[str] = []
    for key in path.split("."):
        if node is None:
            return None
        if not isinstance(node, Mapping):
            where = f"field {'.'.join(walked)}" if walked else "the body"
            raise MalformedPayload(f"{where} is not a JSON object")
        walked.append(key)
        node = node.get(key)
    return node


def optional_text(payload: object, path: str) -> str | None:
    found = value(payload, path)
    if found is not None and not isinstance(found, str):
        raise MalformedPayload(f"field {path} is not a string")
    return found


def text(payload: object, path: str) -> str:
    found = optional_text(payload, path)
    if found is None:
        raise MalformedPayload(f"field {path} missing")
    return found


def number(payload: object, path: str) -> int:
    found = value(payload, path)
    if found is None:
        raise MalformedPayload(f"field {path} missing")
    if isinstance(found, bool) or not isinstance(found, int):
        raise MalformedPayload(f"field {path} is not a whole number")
    return found


def flag(payload: object, path: str) -> bool:
    """A true/false field; missing or null is false."""
    found = value(payload, path)
    if found is not None and not isinstance(found, bool):
        raise MalformedPayload(f"field {path} is not true or false")
    return bool(found)


def names(payload: object, path: str, key: str) -> tuple[str, ...]:
    """``key`` of each object in the list at ``path`` (label names); () when missing."""
    found = value(payload, path)
    if found is None:
        return ()
    if not isinstance(found, list):
        raise MalformedPayload(f"field {path} is not a list")
    found_names = []
    for item in found:
        name = item.get(key) if isinstance(item, Mapping) else None
        if not isinstance(name, str):
            raise MalformedPayload(f"field {path}[].{key} missing or not a string")
        found_names.append(name)
    return tuple(found_names)


def deleted(sha: str) -> bool:
    """Whether ``sha`` is the all-zero sha forges send for a deleted ref."""
    return bool(sha) and set(sha) == {"0"}


def commit_sha(sha: str, path: str) -> str:
    if not FULL_SHA.fullmatch(sha.lower()):
        raise MalformedPayload(f"field {path} is not a full commit sha")
    return sha.lower()


def branch_of(ref: str, path: str) -> str:
    """``X`` of ``refs/heads/X``."""
    branch = ref[len(BRANCH_PREFIX) :] if ref.startswith(BRANCH_PREFIX) else ""
    if not branch:
        raise MalformedPayload(f"field {path} is not a branch")
    return branch


def configured_repository(
    config: ServerConfig, url: str, forge: ForgeKind
) -> RepositoryConfig | Skip:
    """The repository a body's URL names, if configured for ``forge``.

    Names are matched exactly, then ignoring case when that finds exactly one:
    forges treat owner and project names so, and a hand-written configuration may
    not spell them as the forge does.
    """
    name = repository_name(url)
    found = config.repository(name)
    if found is None:
        folded = [r for r in config.repositories if r.name.casefold() == name.casefold()]
        found = folded[0] if len(folded) == 1 else None
    if found is None:
        return Skip(404, f"repository {shown(name)} is not configured")
    if found.forge is not forge:
        return Skip(404, f"repository {shown(name)} is configured for {found.forge.value}")
    return found


def is_trusted(repository: RepositoryConfig, author: str, labels: Iterable[str]) -> bool:
    """Whether a pull request from a fork may run: a trusted author, or the trust label.

    Logins and label names are compared ignoring case, as forges keep them unique so.
    """
    if author and author.casefold() in {a.casefold() for a in repository.trusted_authors}:
        return True
    return is_trust_label(repository, labels)


def is_trust_label(repository: RepositoryConfig, labels: Iterable[str]) -> bool:
    label = repository.trust_label.casefold()
    return bool(label) and any(name.casefold() == label for name in labels)


def untrusted(repository: RepositoryConfig, author: str, *, labelled: bool = False) -> Skip:
    """A fork's pull request that may not run; ``labelled``: it carries the trust label
    from an earlier commit, which does not approve this one."""
    label = shown(repository.trust_label)
    if labelled:
        hint = f" (new commits: remove and add the label '{label}' again)"
    else:
        hint = f" (add the label '{label}')" if repository.trust_label else ""
    return Skip(200, f"pull request from a fork by {shown(author)}: not trusted{hint}")


def trigger(
    repository: RepositoryConfig,
    source: TriggerSource,
    sha: str,
    *,
    branch: str,
    pull_request: str = "",
    author: str = "",
    delivery_id: str,
) -> Trigger:
    """The decision to run ``sha``; fields TriggerRequest refuses raise UsageError."""
    request = TriggerRequest(
        repository=repository.name,
        commit_sha=sha.lower(),
        source=source,
        branch=branch,
        pull_request=pull_request,
        author=author,
        delivery_id=delivery_id,
    )
    return Trigger(repository, request)


def refused(error: UsageError) -> Skip:
    return Skip(400, shown(error.message))


# The readers live in modules of their own, which build on this one: they are
# imported when called, so that either module may be imported first.
def read_github_event(
    event: str, payload: object, config: ServerConfig, *, delivery_id: str = ""
) -> Decision:
    """What to do with a GitHub delivery: see farm.server.github_events."""
    from farm.server.github_events import read_github_event as read

    return read(event, payload, config, delivery_id=delivery_id)


def read_gitlab_event(
    event_header: str, payload: object, config: ServerConfig, *, delivery_id: str = ""
) -> Decision:
    """What to do with a GitLab delivery: see farm.server.gitlab_events."""
    from farm.server.gitlab_events import read_gitlab_event as read

    return read(event_header, payload, config, delivery_id=delivery_id)


__all__ = [
    "BRANCH_PREFIX",
    "TAG_PREFIX",
    "Decision",
    "MalformedPayload",
    "Skip",
    "Trigger",
    "branch_of",
    "commit_sha",
    "configured_repository",
    "deleted",
    "flag",
    "is_trust_label",
    "is_trusted",
    "names",
    "number",
    "optional_text",
    "read_github_event",
    "read_gitlab_event",
    "refused",
    "shown",
    "text",
    "trigger",
    "untrusted",
    "value",
]
