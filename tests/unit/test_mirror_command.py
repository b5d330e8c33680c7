"""How farm.run.mirror hands git a repository URL and its credentials, without git."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from farm.core.errors import UsageError
from farm.run.git_remote import commit_sha, git_command, parse_remote
from farm.run.mirror import Mirrors


def basic(pair: str) -> str:
    return "Authorization: Basic " + base64.b64encode(pair.encode()).decode()


def config_of(env: dict[str, str]) -> dict[str, str]:
    """The configuration ``env`` gives git through GIT_CONFIG_COUNT."""
    return {
        env[f"GIT_CONFIG_KEY_{i}"]: env[f"GIT_CONFIG_VALUE_{i}"]
        for i in range(int(env["GIT_CONFIG_COUNT"]))
    }


def test_credentials_in_an_https_url_are_taken_out_of_it() -> None:
    remote = parse_remote("https://bot:p%40ss@github.com/org/shop.git")
    assert remote.url == "https://github.com/org/shop.git"
    assert remote.name == "github.com/org/shop"
    assert remote.origin == "https://github.com/"
    assert remote.header() == basic("bot:p@ss")
    assert "p@ss" not in repr(remote)


def test_a_token_goes_with_the_user_name_its_forge_expects() -> None:
    github = parse_remote("https://github.com/org/shop", token="ghs_1")
    assert github.header() == basic("x-access-token:ghs_1")
    gitlab = parse_remote("https://gitlab.example.com:8443/group/shop.git", token="glpat")
    assert gitlab.header() == basic("oauth2:glpat")
    assert gitlab.origin == "https://gitlab.example.com:8443/"
    named = parse_remote("https://git.example.com/shop", token="t", token_user="ci")
    assert named.header() == basic("ci:t")
    # The token wins over credentials in the URL, which still leave it.
    both = parse_remote("https://old:stale@github.com/org/shop", token="new")
    assert (both.url, both.header()) == ("https://github.com/org/shop", basic("x-access-token:new"))


def test_plain_http_carries_credentials_to_loopback_only() -> None:
    assert parse_remote("http://127.0.0.1:9000/shop.git", token="t").header()
    assert parse_remote("http://localhost/shop.git", token="t").header()
    assert parse_remote("http://git.example.com/shop.git").header() == ""
    with pytest.raises(UsageError, match=r"^refusing to send credentials for git\.example"):
        parse_remote("http://git.example.com/shop.git", token="t")


def test_ssh_and_local_remotes_take_no_token(tmp_path: Path) -> None:
    ssh = parse_remote("git@github.com:org/shop.git", token="t")
    assert (ssh.url, ssh.name, ssh.local, ssh.header()) == (
        "git@github.com:org/shop.git", "github.com/org/shop", False, ""
    )  # fmt: skip
    assert parse_remote("ssh://git@host:22/shop.git", token="t").header() == ""
    local = parse_remote(str(tmp_path / "a" / ".." / "shop.git"), token="t")
    assert (local.url, local.local, local.header()) == (str(tmp_path / "shop.git"), True, "")
    assert parse_remote("file:///srv/shop.git").local


@pytest.mark.parametrize(
    "url",
    ["", "  ", "-upload-pack=touch x", "ext::sh -c touch% x", "fd::3", "https://h/a b",
     "https://h/a\nb", "https://:80/x", "https://host:port/x"],
)  # fmt: skip
def test_what_is_not_a_repository_url(url: str) -> None:
    with pytest.raises(UsageError, match="is not a repository URL"):
        parse_remote(url)


@pytest.mark.parametrize(
    "url",
    ["https://bot:hunter2@host:port/x", "https://hunter2@host:port/x",
     "https://bot:hunter2@/x", "https://h/a b?token=hunter2"],
)  # fmt: skip
def test_messages_about_a_bad_url_show_no_credentials(url: str) -> None:
    with pytest.raises(UsageError, match="is not a repository URL") as raised:
        parse_remote(url)
    assert "hunter2" not in str(raised.value)


def test_a_query_does_not_reach_git() -> None:
    remote = parse_remote("https://gitlab.example.com/shop.git?private_token=hunter2")
    assert remote.url == "https://gitlab.example.com/shop.git"


def test_hide_masks_every_form_of_the_credentials() -> None:
    remote = parse_remote("https://ghp_TOKEN@github.com/org/shop")
    encoded = remote.header().rpartition(" ")[2]
    said = f"fatal: ghp_TOKEN was refused ({encoded})"
    assert remote.hide(said) == "fatal: *** was refused (***)"


def test_git_runs_with_credentials_in_its_environment_only() -> None:
    remote = parse_remote("https://github.com/org/shop.git", token="ghs_secret")
    environ = {"PATH": "/bin", "HOME": "/home/ci", "GIT_DIR": "/elsewhere", "GIT_ASKPASS": "x"}
    argv, env = git_command(["fetch", "origin", "ab" * 20], remote, environ)
    assert argv == ["git", "fetch", "origin", "ab" * 20]
    assert not any("ghs_secret" in arg or "Authorization" in arg for arg in argv)
    assert {k: v for k, v in env.items() if not k.startswith("GIT_CONFIG_")} == {
        "PATH": "/bin",
        "HOME": "/home/ci",
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_PROTOCOL_FROM_USER": "0",
        "GIT_LFS_SKIP_SMUDGE": "1",
        "LC_ALL": "C",
    }
    assert config_of(env) == {
        "credential.helper": "",
        "core.hooksPath": "/dev/null",
        "http.https://github.com/.extraHeader": basic("x-access-token:ghs_secret"),
    }
    assert environ["GIT_DIR"] == "/elsewhere"  # the caller's mapping is left alone


def test_local_repositories_and_mirrors_may_use_the_file_protocol(tmp_path: Path) -> None:
    for remote in (parse_remote(str(tmp_path)), None):
        _, env = git_command(["clone"], remote, {})
        assert config_of(env)["protocol.file.allow"] == "always"
    _, env = git_command(["fetch"], parse_remote("https://github.com/org/shop"), {})
    assert "protocol.file.allow" not in config_of(env)
    assert not any(key.endswith("extraHeader") for key in config_of(env))


def test_commit_shas_are_full_hex() -> None:
    assert commit_sha(" " + "AB" * 20 + "\n") == "ab" * 20
    assert commit_sha("c" * 64) == "c" * 64
    for bad in ("abc1234", "g" * 40, "-" + "a" * 39, "a" * 41, "HEAD", ""):
        with pytest.raises(UsageError, match="is not a full commit sha"):
            commit_sha(bad)


def test_a_bad_sha_is_refused_before_git_or_the_disk(tmp_path: Path) -> None:
    mirrors = Mirrors(tmp_path / "cache", environ={"PATH": ""})  # no git to be found
    with pytest.raises(UsageError, match="is not a full commit sha"):
        mirrors.checkout("https://github.com/org/shop", "--upload-pack=x", dest_parent=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_one_mirror_per_repository_named_without_the_url(tmp_path: Path) -> None:
    mirrors = Mirrors(tmp_path)
    path = mirrors.mirror_path("https://github.com/org/shop.git")
    assert path.parent == tmp_path / "mirrors"
    assert len(path.name) == 16 and int(path.name, 16) >= 0
    assert mirrors.mirror_path("https://bot:t@github.com/org/shop.git") == path
    assert mirrors.mirror_path("https://github.com/org/other.git") != path
