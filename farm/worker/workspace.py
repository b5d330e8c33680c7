"""Where a shard's tests run on this worker: the shared disk, or a fetched snapshot.

A task without a snapshot names its rootdir on a disk the worker shares with the
submitter (local workers). A task with one names an archive by digest: the worker
takes the unpacked tree from its cache, or fetches the archive from the artifact
store, verifies it, unpacks it into the cache (see :mod:`farm.worker.cache`) and then
runs the tests there. One pool process fetches a digest while the others wait on
its lock, so a worker downloads each snapshot once. Tests run in the tree as they
would in a checkout: Python writes its ``__pycache__`` folders there, which later
shards of the same snapshot reuse. (``PYTHONPYCACHEPREFIX`` would keep the tree
pristine, but it also hides the installed packages' bytecode from Python, and
every test process then compiles pytest and the standard library again.)

Everything that can go wrong here is a :class:`WorkspaceError`. When no worker
could run the shard (a tampered archive, an entry that would land outside the
tree, a failing setup command), the shard ends fatal and the run with an error
verdict naming it; when the fault is this worker's (its disk, its network) or the
archive is missing from the store (the submitter puts it back), the shard is
handed back (``retry``) for another try.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import redis

from farm.artifacts import ArtifactError, ArtifactMissing, ArtifactStore, open_artifacts
from farm.artifacts.snapshot import SnapshotError
from farm.core.errors import InfrastructureError
from farm.core.logs import event
from farm.core.shard_task import ShardTask
from farm.core.test_user import TestUser
from farm.worker.cache import SnapshotCache
from farm.worker.envs import Environments, SetupError, code_path

log = logging.getLogger(__name__)


class WorkspaceError(InfrastructureError):
    """The shard cannot run here. With ``retry`` another worker may do better (this
    one's disk or network failed); without, no worker can (the code is refused)."""

    def __init__(self, message: str, *, retry: bool = False) -> None:
        super().__init__(message)
        self.retry = retry


@dataclass(frozen=True)
class Workspace:
    """Where and with what to run one shard."""

    rootdir: str
    inifile: str
    python: str
    env: dict[str, str] = field(default_factory=dict)  # added to the test process's
    farm_path: str = ""  # where the test process imports farm from, if not installed
    tree: str = ""  # the unpacked snapshot the rootdir is in; "" for the submitter's disk


@dataclass(frozen=True)
class WorkspaceConfig:
    cache_dir: Path
    cache_max_bytes: int
    key_prefix: str
    artifact_ttl_s: int
    setup_timeout_s: float


class Workspaces:
    """Prepares shards' workspaces from the cache under ``config.cache_dir``."""

    def __init__(
        self,
        config: WorkspaceConfig,
        *,
        client: redis.Redis,
        base_env: dict[str, str],
        user: TestUser | None = None,
    ) -> None:
        self.config = config
        self.client = client
        self._trees: SnapshotCache | None = None
        self.envs = Environments(
            config.cache_dir / "envs",
            base_env=base_env,
            timeout_s=config.setup_timeout_s,
            user=user,
        )
        self.stores: dict[str, ArtifactStore] = {}

    @property
    def trees(self) -> SnapshotCache:
        # Made on first use, so a cache folder that cannot be made fails a shard
        # (and counts against the worker) rather than every task before it starts.
        if self._trees is None:
            self._trees = SnapshotCache(
                self.config.cache_dir / "trees", max_bytes=self.config.cache_max_bytes
            )
        return self._trees

    def prepare(self, task: ShardTask) -> Workspace:
        if not task.snapshot:
            return Workspace(task.rootdir, task.inifile, sys.executable)
        try:
            tree = self._tree(task)
            rootdir = _inside(tree, task.rootdir, "rootdir")
            inifile = _inside(tree, task.inifile, "inifile") if task.inifile else ""
            python, env, farm_path = sys.executable, {}, ""
            if task.setup_command:
                built = self.envs.prepare(tree, task.setup_command, task.setup_files)
                python, env, farm_path = built.python, dict(built.env), built.farm_path
                env["PYTHONPATH"] = code_path(tree)
        except ArtifactMissing as e:
            # Gone from the store (it expired, or Redis restarted empty): the
            # submitter puts it back, so another try may find it.
            raise WorkspaceError(str(e), retry=True) from e
        except (ArtifactError, SnapshotError, SetupError) as e:
            raise WorkspaceError(str(e), retry=_transient(e)) from e
        except (OSError, redis.RedisError) as e:
            raise WorkspaceError(
                f"cannot prepare snapshot {task.snapshot[:12]}: {e}", retry=True
            ) from e
        return Workspace(rootdir, inifile, python, env, farm_path, str(tree.resolve()))

    def _tree(self, task: ShardTask) -> Path:
        digest = task.snapshot
        cached = self.trees.path_for(digest)
        if cached is not None:
            return cached
        with self._locked(digest):
            cached = self.trees.path_for(digest)  # fetched by another slot meanwhile
            if cached is not None:
                return cached
            started = time.monotonic()
            downloads = self.config.cache_dir / "downloads"
            downloads.mkdir(parents=True, exist_ok=True)
            archive = Path(tempfile.mkdtemp(prefix=".fetch-", dir=downloads)) / "archive"
            try:
                size = self._store(task.artifacts).fetch(
                    digest, archive, max_bytes=task.snapshot_max_bytes
                )
                fetched_s = time.monotonic() - started
                tree = self.trees.add(digest, archive, task.snapshot_max_bytes)
            finally:
                with contextlib.suppress(OSError):
                    archive.unlink()
                with contextlib.suppress(OSError):
                    archive.parent.rmdir()
        event(
            log,
            "snapshot.fetched",
            digest=digest,
            bytes=size,
            fetch_s=round(fetched_s, 3),
            total_s=round(time.monotonic() - started, 3),
        )
        return tree

    def _store(self, location: str) -> ArtifactStore:
        if location not in self.stores:
            self.stores[location] = open_artifacts(
                location or "redis",
                redis_client=self.client,
                key_prefix=self.config.key_prefix,
                ttl_s=self.config.artifact_ttl_s,
            )
        return self.stores[location]

    @contextlib.contextmanager
    def _locked(self, digest: str) -> Iterator[None]:
        locks = self.config.cache_dir / "locks"
        locks.mkdir(parents=True, exist_ok=True)
        with open(locks / digest, "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield


def _transient(error: Exception) -> bool:
    """Whether the error came from the network or the disk, not from the code."""
    return isinstance(error.__cause__, OSError | redis.RedisError) or isinstance(
        error.__context__, OSError | redis.RedisError
    )


def _inside(tree: Path, relative: str, what: str) -> str:
    """``tree/relative``, refusing a path from the network that would leave the tree."""
    path = PurePosixPath(relative)
    if path.is_absolute() or ".." in path.parts:
        raise WorkspaceError(f"task's {what} {relative!r} is not a path inside the snapshot")
    return os.path.normpath(tree / path)
