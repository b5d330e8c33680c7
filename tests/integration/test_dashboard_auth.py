"""Who may read and who may change state: bearer tokens, signed-in sessions and
their CSRF token, through the real app and its real session middleware."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import Depends
from fastapi.testclient import TestClient

from farm.core.server_config import ServerConfig
from farm.server.app import ServerParts, create_app
from farm.server.auth import SESSION_COOKIE, TOKEN_ACTOR, require_reader, require_writer
from farm.store import ResultStore

API = "api-token-" + "a" * 20
READ = "read-token-" + "b" * 20


def client_for(store: ResultStore, config: ServerConfig) -> TestClient:
    app = create_app(ServerParts(config, store.deliveries, lambda request: None))

    # Stand-ins for the dashboard's own routes: one that changes state, one that reads.
    @app.post("/test/change")
    def change(actor: str = Depends(require_writer)) -> dict[str, str]:
        return {"actor": actor}

    @app.get("/test/read")
    def read(reader: str = Depends(require_reader)) -> dict[str, str]:
        return {"reader": reader}

    return TestClient(app)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ResultStore]:
    with ResultStore.open(f"sqlite:///{tmp_path / 'farm.db'}") as opened:
        yield opened


def sign_in(client: TestClient, token: str, name: str = "alice") -> str:
    """Signs in through the form; the session's CSRF token."""
    page = client.post("/signin", data={"token": token, "name": name}, follow_redirects=False)
    assert page.status_code == 303
    session = client.get("/api/session").json()
    assert session["signed_in"]
    csrf: str = session["csrf_token"]
    return csrf


def test_a_change_needs_the_api_token_or_a_session_with_its_csrf_token(
    store: ResultStore,
) -> None:
    client = client_for(store, ServerConfig(api_token=API))
    assert client.post("/test/change").status_code == 401
    assert client.post("/test/change", headers={"Authorization": "Bearer wrong"}).status_code == 401
    answer = client.post("/test/change", headers={"Authorization": f"Bearer {API}"})
    assert answer.status_code == 200 and answer.json() == {"actor": TOKEN_ACTOR}

    csrf = sign_in(client, API)
    assert client.post("/test/change").status_code == 403  # the cookie alone is not enough
    wrong = client.post("/test/change", headers={"X-CSRF-Token": csrf[:-1] + "x"})
    assert wrong.status_code == 403
    by_header = client.post("/test/change", headers={"X-CSRF-Token": csrf})
    assert by_header.status_code == 200 and by_header.json() == {"actor": "alice"}
    by_form = client.post("/test/change", data={"csrf_token": csrf})
    assert by_form.status_code == 200 and by_form.json() == {"actor": "alice"}
    assert client.post("/test/change", data={"csrf_token": "x"}).status_code == 403

    # Signing out needs the CSRF token too, and ends the session.
    assert client.post("/signout", follow_redirects=False).status_code == 403
    out = client.post("/signout", data={"csrf_token": csrf}, follow_redirects=False)
    assert out.status_code == 303
    assert client.post("/test/change", headers={"X-CSRF-Token": csrf}).status_code == 401


def test_a_wrong_token_does_not_sign_in_and_a_closed_server_takes_no_bearer_change(
    store: ResultStore,
) -> None:
    client = client_for(store, ServerConfig(api_token=API))
    refused = client.post("/signin", data={"token": "guess", "name": "mallory"})
    assert refused.status_code == 401 and "not valid" in refused.text
    assert client.get("/api/session").json() == {"signed_in": False}
    closed = client_for(store, ServerConfig())
    assert closed.post("/test/change", headers={"Authorization": "Bearer x"}).status_code == 403
    assert closed.post("/signin", data={"token": ""}).status_code == 401


def test_reading_is_public_unless_a_read_token_is_set(store: ResultStore) -> None:
    public = client_for(store, ServerConfig(api_token=API))
    assert public.get("/test/read").json() == {"reader": "anonymous"}

    client = client_for(store, ServerConfig(api_token=API, read_token=READ))
    assert client.get("/test/read").status_code == 401
    assert client.get("/test/read", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert client.get("/test/read", headers={"Authorization": f"Bearer {READ}"}).status_code == 200
    assert client.get("/test/read", headers={"Authorization": f"Bearer {API}"}).status_code == 200
    assert client.get("/api/health").status_code == 200  # probes need no token

    csrf = sign_in(client, READ, name="bob")
    assert client.get("/test/read").json() == {"reader": "bob"}
    # A reader's session changes nothing, even with its CSRF token.
    assert client.post("/test/change", headers={"X-CSRF-Token": csrf}).status_code == 403


@pytest.mark.parametrize("secure", [False, True])
def test_the_session_cookie_is_signed_httponly_and_lax(store: ResultStore, secure: bool) -> None:
    config = ServerConfig(api_token=API, session_secret="k" * 32, secure_cookies=secure)
    client = client_for(store, config)
    answer = client.post("/signin", data={"token": API, "name": "alice"}, follow_redirects=False)
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=")
    flags = {part.strip().lower() for part in cookie.split(";")[1:]}
    assert "httponly" in flags and "samesite=lax" in flags
    assert ("secure" in flags) is secure
    assert API not in cookie  # the session holds a role, never the token

    # A cookie signed with another key is no session.
    other = client_for(store, ServerConfig(api_token=API, session_secret="o" * 32))
    value = cookie.split(";")[0].split("=", 1)[1]
    other.cookies.set(SESSION_COOKIE, value)
    assert other.get("/api/session").json() == {"signed_in": False}
    client.cookies.set(SESSION_COOKIE, value)
    assert client.get("/api/session").json()["signed_in"]
