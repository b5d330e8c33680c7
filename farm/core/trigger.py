"""A request to test one commit of a configured repository: the wire between the
server that hears about a change and the conductor that runs it.

It names the repository by its configured name, never by a URL from the
webhook, and carries no credential: the conductor takes the clone URL, tokens and
status settings from its own configuration, so nothing a forge (or whoever can post
to the server) sends decides where code is fetched from or what it can read.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from enum import Enum

from farm.core.domain import ChangeRef
from farm.core.errors import UsageError

# The Celery task a conductor runs for one request, and the queue it waits on: the
# farm's shard queue with this suffix, so conductors never take shards and workers
# never take runs.
TASK_NAME = "farm.test_change"
QUEUE_SUFFIX = ".changes"

# A full commit sha, lower case: SHA-1 (40 hex digits) or SHA-256 (64).
FULL_SHA = re.compile(r"[0-9a-f]{40}(?:[0-9a-f]{24})?")
# Free text fields are bounded: they end up in statuses, logs and pages.
FIELD_LIMIT = 512


def changes_queue(queue: str) -> str:
    """The queue of trigger requests for the farm whose shards go on ``queue``."""
    return f"{queue}{QUEUE_SUFFIX}"


class TriggerSource(str, Enum):
    """What asked for the run."""

    GITHUB = "github"  # a GitHub webhook delivery
    GITLAB = "gitlab"  # a GitLab webhook delivery
    API = "api"  # POST /api/changes with the API token
    POLL = "poll"  # a branch head the poller had not seen
    RERUN = "rerun"  # a change re-run from the dashboard by a writer


@dataclass(frozen=True)
class TriggerRequest:
    """Test ``commit_sha`` of ``repository`` (a configured repository's name)."""

    repository: str
    commit_sha: str  # a full hex sha, lower case
    source: TriggerSource
    branch: str = ""
    pull_request: str = ""
    author: str = ""
    delivery_id: str = ""  # the forge's delivery id, for the logs

    def __post_init__(self) -> None:
        if not FULL_SHA.fullmatch(self.commit_sha):
            raise UsageError(f"{self.commit_sha[:80]!r} is not a full commit sha")
        for name in ("repository", "branch", "pull_request", "author", "delivery_id"):
            value = getattr(self, name)
            if len(value) > FIELD_LIMIT or any(c in value for c in "\x00\r\n"):
                raise UsageError(f"{name} must be one line of at most {FIELD_LIMIT} characters")
        if not self.repository:
            raise UsageError("repository must not be empty")

    @property
    def change(self) -> ChangeRef:
        return ChangeRef(
            repository=self.repository,
            commit_sha=self.commit_sha,
            branch=self.branch,
            pull_request=self.pull_request,
            author=self.author,
        )

    def to_json(self) -> dict[str, str]:
        data = asdict(self)
        data["source"] = self.source.value
        return data

    @classmethod
    def from_json(cls, data: object) -> TriggerRequest:
        """Read a request from the wire; anything malformed is a UsageError."""
        if not isinstance(data, Mapping):
            raise UsageError("a trigger request must be a JSON object")
        fields = {}
        for name in (
            "repository", "commit_sha", "source", "branch", "pull_request", "author",
            "delivery_id",
        ):  # fmt: skip
            value = data.get(name, "")
            if not isinstance(value, str):
                raise UsageError(f"trigger request field {name} must be a string")
            fields[name] = value
        try:
            source = TriggerSource(fields.pop("source"))
        except ValueError:
            raise UsageError("trigger request has an unknown source") from None
        return cls(source=source, **fields)


__all__ = [
    "FIELD_LIMIT",
    "FULL_SHA",
    "QUEUE_SUFFIX",
    "TASK_NAME",
    "TriggerRequest",
    "TriggerSource",
    "changes_queue",
]
