"""GitHub's API for a change's verdict: commit statuses, and check runs for an App.

With a token (a personal or fine-grained token with "commit statuses: write") the
verdict is a commit status. With a GitHub App's credentials the client signs a
short JWT (RS256, issued 60 s in the past against clock drift, for
``GITHUB_APP_JWT_S``), trades it for an installation token, kept until
``INSTALLATION_TOKEN_MARGIN_S`` before it expires, and can write check runs, which
carry a summary and annotations besides the state.

A check run's conclusion for :attr:`StatusState.ERROR` is ``failure``: GitHub has
no error conclusion, and ``neutral`` would let a required check pass a change that
was never tested; the title then says error. Repositories are named ``host/owner/repo``
(:mod:`farm.core.repository_names`); GitHub Enterprise differs only by ``api_url``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from farm.core import defaults
from farm.core.errors import ForgeError
from farm.core.server_config import GitHubApp
from farm.forge.http import HttpPolicy, send_json
from farm.forge.status import (
    ANNOTATION_MESSAGE_LIMIT_BYTES,
    ANNOTATION_TITLE_LIMIT,
    Annotation,
    StatusReport,
    StatusState,
    annotation_batches,
    cut_bytes,
    cut_text,
    error_description,
    quote_segment,
    repository_path,
    short_description,
    split_annotations,
    summary_with_listed,
)

API_VERSION = "2022-11-28"

# None: the check run stays in progress.
CHECK_CONCLUSIONS: dict[StatusState, str | None] = {
    StatusState.PENDING: None,
    StatusState.SUCCESS: "success",
    StatusState.FAILURE: "failure",
    StatusState.ERROR: "failure",
}


def app_jwt(app: GitHubApp, now_s: float, lifetime_s: int = defaults.GITHUB_APP_JWT_S) -> str:
    """The JWT that authenticates ``app`` itself, issued at ``now_s`` (seconds since the epoch)."""
    import jwt

    issued = int(now_s) - 60  # GitHub refuses a JWT issued in its future
    claims = {"iat": issued, "exp": int(now_s) + lifetime_s, "iss": app.app_id}
    try:
        return jwt.encode(claims, app.private_key_pem, algorithm="RS256")
    except (ValueError, TypeError, jwt.PyJWTError):
        # The library's message may quote the key; name the app only.
        raise ForgeError(
            f"the private key of GitHub App {app.app_id} is not an RSA private key in PEM"
        ) from None


def owner_repo(repository: str) -> str:
    """``owner/repo`` of a repository named ``host/owner/repo``, each part escaped."""
    owner, repo = repository_path(repository, parts=2).split("/")
    return f"{quote_segment(owner)}/{quote_segment(repo)}"


def annotation_fields(annotation: Annotation) -> dict[str, Any]:
    line = annotation.line if annotation.line and annotation.line > 0 else 1
    return {
        "path": annotation.path,
        "start_line": line,
        "end_line": line,
        "annotation_level": "failure",
        "title": cut_text(" ".join(annotation.title.split()), ANNOTATION_TITLE_LIMIT),
        "message": cut_bytes(
            annotation.message or annotation.title, ANNOTATION_MESSAGE_LIMIT_BYTES
        ),
    }


class GitHubClient:
    """GitHub's REST API at ``api_url`` (``https://api.github.com``, or an Enterprise
    server's ``https://HOST/api/v3``), as ``token`` or as ``app``'s installation."""

    def __init__(
        self,
        api_url: str,
        *,
        token: str = "",
        app: GitHubApp | None = None,
        timeout_s: float = defaults.FORGE_TIMEOUT_S,
        retries: int = defaults.FORGE_RETRIES,
        backoff_s: float = defaults.FORGE_BACKOFF_S,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        annotations_limit: int = defaults.CHECK_RUN_ANNOTATIONS_LIMIT,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self._token = token
        self._app = app
        self._policy = HttpPolicy(timeout_s, retries, backoff_s, sleep)
        self._clock = clock
        self._annotations_limit = annotations_limit
        # The installation token and when it stops being used; one fetch at a time.
        self._lock = threading.Lock()
        self._installation: tuple[str, float] | None = None

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
        """Set the commit status ``context`` of ``sha``; ``target_url`` "" links nowhere."""
        body: dict[str, Any] = {
            "state": state.value,
            "description": short_description(description),
            "context": context,
        }
        if target_url:
            body["target_url"] = target_url
        path = f"/repos/{owner_repo(repository)}/statuses/{quote_segment(sha)}"
        self._send("POST", path, body)

    def start_check_run(self, repository: str, sha: str, *, name: str, details_url: str) -> int:
        """Open an in-progress check run ``name`` on ``sha``; returns its id."""
        body: dict[str, Any] = {"name": name, "head_sha": sha, "status": "in_progress"}
        if details_url:
            body["details_url"] = details_url
        return self._check_run_id(self._send("POST", self._checks(repository), body))

    def finish_check_run(
        self,
        repository: str,
        sha: str,
        *,
        name: str,
        report: StatusReport,
        check_run_id: int | None = None,
    ) -> int:
        """Conclude the check run ``check_run_id`` (None: a new one) with ``report``.

        The first request sets the conclusion and the first 50 annotations, so the
        verdict shows even if a later one fails; each further request adds 50 more.
        Past ``annotations_limit``, failures are listed in the summary instead.
        """
        annotated, listed = split_annotations(report.annotations, self._annotations_limit)
        output = {
            "title": error_description(report.state, report.description) or report.state.value,
            "summary": summary_with_listed(
                report.summary_markdown or report.description or report.state.value, listed
            ),
        }
        batches = annotation_batches(annotated) or ((),)
        conclusion = CHECK_CONCLUSIONS[report.state]
        body: dict[str, Any] = {
            "name": name,
            "status": "completed" if conclusion else "in_progress",
            "output": {**output, "annotations": [annotation_fields(a) for a in batches[0]]},
        }
        if conclusion:
            body["conclusion"] = conclusion
        if report.target_url:
            body["details_url"] = report.target_url
        checks = self._checks(repository)
        if check_run_id is None:
            answer = self._send("POST", checks, {**body, "head_sha": sha})
            check_run_id = self._check_run_id(answer)
        else:
            self._send("PATCH", f"{checks}/{check_run_id}", body)
        for batch in batches[1:]:
            more = {**output, "annotations": [annotation_fields(a) for a in batch]}
            self._send("PATCH", f"{checks}/{check_run_id}", {"output": more})
        return check_run_id

    def _checks(self, repository: str) -> str:
        return f"/repos/{owner_repo(repository)}/check-runs"

    def _check_run_id(self, answer: Any) -> int:
        run_id = answer.get("id") if isinstance(answer, dict) else None
        if not isinstance(run_id, int) or isinstance(run_id, bool):
            raise ForgeError("GitHub created a check run but answered without its id")
        return run_id

    def _send(self, method: str, path: str, body: Mapping[str, Any] | None) -> Any:
        token = self._access_token()
        return self._request(method, path, body, token)

    def _request(self, method: str, path: str, body: Mapping[str, Any] | None, token: str) -> Any:
        headers = {
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": API_VERSION,
            "Authorization": f"Bearer {token}",
        }
        secrets = (token, self._token)
        return send_json(
            "GitHub",
            method,
            self.api_url + path,
            headers=headers,
            body=body,
            policy=self._policy,
            secrets=secrets,
        )

    def _access_token(self) -> str:
        if self._app is None:
            return self._token
        with self._lock:
            now_s = self._clock()
            if self._installation is None or now_s >= self._installation[1]:
                self._installation = self._fetch_installation_token(self._app, now_s)
            return self._installation[0]

    def _fetch_installation_token(self, app: GitHubApp, now_s: float) -> tuple[str, float]:
        """A new installation token and the time to stop using it."""
        signed = app_jwt(app, now_s)
        path = f"/app/installations/{quote_segment(app.installation_id)}/access_tokens"
        answer = self._request("POST", path, None, signed)
        token = answer.get("token") if isinstance(answer, dict) else None
        expires = answer.get("expires_at") if isinstance(answer, dict) else None
        if not isinstance(token, str) or not token or not isinstance(expires, str):
            raise ForgeError(f"GitHub answered {path} without a token and its expiry")
        try:
            # Python 3.10 reads no "Z"; GitHub writes UTC that way.
            expires_s = datetime.fromisoformat(expires.replace("Z", "+00:00")).timestamp()
        except ValueError:
            raise ForgeError(f"GitHub answered {path} with an unreadable expires_at") from None
        return token, expires_s - defaults.INSTALLATION_TOKEN_MARGIN_S


__all__ = ["API_VERSION", "CHECK_CONCLUSIONS", "GitHubClient", "app_jwt", "owner_repo"]
