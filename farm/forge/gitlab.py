"""GitLab's API for a change's verdict: one commit status (an external "job").

GitLab's states are pending, running, success, failed, canceled and skipped. farm
reports :attr:`StatusState.PENDING` when its run starts, so it is ``running``
(GitLab's ``pending`` means queued, not started); failure and error are both
``failed``, an error saying so in its description, since GitLab has no state for
"no trustworthy answer" and a change that was never tested must not pass.
Projects are named ``host/group/.../project``; the project's path, escaped whole,
is its id in the API.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from farm.core import defaults
from farm.forge.http import HttpPolicy, send_json
from farm.forge.status import (
    StatusState,
    error_description,
    quote_segment,
    repository_path,
)

GITLAB_STATES: dict[StatusState, str] = {
    StatusState.PENDING: "running",
    StatusState.SUCCESS: "success",
    StatusState.FAILURE: "failed",
    StatusState.ERROR: "failed",
}


class GitLabClient:
    """GitLab's REST API at ``api_url`` (``https://gitlab.com/api/v4`` or a server's
    ``https://HOST/api/v4``) with a token that may write commit statuses (``api`` scope)."""

    def __init__(
        self,
        api_url: str,
        token: str,
        *,
        timeout_s: float = defaults.FORGE_TIMEOUT_S,
        retries: int = defaults.FORGE_RETRIES,
        backoff_s: float = defaults.FORGE_BACKOFF_S,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self._token = token
        self._policy = HttpPolicy(timeout_s, retries, backoff_s, sleep)

    def set_status(
        self,
        repository: str,
        sha: str,
        *,
        state: StatusState,
        description: str,
        target_url: str,
        context: str,
    ) -> None:
        """Set the status ``context`` of ``sha``; ``target_url`` "" links nowhere."""
        body: dict[str, Any] = {
            "state": GITLAB_STATES[state],
            "name": context,
            "description": error_description(state, description),
        }
        if target_url:
            body["target_url"] = target_url
        project = quote_segment(repository_path(repository))
        send_json(
            "GitLab",
            "POST",
            f"{self.api_url}/projects/{project}/statuses/{quote_segment(sha)}",
            headers={"PRIVATE-TOKEN": self._token, "Accept": "application/json"},
            body=body,
            policy=self._policy,
            secrets=(self._token,),
        )


__all__ = ["GITLAB_STATES", "GitLabClient"]
