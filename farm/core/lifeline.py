"""What ties the local farm's processes to the life of the ``farm run`` that started them.

However ``farm run`` ends (a clean exit, Ctrl-C, SIGTERM from a CI timeout, SIGKILL,
a crash), nothing it started may outlive it: an orphaned worker would reconnect to
the next run's Redis and run its shards with code loaded for an earlier run.

- The embedded redis-server cannot watch anything, so it gets a *parent-death
  signal*: ``prctl(PR_SET_PDEATHSIG, SIGKILL)``, set in the child between fork and
  exec (:func:`die_with_parent`).
- The local worker gets a *lifeline*: the read end of a pipe whose only write end
  ``farm run`` holds (:class:`Lifeline`). The kernel closes that end when ``farm
  run`` dies, however it dies; the worker's main process then reads EOF and kills
  its whole tree, the pool processes and their pytest processes included, which
  lead process groups of their own (:func:`watch_lifeline`, :func:`kill_tree`). It
  also removes the files the run made (the Redis socket, the pid file, the workers'
  temporary folder), since nobody else is left to do it.

A parent-death signal is not enough for the worker: it would kill the worker's main
process before it could kill its tree, and pool processes forked later by another
of its threads would get the signal when that thread ends, not when the worker does.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from pathlib import Path

from farm.core.errors import InfrastructureError, SettingsError

LIFELINE_FD_ENV = "FARM_LIFELINE_FD"  # the fd of the lifeline's read end in the worker
CLEANUP_ENV = "FARM_LIFELINE_CLEANUP"  # JSON list of paths the worker removes on EOF
TESTS_TMPDIR_ENV = "FARM_TESTS_TMPDIR"  # the TMPDIR the worker's tests get ("": none)

_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
_FREEZE_ROUNDS = 5  # walks of the tree while freezing it: forks in flight are caught


def die_with_parent(*, waits: bool = False) -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child get SIGKILL when this process dies.

    None where it cannot be set, or would fire too early: the kernel sends the
    signal when the *thread* that forked the child ends, so only the main thread,
    whose end is the process's, may use it, unless the caller ``waits`` for the
    child in the same thread (as ``subprocess.run`` does), so the thread outlives it.
    """
    if not waits and threading.current_thread() is not threading.main_thread():
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent_pid = os.getpid()
    option, death_signal = ctypes.c_int(_PR_SET_PDEATHSIG), ctypes.c_ulong(signal.SIGKILL)

    def set_in_child() -> None:
        prctl(option, death_signal)
        # The parent may have died before the prctl: then nobody will send the signal.
        if os.getppid() != parent_pid:
            os.kill(os.getpid(), signal.SIGKILL)

    return set_in_child


class Lifeline:
    """A pipe whose write end only this process holds; its child watches the read end.

    ``child_env`` names the read end for the child (to pass in ``pass_fds``),
    ``started`` closes this process's copy of it once the child has it, and ``cut``
    closes the write end: the child reads EOF.
    """

    def __init__(self) -> None:
        # os.pipe's ends are close-on-exec: no other child inherits the write end.
        self.read_fd, self.write_fd = os.pipe()

    def child_env(self, cleanup: Sequence[Path]) -> dict[str, str]:
        return {
            LIFELINE_FD_ENV: str(self.read_fd),
            CLEANUP_ENV: json.dumps([str(path) for path in cleanup]),
        }

    def started(self) -> None:
        self._close("read_fd")

    def cut(self) -> None:
        self._close("read_fd")
        self._close("write_fd")

    def _close(self, end: str) -> None:
        fd = getattr(self, end)
        if fd >= 0:
            with contextlib.suppress(OSError):
                os.close(fd)
            setattr(self, end, -1)


def start_on_lifeline(
    command: Sequence[str],
    *,
    env: Mapping[str, str],
    cleanup: Sequence[Path],
    log_path: Path,
    what: str,
) -> tuple[subprocess.Popen[bytes], Lifeline]:
    """Start ``command`` in a session of its own, output appended to ``log_path``,
    holding a new lifeline (its read end, and ``cleanup`` for it to remove when the
    line breaks, named in its environment). InfrastructureError naming ``what`` if it
    cannot start."""
    lifeline = Lifeline()
    log = open(log_path, "ab")  # noqa: SIM115 - handed to the child
    try:
        process = subprocess.Popen(
            list(command), env={**env, **lifeline.child_env(cleanup)}, stdout=log,
            stderr=log, stdin=subprocess.DEVNULL, start_new_session=True,
            pass_fds=(lifeline.read_fd,),
        )  # fmt: skip
    except OSError as e:
        lifeline.cut()
        raise InfrastructureError(f"cannot start {what}: {e}") from e
    finally:
        log.close()
    lifeline.started()
    return process, lifeline


def watch_lifeline(environ: Mapping[str, str]) -> None:
    """In the local worker's main process: die with the run when the lifeline breaks.

    Does nothing for a worker started without one (``farm worker`` on a farm).
    """
    raw = environ.get(LIFELINE_FD_ENV)
    if raw is None:
        return
    try:
        fd = int(raw)
        cleanup = [Path(p) for p in json.loads(environ.get(CLEANUP_ENV, "[]"))]
        os.fstat(fd)
    except (ValueError, TypeError, OSError) as e:
        raise SettingsError(f"invalid lifeline from farm run ({LIFELINE_FD_ENV}={raw}): {e}") from e

    def watch() -> None:
        while True:
            try:
                if not os.read(fd, 1):
                    break
            except InterruptedError:
                continue
            except OSError:
                break
        _die(cleanup)

    threading.Thread(target=watch, name="farm-lifeline", daemon=True).start()


def own_tmpdir(parent: Path, environ: MutableMapping[str, str]) -> Path | None:
    """Point this worker's ``TMPDIR`` at a folder of its own under ``parent``.

    Celery's prefork pool makes a ``pymp-*`` folder in ``TMPDIR`` that a killed
    worker never removes. Under ``parent`` (in the worker's cache) it is removed by
    the worker's exit, or by the next worker to start once its owner is dead. The
    tests keep the ``TMPDIR`` they had. None, with ``TMPDIR`` left as it is, for a
    local worker (its run gave it one) or where ``parent`` cannot be made (a broken
    cache is the workspace's to report, shard by shard).
    """
    if TESTS_TMPDIR_ENV in environ:
        return None
    mine = parent / f"worker-{os.getpid()}"
    try:
        parent.mkdir(parents=True, exist_ok=True)
        for stale in parent.glob("worker-*"):
            pid = stale.name.removeprefix("worker-")
            if pid.isdigit() and not _alive(int(pid)):
                shutil.rmtree(stale, ignore_errors=True)
        mine.mkdir(exist_ok=True)
    except OSError:
        return None
    environ.update(worker_tmpdir_env(mine, environ))
    tempfile.tempdir = None  # read TMPDIR again on the next use
    atexit.register(shutil.rmtree, mine, True)
    return mine


def worker_tmpdir_env(tmp_dir: Path, environ: Mapping[str, str]) -> dict[str, str]:
    """The variables that give a worker ``tmp_dir`` as its ``TMPDIR`` while its tests
    keep the one of ``environ`` (see ``farm.worker.app``)."""
    return {TESTS_TMPDIR_ENV: environ.get("TMPDIR", ""), "TMPDIR": str(tmp_dir)}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: not ours to judge
    return True


def _die(cleanup: Sequence[Path]) -> None:
    kill_tree(os.getpid(), include_root=False)
    for path in cleanup:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                path.unlink()
    if os.getpgrp() == os.getpid():
        # A pool process forked after the walk is still in this group.
        with contextlib.suppress(OSError):
            os.killpg(os.getpid(), signal.SIGKILL)
    os._exit(1)


def kill_tree(root_pid: int, *, include_root: bool) -> None:
    """SIGKILL every descendant of ``root_pid`` (and it, with ``include_root``), and
    every process group one of them leads: what its tests started, too.

    The tree is frozen (SIGSTOP) before anything is killed: a process killed first
    would orphan its children out of the tree, and a running one could fork after
    the walk. Processes already stopped cannot do either.
    """
    frozen: set[int] = set()
    if include_root:
        _send(root_pid, signal.SIGSTOP)
        frozen.add(root_pid)
    for _ in range(_FREEZE_ROUNDS):
        found = descendants(root_pid) - frozen
        if not found:
            break
        for pid in found:
            _send(pid, signal.SIGSTOP)
        frozen |= found
    for pid in frozen:
        with contextlib.suppress(OSError):
            if os.getpgid(pid) == pid:
                os.killpg(pid, signal.SIGKILL)
        _send(pid, signal.SIGKILL)


def descendants(root_pid: int) -> set[int]:
    """The pids of every live process below ``root_pid`` in the process tree."""
    children: dict[int, list[int]] = {}
    for pid, parent in _parent_pids().items():
        children.setdefault(parent, []).append(pid)
    found: set[int] = set()
    todo = [root_pid]
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _parent_pids() -> dict[int, int]:
    """pid to parent pid of every process, from ``/proc/PID/stat``."""
    parents: dict[int, int] = {}
    with os.scandir("/proc") as entries:
        for entry in entries:
            if not entry.name.isdigit():
                continue
            try:
                stat = Path(entry.path, "stat").read_bytes()
            except OSError:
                continue  # it exited meanwhile
            # The command name in parentheses may hold spaces and ")": cut after the last.
            fields = stat[stat.rfind(b")") + 2 :].split()
            if len(fields) > 1:
                parents[int(entry.name)] = int(fields[1])
    return parents


def _send(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signum)
