"""What ``farm serve`` and its conductors know about the repositories they test.

One TOML file (``farm serve --config FILE``, or ``FARM_SERVER_CONFIG``)::

    [server]
    api_token_env = "FARM_API_TOKEN"       # bearer token of POST /api/changes
    poll_interval_s = 300                  # 0 (the default): no polling
    max_body_bytes = 5242880
    read_token_env = "FARM_READ_TOKEN"     # unset: the dashboard and /metrics are public
    session_secret_env = "FARM_SESSION_SECRET"  # signs sign-in cookies; unset: per process
    secure_cookies = true                  # behind https: cookies only over https

    [[repository]]
    url = "https://github.com/acme/shop.git"   # what the conductor clones
    forge = "github"                           # github or gitlab
    webhook_secret_env = "SHOP_WEBHOOK_SECRET"
    token_env = "SHOP_TOKEN"                   # fetching and statuses
    trusted_authors = ["alice"]
    trust_label = "safe to test"

Secrets are never in the file: it names the environment variables holding them,
read when the configuration is loaded, so the file can be committed and mounted
where anyone may read it. A missing variable is an error at start, not at the
first webhook.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from farm.core import defaults
from farm.core.errors import SettingsError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]

SERVER_CONFIG_ENV = "FARM_SERVER_CONFIG"


class ForgeKind(str, Enum):
    GITHUB = "github"
    GITLAB = "gitlab"


DEFAULT_API_URLS = {
    ForgeKind.GITHUB: "https://api.github.com",
    ForgeKind.GITLAB: "https://gitlab.com/api/v4",
}


@dataclass(frozen=True)
class GitHubApp:
    """A GitHub App's credentials: with them the verdict is a check run."""

    app_id: str
    private_key_pem: str = field(repr=False)
    installation_id: str


@dataclass(frozen=True)
class RepositoryConfig:
    """One repository the farm tests: where to fetch it and what to tell its forge."""

    name: str  # host/path, as farm.run.change.repository_name gives it
    url: str  # clone URL (https, ssh, or a path): never from a webhook
    forge: ForgeKind
    api_url: str
    webhook_secret: str = field(default="", repr=False)
    token: str = field(default="", repr=False)  # fetching over https and statuses
    github_app: GitHubApp | None = field(default=None, repr=False)
    statuses: bool = True  # send the verdict back when a token or an app is set
    status_context: str = defaults.STATUS_CONTEXT
    trusted_authors: tuple[str, ...] = ()  # fork pull requests of these run
    trust_label: str = ""  # ... and of any pull request a maintainer labels so
    test_drafts: bool = False
    paths: tuple[str, ...] = ()  # what `farm run` gets as PATHS
    pytest_args: tuple[str, ...] = ()

    @property
    def reports_status(self) -> bool:
        return self.statuses and bool(self.token or self.github_app)


@dataclass(frozen=True)
class ServerConfig:
    repositories: tuple[RepositoryConfig, ...] = ()
    api_token: str = field(default="", repr=False)  # "" leaves POST /api/changes closed
    poll_interval_s: float = 0.0  # 0: no polling
    max_body_bytes: int = defaults.WEBHOOK_MAX_BODY_BYTES
    read_token: str = field(default="", repr=False)  # "" leaves reading public
    session_secret: str = field(default="", repr=False)  # "": a random key per process
    secure_cookies: bool = False  # the session cookie is sent over https only

    def repository(self, name: str) -> RepositoryConfig | None:
        for repository in self.repositories:
            if repository.name == name:
                return repository
        return None


def load_server_config(path: Path, env: Mapping[str, str] = os.environ) -> ServerConfig:
    """Read and check the configuration at ``path``; any problem is one SettingsError."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise SettingsError(f"cannot read server configuration {path}: {e}") from None
    return parse_server_config(data, env, where=str(path))


def parse_server_config(
    data: Mapping[str, Any], env: Mapping[str, str], *, where: str = "server configuration"
) -> ServerConfig:
    _only(data, {"server", "repository"}, where)
    server = _table(data.get("server", {}), f"{where}: [server]")
    _only(server, _SERVER_KEYS, f"{where}: [server]")
    items = data.get("repository", [])
    if not isinstance(items, list):
        raise SettingsError(f"{where}: repository must be an array of tables ([[repository]])")
    repositories = tuple(
        _repository(
            _table(item, f"{where}: repository {i + 1}"), env, f"{where}: repository {i + 1}"
        )
        for i, item in enumerate(items)
    )
    names = [r.name for r in repositories]
    for name in names:
        if names.count(name) > 1:
            raise SettingsError(f"{where}: repository {name!r} is configured twice")
    poll = server.get("poll_interval_s", 0)
    if isinstance(poll, bool) or not isinstance(poll, int | float) or poll < 0:
        raise SettingsError(f"{where}: poll_interval_s must be a number of seconds, 0 for none")
    limit = server.get("max_body_bytes", defaults.WEBHOOK_MAX_BODY_BYTES)
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1024:
        raise SettingsError(f"{where}: max_body_bytes must be a whole number of at least 1024")
    secrets = {
        key: _secret(server[key], env, f"{where}: {key}") if server.get(key, "") else ""
        for key in ("api_token_env", "read_token_env", "session_secret_env")
    }
    if secrets["session_secret_env"] and len(secrets["session_secret_env"]) < 32:
        # A short key signs cookies anyone could forge by guessing it.
        raise SettingsError(f"{where}: session_secret_env must hold at least 32 characters")
    return ServerConfig(
        repositories,
        secrets["api_token_env"],
        float(poll),
        limit,
        read_token=secrets["read_token_env"],
        session_secret=secrets["session_secret_env"],
        secure_cookies=_bool(server, "secure_cookies", False, f"{where}: [server]"),
    )


_SERVER_KEYS = {
    "api_token_env", "poll_interval_s", "max_body_bytes", "read_token_env",
    "session_secret_env", "secure_cookies",
}  # fmt: skip


_REPOSITORY_KEYS = {
    "name", "url", "forge", "api_url", "webhook_secret_env", "token_env", "statuses",
    "status_context", "github_app_id", "github_app_key_file", "github_installation_id",
    "trusted_authors", "trust_label", "test_drafts", "paths", "pytest_args",
}  # fmt: skip


def _repository(item: Mapping[str, Any], env: Mapping[str, str], where: str) -> RepositoryConfig:
    from farm.core.repository_names import repository_name

    _only(item, _REPOSITORY_KEYS, where)
    url = _string(item, "url", where)
    if not url:
        raise SettingsError(f"{where}: url is required")
    name = repository_name(_string(item, "name", where) or url)
    where = f"{where} ({name})"
    forge_text = _string(item, "forge", where) or (
        "gitlab" if name.startswith("gitlab.") else "github"
    )
    try:
        forge = ForgeKind(forge_text)
    except ValueError:
        raise SettingsError(
            f"{where}: forge must be github or gitlab, got {forge_text!r}"
        ) from None
    app = None
    app_id = _string(item, "github_app_id", where)
    if app_id:
        key_file = _string(item, "github_app_key_file", where)
        installation = _string(item, "github_installation_id", where)
        if not key_file or not installation:
            raise SettingsError(
                f"{where}: github_app_id needs github_app_key_file and github_installation_id"
            )
        try:
            pem = Path(key_file).expanduser().read_text(encoding="utf-8")
        except OSError as e:
            raise SettingsError(f"{where}: cannot read github_app_key_file: {e}") from None
        app = GitHubApp(app_id, pem, installation)
    secret_env = _string(item, "webhook_secret_env", where)
    token_env = _string(item, "token_env", where)
    return RepositoryConfig(
        name=name,
        url=url,
        forge=forge,
        api_url=(_string(item, "api_url", where) or DEFAULT_API_URLS[forge]).rstrip("/"),
        webhook_secret=_secret(secret_env, env, f"{where}: webhook_secret_env")
        if secret_env
        else "",
        token=_secret(token_env, env, f"{where}: token_env") if token_env else "",
        github_app=app,
        statuses=_bool(item, "statuses", True, where),
        status_context=_string(item, "status_context", where) or defaults.STATUS_CONTEXT,
        trusted_authors=_strings(item, "trusted_authors", where),
        trust_label=_string(item, "trust_label", where),
        test_drafts=_bool(item, "test_drafts", False, where),
        paths=_strings(item, "paths", where),
        pytest_args=_strings(item, "pytest_args", where),
    )


def _table(value: object, where: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise SettingsError(f"{where} must be a table")
    return value


def _only(table: Mapping[str, Any], allowed: set[str], where: str) -> None:
    for key in table:
        if key not in allowed:
            raise SettingsError(f"{where}: unknown key {key!r}")


def _string(table: Mapping[str, Any], key: str, where: str) -> str:
    value = table.get(key, "")
    if not isinstance(value, str):
        raise SettingsError(f"{where}: {key} must be a string")
    return value.strip()


def _strings(table: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = table.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise SettingsError(f"{where}: {key} must be a list of strings")
    return tuple(value)


def _bool(table: Mapping[str, Any], key: str, default: bool, where: str) -> bool:
    value = table.get(key, default)
    if not isinstance(value, bool):
        raise SettingsError(f"{where}: {key} must be true or false")
    return value


def _secret(variable: object, env: Mapping[str, str], where: str) -> str:
    if not isinstance(variable, str) or not variable:
        raise SettingsError(f"{where} must name an environment variable")
    value = env.get(variable, "")
    if not value:
        raise SettingsError(f"{where}: the environment variable {variable} is not set")
    return value


__all__ = [
    "SERVER_CONFIG_ENV",
    "ForgeKind",
    "GitHubApp",
    "RepositoryConfig",
    "ServerConfig",
    "load_server_config",
    "parse_server_config",
]
