"""The server's configuration and the trigger request: what is accepted, what is one
clear error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from farm.core.errors import SettingsError, UsageError
from farm.core.server_config import ForgeKind, load_server_config, parse_server_config
from farm.core.trigger import TriggerRequest, TriggerSource, changes_queue

SHA = "a" * 40


def config(*repositories: dict[str, Any], **server: Any) -> dict[str, Any]:
    return {"server": server, "repository": list(repositories)}


def test_a_repository_is_named_by_its_url_and_its_forge_by_its_host() -> None:
    parsed = parse_server_config(
        config(
            {"url": "git@github.com:acme/shop.git"},
            {"url": "https://gitlab.example.com/group/sub/tools.git", "forge": "gitlab"},
            {"url": "https://gitlab.com/acme/lib"},
        ),
        {},
    )
    shop, tools, lib = parsed.repositories
    assert (shop.name, shop.forge, shop.api_url) == (
        "github.com/acme/shop",
        ForgeKind.GITHUB,
        "https://api.github.com",
    )
    assert (tools.name, tools.forge) == ("gitlab.example.com/group/sub/tools", ForgeKind.GITLAB)
    assert (lib.forge, lib.api_url) == (ForgeKind.GITLAB, "https://gitlab.com/api/v4")
    assert parsed.repository("github.com/acme/shop") is shop
    assert parsed.repository("github.com/acme/other") is None
    assert parsed.poll_interval_s == 0 and parsed.api_token == ""


def test_secrets_come_from_the_named_variables_and_never_show() -> None:
    env = {"HOOK": "hook-secret", "TOKEN": "forge-token", "API": "api-token"}
    parsed = parse_server_config(
        config(
            {"url": "https://github.com/acme/shop", "webhook_secret_env": "HOOK",
             "token_env": "TOKEN"},
            api_token_env="API",
        ),
        env,
    )  # fmt: skip
    (shop,) = parsed.repositories
    assert (shop.webhook_secret, shop.token, parsed.api_token) == (
        "hook-secret",
        "forge-token",
        "api-token",
    )
    assert shop.reports_status
    shown = repr(parsed)
    assert "hook-secret" not in shown and "forge-token" not in shown and "api-token" not in shown


def test_the_dashboard_secrets_come_from_their_variables_and_never_show() -> None:
    env = {"READ": "read-token", "SESSION": "s" * 32}
    parsed = parse_server_config(
        config(read_token_env="READ", session_secret_env="SESSION", secure_cookies=True), env
    )
    assert (parsed.read_token, parsed.session_secret, parsed.secure_cookies) == (
        "read-token",
        "s" * 32,
        True,
    )
    assert "read-token" not in repr(parsed) and "s" * 32 not in repr(parsed)
    default = parse_server_config(config(), {})
    assert (default.read_token, default.session_secret, default.secure_cookies) == ("", "", False)


@pytest.mark.parametrize(
    ("data", "env", "message"),
    [
        (config(read_token_env="MISSING"), {}, "read_token_env: the environment variable MISSING"),
        (config(session_secret_env="SHORT"), {"SHORT": "x" * 31}, "at least 32 characters"),
        (config(secure_cookies="yes"), {}, "secure_cookies must be true or false"),
    ],
)
def test_bad_dashboard_settings_are_one_settings_error(
    data: dict[str, Any], env: dict[str, str], message: str
) -> None:
    with pytest.raises(SettingsError, match=message):
        parse_server_config(data, env)


def test_a_github_app_needs_its_key_file_and_installation(tmp_path: Path) -> None:
    key = tmp_path / "app.pem"
    key.write_text("-----BEGIN PRIVATE KEY-----\n...\n")
    parsed = parse_server_config(
        config({"url": "https://github.com/a/b", "github_app_id": "1",
                "github_app_key_file": str(key), "github_installation_id": "2"}),
        {},
    )  # fmt: skip
    app = parsed.repositories[0].github_app
    assert app is not None and (app.app_id, app.installation_id) == ("1", "2")
    with pytest.raises(SettingsError, match="needs github_app_key_file"):
        parse_server_config(config({"url": "https://github.com/a/b", "github_app_id": "1"}), {})


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"servr": {}}, "unknown key 'servr'"),
        (config(port=1), r"\[server\]: unknown key 'port'"),
        (config({"url": "https://github.com/a/b", "secret": "x"}), "unknown key 'secret'"),
        (config({}), "url is required"),
        (config({"url": "https://github.com/a/b", "forge": "bitbucket"}), "github or gitlab"),
        (config({"url": "https://github.com/a/b"}, {"url": "git@github.com:a/b.git"}),
         "configured twice"),
        (config({"url": "https://github.com/a/b", "webhook_secret_env": "MISSING"}),
         "MISSING is not set"),
        (config({"url": "https://github.com/a/b", "trusted_authors": "alice"}),
         "must be a list of strings"),
        (config({"url": "https://github.com/a/b", "test_drafts": "yes"}), "true or false"),
        (config(poll_interval_s=-1), "poll_interval_s"),
        (config(max_body_bytes=10), "max_body_bytes"),
        ({"repository": {"url": "x"}}, r"\[\[repository\]\]"),
    ],
)  # fmt: skip
def test_bad_configuration_is_one_settings_error(data: dict[str, Any], message: str) -> None:
    with pytest.raises(SettingsError, match=message) as raised:
        parse_server_config(data, {})
    assert "\n" not in str(raised.value)


def test_a_file_that_is_not_toml_is_one_error(tmp_path: Path) -> None:
    path = tmp_path / "server.toml"
    path.write_text("[server\n")
    with pytest.raises(SettingsError, match="cannot read server configuration"):
        load_server_config(path, {})
    with pytest.raises(SettingsError, match="cannot read server configuration"):
        load_server_config(tmp_path / "missing.toml", {})


def test_a_trigger_request_travels_as_json() -> None:
    request = TriggerRequest("github.com/acme/shop", SHA, TriggerSource.GITHUB, branch="main",
                             pull_request="7", author="dev", delivery_id="d-1")  # fmt: skip
    assert TriggerRequest.from_json(request.to_json()) == request
    assert request.change.commit_sha == SHA and request.change.pull_request == "7"
    assert changes_queue("farm") == "farm.changes"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "JSON object"),
        ({"repository": "r", "commit_sha": "abc", "source": "github"}, "full commit sha"),
        ({"repository": "r", "commit_sha": SHA.upper(), "source": "github"}, "full commit sha"),
        ({"repository": "r", "commit_sha": SHA, "source": "svn"}, "unknown source"),
        ({"repository": "", "commit_sha": SHA, "source": "api"}, "must not be empty"),
        ({"repository": "r", "commit_sha": SHA, "source": "api", "branch": "a\nb"}, "one line"),
        ({"repository": "r", "commit_sha": SHA, "source": "api", "author": 3}, "string"),
    ],
)  # fmt: skip
def test_a_malformed_trigger_request_is_a_usage_error(data: object, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        TriggerRequest.from_json(data)


def test_a_server_without_its_extra_stops_in_one_line() -> None:
    from farm.cli.serve import SERVER_MODULES, require_server_extra

    require_server_extra()  # this environment has the extra
    absent = {"uvicorn", "jwt"}
    with pytest.raises(UsageError, match=r"server extra \(uvicorn, jwt missing\)") as raised:
        require_server_extra(lambda name: None if name in absent else object())
    assert "pip install 'pytest-farm[server]'" in str(raised.value)
    assert set(SERVER_MODULES) >= absent
