"""A fake GitHub and GitLab on loopback: a real HTTP server that records every request.

Usage::

    with FakeForge.start(token="t0ken") as forge:
        client = GitHubClient(forge.url, token="t0ken")
        ...
        assert forge.calls[0].path == "/repos/acme/shop/statuses/<sha>"

It answers, as the forges do (JSON bodies, the status codes they use):

* ``POST /repos/{owner}/{repo}/statuses/{sha}``: 201, a GitHub commit status;
* ``POST /app/installations/{id}/access_tokens``: 201 ``{token, expires_at}``, when the
  bearer is a JWT signed by ``app_public_key_pem`` (RS256, with iat, exp and iss; the
  JWT must not live past 10 minutes, as on GitHub); the token it hands out is then
  accepted like ``token``;
* ``POST /repos/{owner}/{repo}/check-runs``: 201 with a new ``id``;
  ``PATCH /repos/{owner}/{repo}/check-runs/{id}``: 200 (404 for an unknown id);
  more than 50 annotations in one request is 422, as on GitHub;
* ``POST /projects/{id}/statuses/{sha}``: 201, a GitLab commit status (``{id}`` stays
  as sent, percent-escapes and all).

GitHub requests need ``Authorization: Bearer <token>``, GitLab's ``PRIVATE-TOKEN``;
a wrong one is 401 ``{"message": "Bad credentials"}``. Anything else is 404.
:meth:`FakeForge.fail_next` makes the next requests fail with a status code.
:attr:`FakeForge.calls` lists every request, failed ones too, in the order received.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

GITHUB_STATES = frozenset({"pending", "success", "failure", "error"})
GITLAB_STATES = frozenset({"pending", "running", "success", "failed", "canceled", "skipped"})
CHECK_CONCLUSIONS = frozenset(
    {"action_required", "cancelled", "failure", "neutral", "success", "skipped", "timed_out"}
)

_ROUTES: tuple[tuple[str, re.Pattern[str], str], ...] = (
    ("POST", re.compile(r"^/repos/[^/]+/[^/]+/statuses/[0-9a-f]+$"), "github_status"),
    ("POST", re.compile(r"^/app/installations/(?P<key>[^/]+)/access_tokens$"), "access_token"),
    ("POST", re.compile(r"^/repos/[^/]+/[^/]+/check-runs$"), "create_check_run"),
    ("PATCH", re.compile(r"^/repos/[^/]+/[^/]+/check-runs/(?P<key>\d+)$"), "update_check_run"),
    ("POST", re.compile(r"^/projects/[^/]+/statuses/[0-9a-f]+$"), "gitlab_status"),
)


@dataclass(frozen=True)
class Call:
    """One request: ``headers`` with lower-case names, ``body`` the parsed JSON (None: none)."""

    method: str
    path: str
    headers: Mapping[str, str]
    body: Any


class FakeForge:
    """The server; make one with :meth:`start` and end it with :meth:`stop` (or ``with``)."""

    def __init__(
        self,
        *,
        token: str = "",
        app_public_key_pem: str = "",
        token_lifetime_s: float = 3600.0,
    ) -> None:
        self._tokens = {token} if token else set()
        self._public_key = app_public_key_pem
        self._token_lifetime_s = token_lifetime_s
        self._lock = threading.Lock()
        self._calls: list[Call] = []
        self._failures: list[int] = []
        self._check_runs: dict[int, dict[str, Any]] = {}
        self._issued = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @classmethod
    def start(
        cls, *, token: str = "", app_public_key_pem: str = "", token_lifetime_s: float = 3600.0
    ) -> FakeForge:
        """A running fake accepting ``token`` (and the installation tokens it issues)."""
        forge = cls(
            token=token, app_public_key_pem=app_public_key_pem, token_lifetime_s=token_lifetime_s
        )
        forge._thread.start()
        return forge

    @property
    def url(self) -> str:
        """The API's base URL, ``http://127.0.0.1:PORT``."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def calls(self) -> list[Call]:
        """Every request so far, in order (a copy)."""
        with self._lock:
            return list(self._calls)

    def fail_next(self, count: int, status: int = 500) -> None:
        """Answer the next ``count`` requests with ``status`` and a JSON message."""
        with self._lock:
            self._failures.extend([status] * count)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FakeForge:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # The forge's side: (status, JSON answer) for a request, under the lock.

    def _answer(self, call: Call) -> tuple[int, dict[str, Any]]:
        with self._lock:
            self._calls.append(call)
            if self._failures:
                return self._failures.pop(0), {"message": "fake forge failure"}
            for method, pattern, name in _ROUTES:
                match = pattern.match(call.path)
                if match and method == call.method:
                    if name != "access_token" and not self._authorised(name, call.headers):
                        return 401, {"message": "Bad credentials"}
                    answer: tuple[int, dict[str, Any]] = getattr(self, f"_{name}")(
                        call.body or {}, call.headers, **match.groupdict()
                    )
                    return answer
            return 404, {"message": "Not Found"}

    def _authorised(self, route: str, headers: Mapping[str, str]) -> bool:
        if route == "gitlab_status":
            return headers.get("private-token", "") in self._tokens
        scheme, _, token = headers.get("authorization", "").partition(" ")
        return scheme == "Bearer" and token in self._tokens

    def _github_status(self, body: dict[str, Any], headers: Mapping[str, str]) -> tuple[int, Any]:
        if body.get("state") not in GITHUB_STATES or not body.get("context"):
            return 422, {"message": "Validation Failed"}
        if len(body.get("description", "")) > 140:
            return 422, {"message": "description is too long (maximum is 140 characters)"}
        return 201, {"id": len(self._calls), **body}

    def _gitlab_status(self, body: dict[str, Any], headers: Mapping[str, str]) -> tuple[int, Any]:
        if body.get("state") not in GITLAB_STATES:
            return 400, {"error": "state does not have a valid value"}
        return 201, {"id": len(self._calls), "status": body["state"], "name": body.get("name")}

    def _access_token(
        self, body: dict[str, Any], headers: Mapping[str, str], key: str
    ) -> tuple[int, Any]:
        import jwt

        scheme, _, signed = headers.get("authorization", "").partition(" ")
        try:
            if scheme != "Bearer" or not self._public_key:
                raise jwt.InvalidTokenError("no JWT")
            claims = jwt.decode(
                signed,
                self._public_key,
                algorithms=["RS256"],
                options={"require": ["iat", "exp", "iss"]},
            )
            if claims["exp"] - claims["iat"] > 600 + 60:  # GitHub's limit, and the drift
                raise jwt.InvalidTokenError("lives too long")
        except jwt.InvalidTokenError:
            return 401, {"message": "A JSON web token could not be decoded"}
        self._issued += 1
        token = f"ghs_fake{self._issued}_{key}_{claims['iss']}"
        self._tokens.add(token)
        expires = datetime.fromtimestamp(time.time() + self._token_lifetime_s, timezone.utc)
        return 201, {"token": token, "expires_at": expires.strftime("%Y-%m-%dT%H:%M:%SZ")}

    def _create_check_run(
        self, body: dict[str, Any], headers: Mapping[str, str]
    ) -> tuple[int, Any]:
        if not body.get("name") or not body.get("head_sha"):
            return 422, {"message": "Validation Failed"}
        problem = _check_run_problem(body)
        if problem:
            return 422, {"message": problem}
        run_id = 1000 + len(self._check_runs)
        self._check_runs[run_id] = dict(body)
        return 201, {"id": run_id, **body}

    def _update_check_run(
        self, body: dict[str, Any], headers: Mapping[str, str], key: str
    ) -> tuple[int, Any]:
        if int(key) not in self._check_runs:
            return 404, {"message": "Not Found"}
        problem = _check_run_problem(body)
        if problem:
            return 422, {"message": problem}
        self._check_runs[int(key)].update(body)
        return 200, {"id": int(key), **self._check_runs[int(key)]}


def _check_run_problem(body: Mapping[str, Any]) -> str:
    """What GitHub would refuse in a check run's body, or ""."""
    status = body.get("status", "queued")
    if status not in ("queued", "in_progress", "completed"):
        return f"invalid status {status!r}"
    if status == "completed" and body.get("conclusion") not in CHECK_CONCLUSIONS:
        return "a completed check run needs a conclusion"
    output = body.get("output")
    if output is not None:
        if not output.get("title") or not output.get("summary"):
            return "output needs a title and a summary"
        if len(output.get("annotations", [])) > 50:
            return "at most 50 annotations per request"
    return ""


def _handler(forge: FakeForge) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = None
            headers = {name.lower(): value for name, value in self.headers.items()}
            status, answer = forge._answer(Call(self.command, self.path, headers, body))
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_POST = do_PATCH = do_GET = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass  # the tests read calls, not the server's log

    return Handler


__all__ = ["Call", "FakeForge"]
