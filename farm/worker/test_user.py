"""A worker whose tests run as another user: its checks at start and its folders.

A worker running as root starts its test processes (and setup commands) as a
:class:`~farm.core.test_user.TestUser`, ``nobody`` unless told otherwise, so that
test code cannot read the worker's environment under ``/proc``, where the broker
URL is. What that user must reach is made reachable, what it must not stays the
worker's:

- the cache folder is ``0755`` and must be reachable from ``/``: a folder on the
  way the test user cannot enter is an error at start, not a failure of every shard;
- snapshots are unpacked ``0755``/``0644`` (the worker's umask is set to ``022``),
  owned by the worker: tests read their tree but cannot change it for later runs;
- ``locks`` and ``downloads`` are the worker's alone (``0700``); its temporary folder
  (``<cache>/tmp/worker-PID``, where Celery's pool keeps its files) can be entered
  but not listed (``0711``), so a test process reaches the folder made for it there
  (its ``TMPDIR``, its coverage data), owned by the test user and removed with it.

The broker URL is never written to a file. A password on the worker's command
line, which every local user can read in ``/proc/<pid>/cmdline``, is refused.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from farm.core.errors import SettingsError
from farm.core.test_user import TestUser, resolve_test_user
from farm.core.urls import mask_url

_SHARED = 0o755  # folders the test user reads and lists
_PASSAGE = 0o711  # folders it may only pass through, to a folder made for it
_PRIVATE = 0o700
_WORKER_ONLY = ("locks", "downloads")


def worker_test_user(setting: str, *, broker_flag: str | None, euid: int) -> TestUser | None:
    """The user this worker's tests run as (None: its own); checked before it starts.

    ``broker_flag`` is the broker URL given on the command line, if any.
    """
    user = resolve_test_user(setting, euid=euid)
    if user is not None and broker_flag and mask_url(broker_flag) != broker_flag:
        raise SettingsError(
            "--broker holds a password, which every process on this machine (tests "
            "included) can read in the worker's command line: pass the URL in "
            "FARM_BROKER_URL instead"
        )
    return user


def unreachable(path: Path, user: TestUser) -> Path | None:
    """The first folder from ``/`` down to ``path`` that ``user`` cannot enter; None if
    it can reach ``path``. (Test processes have no supplementary groups.)"""
    for folder in (*reversed(path.parents), path):
        info = folder.stat()
        if info.st_uid == user.uid:
            bit = stat.S_IXUSR
        elif info.st_gid == user.gid:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not info.st_mode & bit:
            return folder
    return None


def prepare_worker_dirs(cache_dir: Path, tmp_dir: Path | None, user: TestUser) -> None:
    """Set up the modes of the worker's folders for tests run as ``user``.

    ``tmp_dir`` is the worker's own temporary folder (under ``<cache>/tmp``), if it
    has one. Raises :class:`SettingsError` when ``user`` could not reach the cache.
    """
    os.umask(0o022)  # what the worker unpacks and builds, its tests can read
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        cache_dir.chmod(_SHARED)
        for name in _WORKER_ONLY:
            (cache_dir / name).mkdir(exist_ok=True)
            (cache_dir / name).chmod(_PRIVATE)
        if tmp_dir is not None:
            for folder in (tmp_dir.parent, tmp_dir):
                folder.chmod(_PASSAGE)
        blocked = unreachable(cache_dir, user)
    except OSError as e:
        raise SettingsError(f"cannot prepare the cache folder {cache_dir}: {e}") from e
    if blocked is not None:
        raise SettingsError(
            f"tests run as {user.name!r} cannot reach the cache folder {cache_dir}: "
            f"they may not enter {blocked} (mode {stat.S_IMODE(blocked.stat().st_mode):04o}); "
            "choose another --cache, or --test-user"
        )


def prepare_dir(path: str, user: TestUser | None) -> None:
    """Give the folder ``path``, made by the worker, to ``user``, who writes in it."""
    if user is not None:
        os.chown(path, user.uid, user.gid)


def chown_tree(root: Path, uid: int, gid: int) -> None:
    """Give ``root`` and everything under it to ``uid``:``gid``; links are not followed."""
    os.chown(root, uid, gid, follow_symlinks=False)
    for folder, dirnames, filenames in os.walk(root):
        for name in (*dirnames, *filenames):
            os.chown(os.path.join(folder, name), uid, gid, follow_symlinks=False)
