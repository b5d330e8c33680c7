"""Who may read the dashboard and who may change what the farm does.

Two secrets of the server's configuration decide it: the API token
(``api_token_env``) lets its holder change state (quarantine, re-runs, triggers);
the read token (``read_token_env``), when set, is what reading needs, and the API
token reads too. Without a read token, reading is public. Webhooks keep their own
signatures and are not routed through here.

A request shows a token as ``Authorization: Bearer <token>`` (scripts, Prometheus),
or belongs to a signed-in session (people): ``POST /signin`` takes a token and a
name from a form and sets a signed cookie (Starlette's session, signed with
itsdangerous by ``session_secret_env``; HttpOnly, SameSite=Lax, Secure when
``secure_cookies``). Everyone shares the tokens, so the name is what the person
says it is: it labels their quarantine events, it proves nothing. A session also
holds a random CSRF token; every state-changing request of a session must send it
back, as the ``X-CSRF-Token`` header or the ``csrf_token`` field of a form, and it
is compared in constant time. A bearer token needs no CSRF token: no browser sends
it by itself.

The dependencies :func:`require_reader` and :func:`require_writer` read the policy
that :func:`install_auth` puts on the app; both return the actor's name.
"""

from __future__ import annotations

import html
import secrets
from dataclasses import dataclass
from enum import Enum
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, FastAPI
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request

from farm.core import defaults
from farm.core.server_config import ServerConfig
from farm.core.signatures import bearer_token, token_ok
from farm.server.answers import Refused
from farm.server.params import declared_body

SESSION_COOKIE = "farm_session"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
TOKEN_ACTOR = "api-token"  # the actor of a request that shows the API token
_NAME_LIMIT = 64
_FORM_LIMIT_BYTES = 16 * 1024
FORM_TYPE = "application/x-www-form-urlencoded"


def form_body(fields: dict[str, Any], required: list[str]) -> dict[str, Any]:
    """The OpenAPI declaration of a urlencoded form a route reads by hand."""
    schema = {"type": "object", "properties": fields, "required": required}
    return declared_body(FORM_TYPE, schema)


# What the sign-in forms send; read by hand (form_fields), declared for the document.
_SIGNIN_FORM = form_body(
    {
        "token": {"type": "string", "description": "the API token or the read token"},
        "name": {"type": "string", "description": f"who you are (first {_NAME_LIMIT} chars)"},
    },
    ["token"],
)
_SIGNOUT_FORM = form_body(
    {CSRF_FIELD: {"type": "string", "description": "the session's CSRF token"}}, []
)


class Role(str, Enum):
    READER = "reader"
    WRITER = "writer"


@dataclass(frozen=True)
class AuthPolicy:
    api_token: str
    read_token: str

    def role_of(self, token: str) -> Role | None:
        if token_ok(self.api_token, token):
            return Role.WRITER
        if token_ok(self.read_token, token):
            return Role.READER
        return None


def install_auth(app: FastAPI, config: ServerConfig) -> None:
    """Sessions, the sign-in routes and the policy the dependencies read."""
    app.state.auth = AuthPolicy(config.api_token, config.read_token)
    app.add_middleware(
        SessionMiddleware,
        # Without a configured key, sessions last as long as this process.
        secret_key=config.session_secret or secrets.token_urlsafe(32),
        session_cookie=SESSION_COOKIE,
        max_age=int(defaults.SESSION_MAX_AGE_S),
        same_site="lax",
        https_only=config.secure_cookies,
    )
    app.include_router(_routes())


def require_reader(request: Request) -> str:
    """The reader's name; :class:`Refused` (401) when reading needs a token not shown."""
    policy = _policy(request)
    given = bearer_token(request.headers.get("authorization"))
    if given is not None:
        role = policy.role_of(given)
        if role is None:
            raise Refused(401, "the bearer token is not valid")
        return TOKEN_ACTOR if role is Role.WRITER else "read-token"
    if _session_role(request) is not None:
        return str(request.session.get("name", ""))
    if policy.read_token:
        raise Refused(401, "reading needs a bearer token or a signed-in session")
    return "anonymous"


async def require_writer(request: Request) -> str:
    """The actor's name, for a bearer API token or a signed-in writer whose request
    carries the session's CSRF token; else :class:`Refused` (401 or 403)."""
    policy = _policy(request)
    given = bearer_token(request.headers.get("authorization"))
    if given is not None:
        if not policy.api_token:
            raise Refused(403, "changes are closed: the server has no api_token_env")
        if not token_ok(policy.api_token, given):
            raise Refused(401, "the bearer token is not the API token")
        return TOKEN_ACTOR
    role = _session_role(request)
    if role is None:
        raise Refused(401, "sign in or show the API token as a bearer token")
    if role is not Role.WRITER:
        raise Refused(403, "signed in to read only: sign in with the API token")
    await _check_csrf(request)
    return str(request.session.get("name", ""))


def writer_csrf(request: Request) -> str:
    """The session's CSRF token, for a page's forms, if a writer is signed in; else ""
    (the page then offers no form that changes state)."""
    if "session" not in request.scope:  # no session middleware: nobody signs in
        return ""
    if request.session.get("role") != Role.WRITER.value:
        return ""
    return str(request.session.get("csrf", ""))


def _policy(request: Request) -> AuthPolicy:
    policy: AuthPolicy = request.app.state.auth
    return policy


def _session_role(request: Request) -> Role | None:
    try:
        return Role(request.session.get("role", ""))
    except ValueError:
        return None


async def _check_csrf(request: Request) -> None:
    expected = str(request.session.get("csrf", ""))
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and _is_form(request):
        sent = (await form_fields(request)).get(CSRF_FIELD)
    # Hashed first by token_ok, so the comparison takes the same time whatever was sent.
    if not expected or not token_ok(expected, sent):
        raise Refused(403, f"the {CSRF_HEADER} header or {CSRF_FIELD} field is missing or wrong")


def _is_form(request: Request) -> bool:
    return request.headers.get("content-type", "").split(";")[0].strip() == FORM_TYPE


async def form_fields(request: Request) -> dict[str, str]:
    """A small urlencoded form's fields (the first value of each); the body stays
    readable by the route (Starlette keeps it)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > _FORM_LIMIT_BYTES:
        raise Refused(413, f"a form over {_FORM_LIMIT_BYTES} bytes")
    body = await request.body()
    if len(body) > _FORM_LIMIT_BYTES:
        raise Refused(413, f"a form over {_FORM_LIMIT_BYTES} bytes")
    try:
        fields = parse_qs(body.decode("utf-8"), keep_blank_values=True)
    except (UnicodeDecodeError, ValueError):
        raise Refused(400, "the form is not UTF-8 urlencoded") from None
    return {name: values[0] for name, values in fields.items()}


def _routes() -> APIRouter:
    router = APIRouter()

    @router.get("/signin", response_class=HTMLResponse)
    def signin_page(request: Request) -> HTMLResponse:
        return _page(request)

    @router.post("/signin", response_class=HTMLResponse, openapi_extra=_SIGNIN_FORM)
    async def signin(request: Request) -> Response:
        form = await form_fields(request) if _is_form(request) else {}
        role = _policy(request).role_of(form.get("token", ""))
        if role is None:
            return _page(request, problem="That token is not valid.", status_code=401)
        name = " ".join(form.get("name", "").split())[:_NAME_LIMIT] or "web"
        request.session.clear()
        request.session.update(role=role.value, name=name, csrf=secrets.token_urlsafe(32))
        return RedirectResponse("/signin", status_code=303)

    @router.post("/signout", response_class=HTMLResponse, openapi_extra=_SIGNOUT_FORM)
    async def signout(request: Request) -> Response:
        if _session_role(request) is not None:
            await _check_csrf(request)
        request.session.clear()
        return RedirectResponse("/signin", status_code=303)

    @router.get("/api/session")
    def session(request: Request) -> JSONResponse:
        """Who this session is, and the CSRF token its page scripts send back."""
        role = _session_role(request)
        if role is None:
            return JSONResponse({"signed_in": False})
        return JSONResponse(
            {
                "signed_in": True,
                "name": request.session.get("name", ""),
                "role": role.value,
                "csrf_token": request.session.get("csrf", ""),
            }
        )

    return router


def _page(request: Request, *, problem: str = "", status_code: int = 200) -> HTMLResponse:
    role = _session_role(request)
    if role is not None:
        name = html.escape(str(request.session.get("name", "")))
        csrf = html.escape(str(request.session.get("csrf", "")))
        body = (
            f'<p id="signed-in">Signed in as <b>{name}</b> ({role.value}).</p>'
            f'<form method="post" action="/signout">'
            f'<input type="hidden" name="{CSRF_FIELD}" value="{csrf}">'
            f'<button type="submit">Sign out</button></form>'
        )
    else:
        shown = f'<p id="problem">{html.escape(problem)}</p>' if problem else ""
        body = (
            f"{shown}"
            '<form method="post" action="/signin">'
            '<label>Name <input name="name" autocomplete="username"></label> '
            '<label>Token <input name="token" type="password" autocomplete="current-password">'
            '</label> <button type="submit">Sign in</button></form>'
        )
    page = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        "<title>farm: sign in</title></head>"
        f"<body><h1>farm</h1>{body}</body></html>"
    )
    return HTMLResponse(page, status_code=status_code)


__all__ = [
    "CSRF_FIELD",
    "CSRF_HEADER",
    "FORM_TYPE",
    "SESSION_COOKIE",
    "TOKEN_ACTOR",
    "AuthPolicy",
    "Role",
    "form_body",
    "form_fields",
    "install_auth",
    "require_reader",
    "require_writer",
    "writer_csrf",
]
