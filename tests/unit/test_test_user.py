"""Who tests run as: the test_user setting resolved, and what a worker checks at start."""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from farm.core.errors import SettingsError
from farm.core.test_user import (
    TestUser,
    popen_identity,
    private_dir,
    resolve_test_user,
    user_env,
)
from farm.worker.test_user import chown_tree, prepare_worker_dirs, unreachable, worker_test_user

NOBODY = TestUser.from_entry(pwd.getpwnam("nobody"))
ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="changing owners takes root")


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A fresh folder everyone can enter, under /tmp (pytest's tmp_path is private)."""
    path = Path(tempfile.mkdtemp(prefix="farm-unit-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def umask() -> Iterator[None]:
    """Give the process its umask back after a test that sets it."""
    before = os.umask(0o022)
    os.umask(before)
    yield
    os.umask(before)


def test_a_root_worker_runs_tests_as_nobody_unless_told() -> None:
    assert resolve_test_user("", euid=0) == NOBODY
    assert NOBODY.name == "nobody" and NOBODY.uid != 0


def test_a_worker_that_is_not_root_keeps_its_own_user() -> None:
    assert resolve_test_user("", euid=1000) is None
    assert resolve_test_user(" ", euid=1000) is None


def test_self_keeps_the_workers_user_even_as_root() -> None:
    assert resolve_test_user("self", euid=0) is None
    assert resolve_test_user("self", euid=NOBODY.uid) is None


def test_a_user_is_named_by_name_or_uid() -> None:
    assert resolve_test_user("nobody", euid=0) == NOBODY
    assert resolve_test_user(str(NOBODY.uid), euid=0) == NOBODY
    assert resolve_test_user("root", euid=0) is None  # its own user: nothing to switch
    assert resolve_test_user("nobody", euid=NOBODY.uid) is None


def test_an_unknown_user_is_a_one_line_error() -> None:
    with pytest.raises(SettingsError, match="'no-such-farm-user' is not a user") as caught:
        resolve_test_user("no-such-farm-user", euid=0)
    assert "\n" not in str(caught.value)
    with pytest.raises(SettingsError, match="is not a user"):
        resolve_test_user("4294967299", euid=0)  # no such uid


def test_a_worker_that_is_not_root_cannot_switch() -> None:
    with pytest.raises(SettingsError, match="only a worker running as root"):
        resolve_test_user("nobody", euid=1000)


def test_a_password_on_the_command_line_is_refused_when_tests_switch_user() -> None:
    url = "redis://:hunter2@redis-host:6379/0"
    with pytest.raises(SettingsError, match="FARM_BROKER_URL") as caught:
        worker_test_user("", broker_flag=url, euid=0)
    assert "hunter2" not in str(caught.value)
    # Without a password, or without a switch, the command line is the user's choice.
    assert worker_test_user("", broker_flag="redis://redis-host:6379/0", euid=0) == NOBODY
    assert worker_test_user("self", broker_flag=url, euid=0) is None
    assert worker_test_user("", broker_flag=None, euid=0) == NOBODY


def test_a_child_as_the_test_user_gets_no_groups_and_a_home_of_its_own() -> None:
    assert popen_identity(None) == {}
    assert popen_identity(NOBODY) == {"user": NOBODY.uid, "group": NOBODY.gid, "extra_groups": []}
    # nobody's home does not exist: its private folder stands in.
    env = user_env(NOBODY, "/cache/tmp/farm-test-1")
    assert env == {
        "HOME": "/cache/tmp/farm-test-1",
        "USER": "nobody",
        "LOGNAME": "nobody",
        "TMPDIR": "/cache/tmp/farm-test-1",
    }


def test_a_usable_home_is_kept(open_dir: Path) -> None:
    me = os.geteuid()
    user = TestUser("dev", me, os.getegid(), str(open_dir))
    assert user_env(user, "/t")["HOME"] == str(open_dir)
    other = TestUser("dev", me + 1, os.getegid(), str(open_dir))  # not its own folder
    assert user_env(other, "/t")["HOME"] == "/t"


def test_unreachable_names_the_first_folder_the_user_cannot_enter(open_dir: Path) -> None:
    inner = open_dir / "a" / "b"
    inner.mkdir(parents=True)
    assert unreachable(inner, NOBODY) is None
    (open_dir / "a").chmod(0o700)
    assert unreachable(inner, NOBODY) == open_dir / "a"
    (open_dir / "a").chmod(0o710)  # the group may pass: nobody is not in it
    assert unreachable(inner, NOBODY) == open_dir / "a"
    owner = TestUser("owner", os.stat(open_dir).st_uid, NOBODY.gid, "/")
    assert unreachable(inner, owner) is None  # its owner may


@ROOT_ONLY
def test_the_worker_prepares_its_folders_for_the_test_user(open_dir: Path, umask: None) -> None:
    cache = open_dir / "cache"
    tmp = cache / "tmp" / "worker-1"
    tmp.mkdir(parents=True, mode=0o700)
    os.umask(0o077)
    prepare_worker_dirs(cache, tmp, NOBODY)
    assert os.umask(0o022) == 0o022  # what it unpacks, its tests can read

    def mode(path: Path) -> int:
        return stat.S_IMODE(path.stat().st_mode)

    assert mode(cache) == 0o755
    assert mode(cache / "locks") == mode(cache / "downloads") == 0o700
    assert mode(cache / "tmp") == mode(tmp) == 0o711


@ROOT_ONLY
def test_a_cache_the_test_user_cannot_reach_is_an_error_at_start(
    tmp_path: Path, umask: None
) -> None:
    blocked = unreachable(tmp_path, NOBODY)
    assert blocked is not None  # pytest's folders are private to root
    with pytest.raises(SettingsError, match=f"may not enter {blocked}") as caught:
        prepare_worker_dirs(tmp_path / "cache", None, NOBODY)
    assert "\n" not in str(caught.value)


@ROOT_ONLY
def test_private_folders_and_trees_change_hands(open_dir: Path) -> None:
    own = private_dir(NOBODY, prefix="farm-test-", parent=str(open_dir))
    info = os.stat(own)
    assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (
        NOBODY.uid,
        NOBODY.gid,
        0o700,
    )
    tree = open_dir / "tree"
    (tree / "pkg").mkdir(parents=True)
    (tree / "pkg" / "mod.py").write_text("")
    outside = open_dir / "outside"
    outside.write_text("")
    (tree / "link").symlink_to(outside)
    chown_tree(tree, NOBODY.uid, NOBODY.gid)
    assert {p.lstat().st_uid for p in (tree, tree / "pkg", tree / "pkg" / "mod.py")} == {NOBODY.uid}
    assert (tree / "link").lstat().st_uid == NOBODY.uid
    assert outside.stat().st_uid == os.geteuid()  # the link was not followed
