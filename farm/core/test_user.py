"""Who runs untrusted code: the ``test_user`` setting, resolved, and how a child becomes it.

Test processes (and everything else that runs a suite's code: collection, setup
commands) must not read what the process that starts them holds: the broker URL
in a worker's environment, credentials in its files. The kernel shows a process's
environment (``/proc/<pid>/environ``) only to its own user and root, so the code
runs as another user, a :class:`TestUser`, whenever the starting process can switch
(it runs as root). The setting, resolved once when the process starts:

- ``""`` (the default): no switch, unless the process runs as root: then
  ``nobody`` (:data:`farm.core.defaults.ROOT_TEST_USER`);
- ``"self"``: no switch, even as root (trusted code only: local workers, farm's
  own tests);
- a user name or a numeric uid: that user. A process that is not root cannot
  switch, so asking it to is an error, as is a user this machine does not know.

A child started as a test user gets a private folder of its own (its ``TMPDIR``,
and its ``HOME`` when the user's home is not a folder it owns, as ``nobody``'s
``/nonexistent`` is not), no supplementary groups, and ``USER``/``LOGNAME`` to match.
"""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from farm.core import defaults
from farm.core.errors import SettingsError

SELF = "self"


@dataclass(frozen=True)
class TestUser:
    """The user untrusted code runs as: its name, ids and home folder from ``pwd``."""

    __test__ = False  # not a pytest test class

    name: str
    uid: int
    gid: int
    home: str

    @classmethod
    def from_entry(cls, entry: pwd.struct_passwd) -> TestUser:
        return cls(entry.pw_name, entry.pw_uid, entry.pw_gid, entry.pw_dir)


def resolve_test_user(
    setting: str,
    *,
    euid: int,
    by_name: Callable[[str], pwd.struct_passwd] = pwd.getpwnam,
    by_uid: Callable[[int], pwd.struct_passwd] = pwd.getpwuid,
) -> TestUser | None:
    """The user a process running as ``euid`` starts untrusted code as; None for itself.

    Raises :class:`SettingsError` for a user this machine does not know, or a switch
    the process cannot make (it is not root).
    """
    wanted = setting.strip()
    if wanted == SELF or (not wanted and euid != 0):
        return None
    wanted = wanted or defaults.ROOT_TEST_USER
    try:
        entry = by_uid(int(wanted)) if wanted.isdigit() else by_name(wanted)
    except (KeyError, OverflowError):
        raise SettingsError(f"test user {wanted!r} is not a user of this machine") from None
    if entry.pw_uid == euid:
        return None  # its own user: nothing to switch
    if euid != 0:
        raise SettingsError(
            f"test user {wanted!r}: only a worker running as root can run tests as another "
            f"user; start it as root, or as {wanted!r} itself"
        )
    return TestUser.from_entry(entry)


def popen_identity(user: TestUser | None) -> dict[str, Any]:
    """The arguments of :class:`subprocess.Popen` that start a child as ``user``.

    Empty for no switch. The child keeps none of the parent's supplementary groups.
    """
    if user is None:
        return {}
    return {"user": user.uid, "group": user.gid, "extra_groups": []}


def private_dir(user: TestUser, *, prefix: str, parent: str | None = None) -> str:
    """A new folder only ``user`` (and root) can enter, in ``parent`` (the temporary
    folder by default). Whoever made it removes it."""
    path = tempfile.mkdtemp(prefix=prefix, dir=parent)
    try:
        os.chown(path, user.uid, user.gid)
    except BaseException:
        shutil.rmtree(path, ignore_errors=True)
        raise
    return path


def usable_home(user: TestUser) -> bool:
    """Whether ``user``'s home is a folder it owns (``nobody``'s does not exist)."""
    try:
        info = os.stat(user.home)
    except OSError:
        return False
    return stat.S_ISDIR(info.st_mode) and info.st_uid == user.uid


def user_env(user: TestUser, own_dir: str) -> dict[str, str]:
    """What a child started as ``user`` finds in its environment about itself:
    ``own_dir`` (see :func:`private_dir`) is its ``TMPDIR``, and its ``HOME`` unless
    its own home is usable."""
    home = user.home if usable_home(user) else own_dir
    return {"HOME": home, "USER": user.name, "LOGNAME": user.name, "TMPDIR": own_dir}
