"""One typed settings object, fed by flags, ``FARM_*`` variables and ``[tool.farm]``.

Precedence, highest first: command-line flags, environment variables
(``FARM_<NAME>`` with the field name upper-cased), the ``[tool.farm]`` table of the
tested project's ``pyproject.toml`` (keys as field names, ``-`` or ``_``), then the
defaults below. Nothing is read at import time: :func:`load_settings` is handed
the environment and the project directory.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from farm.core import defaults
from farm.core.domain import FlakyPolicy
from farm.core.errors import SettingsError
from farm.core.locations import check_location

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]

ENV_PREFIX = "FARM_"


def _default_workers() -> int:
    return os.cpu_count() or 2


def _default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "farm"


# What a setup command's environment depends on, relative to the snapshot's root.
DEFAULT_SETUP_FILES = (
    "pyproject.toml",
    "setup.py",
    "setup.cfg",
    "requirements*.txt",
    "requirements/*.txt",
    "*.lock",
    "constraints*.txt",
)


@dataclass(frozen=True)
class Settings:
    """Every knob of farm. ``None`` for a URL means "use the embedded default"."""

    broker_url: str | None = None  # Redis URL; None starts an embedded redis-server
    database_url: str | None = None  # SQLAlchemy URL; None is a SQLite file in state_dir
    state_dir: Path = Path(defaults.STATE_DIR)
    workers: int = dataclasses.field(default_factory=_default_workers)
    strategy: str = defaults.STRATEGY
    project: str = ""  # history namespace; "" names it by farm.core.project's rule
    queue: str = defaults.QUEUE
    key_prefix: str = defaults.KEY_PREFIX
    run_ttl_s: int = defaults.RUN_TTL_S  # every Redis key of a run expires after this
    broker_timeout_s: float = defaults.BROKER_TIMEOUT_S
    result_limit_bytes: int = defaults.RESULT_LIMIT_BYTES  # per traceback and captured output
    progress_interval_s: float = defaults.PROGRESS_INTERVAL_S  # when not on a terminal
    worker_start_timeout_s: float = defaults.WORKER_START_TIMEOUT_S
    shard_overhead_s: float = defaults.SHARD_OVERHEAD_S  # starting a shard's test process
    # Code snapshots: "auto" packs the tree only for workers elsewhere (with --broker).
    snapshot: str = "auto"
    artifacts: str = "redis"  # where snapshots go: redis, a directory, s3://bucket/prefix
    snapshot_max_bytes: int = defaults.SNAPSHOT_MAX_BYTES  # unpacked size a worker accepts
    setup_command: str = ""  # builds the tests' environment on workers; "" uses the worker's
    setup_files: tuple[str, ...] = DEFAULT_SETUP_FILES
    setup_timeout_s: float = defaults.SETUP_TIMEOUT_S
    cache_dir: Path = dataclasses.field(default_factory=_default_cache_dir)  # worker's cache
    cache_max_bytes: int = defaults.CACHE_MAX_BYTES  # unpacked snapshots a worker keeps
    # Nothing lost: a running shard's lease is renewed by its worker's heartbeat; a
    # shard whose lease lapses goes back to the queue for another worker.
    lease_s: float = defaults.LEASE_S
    heartbeat_s: float = defaults.HEARTBEAT_S
    test_timeout_s: float = defaults.TEST_TIMEOUT_S  # per test, unless its marker says otherwise
    test_memory_limit_bytes: int = defaults.TEST_MEMORY_LIMIT_BYTES  # 0 is no limit
    stall_timeout_s: float = defaults.STALL_TIMEOUT_S  # no event and no live worker: run ends
    worker_max_failures: int = defaults.WORKER_MAX_FAILURES  # own failures in a row: it stops
    run_deadline_s: float = defaults.RUN_DEADLINE_S  # a silent scheduler's run is abandoned
    redis_outage_s: float = defaults.REDIS_OUTAGE_S  # the scheduler waits this long for Redis
    # Retries and flaky tests: a failed test gets ``retries`` more attempts, each on
    # another slot, within a budget of ``retry_budget`` x the run's tests.
    retries: int = defaults.RETRIES
    retry_budget: float = defaults.RETRY_BUDGET
    flaky: FlakyPolicy = defaults.FLAKY
    new_tests_repeat: int = defaults.NEW_TESTS_REPEAT
    quarantine_flaky_runs: int = defaults.QUARANTINE_FLAKY_RUNS
    quarantine_window_runs: int = defaults.QUARANTINE_WINDOW_RUNS
    quarantine_clean_runs: int = defaults.QUARANTINE_CLEAN_RUNS
    # Who a worker's test processes run as: "" is the worker's own user, unless the
    # worker runs as root (then ``nobody``); "self" keeps root's own user.
    test_user: str = ""
    # Where the dashboard serves a run's page (links in statuses and CI summaries).
    dashboard_url: str = ""

    def snapshots_on(self, *, rev: str | None = None) -> bool:
        """Whether a run packs its code: always for a revision, by default only for a
        farm elsewhere (local workers share the submitter's disk)."""
        if rev is not None:
            return True
        if self.snapshot == "auto":
            return self.broker_url is not None
        return self.snapshot == "on"

    @property
    def database_url_or_default(self) -> str:
        """The database URL; the default SQLite file's folder is made when first asked for."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(make_state_dir(self.state_dir) / 'farm.db').resolve()}"


_STATE_DIR_IGNORE = "# Created by farm: its state folder is local to this machine.\n*\n"


def make_state_dir(path: Path) -> Path:
    """Create the state folder ``path`` if need be, and return it.

    A folder farm creates gets a ``.gitignore`` of everything, as pytest's
    ``.pytest_cache`` does, so that it never shows up in the user's repository. A
    folder that exists is left as it is: it may be one the user chose and tracks.
    """
    try:
        path.mkdir(parents=True)
    except FileExistsError:
        return path
    (path / ".gitignore").write_text(_STATE_DIR_IGNORE, encoding="utf-8")
    return path


def _positive_int(name: str, value: object) -> int:
    try:
        number = int(str(value)) if not isinstance(value, int) else value
    except ValueError:
        raise SettingsError(f"setting {name} must be a whole number, got {value!r}") from None
    if isinstance(value, bool) or number < 1:
        raise SettingsError(f"setting {name} must be at least 1, got {value!r}")
    return number


def _positive_float(name: str, value: object) -> float:
    try:
        number = float(str(value))
    except ValueError:
        raise SettingsError(f"setting {name} must be a number, got {value!r}") from None
    if not number > 0:
        raise SettingsError(f"setting {name} must be above 0, got {value!r}")
    return number


def _text(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise SettingsError(f"setting {name} must be a string, got {value!r}")
    return value


def _optional_url(name: str, value: object) -> str | None:
    text = _text(name, value).strip()
    return text or None


def _path(name: str, value: object) -> Path:
    return Path(_text(name, value)).expanduser()


def _non_negative_int(name: str, value: object) -> int:
    if str(value).strip() == "0":
        return 0
    return _positive_int(name, value)


def _snapshot_mode(name: str, value: object) -> str:
    text = _text(name, value).strip().lower()
    if text not in ("auto", "on", "off"):
        raise SettingsError(f"setting {name} must be auto, on or off, got {value!r}")
    return text


def _fraction(name: str, value: object) -> float:
    number = _positive_float(name, value)
    if number > 1:
        raise SettingsError(
            f"setting {name} must be a share of the run's tests, at most 1, got {value!r}"
        )
    return number


def _flaky_policy(name: str, value: object) -> FlakyPolicy:
    text = _text(name, value).strip().lower()
    try:
        return FlakyPolicy(text)
    except ValueError:
        raise SettingsError(f"setting {name} must be pass or fail, got {value!r}") from None


def _artifacts(name: str, value: object) -> str:

    return check_location(_text(name, value).strip())


def _globs(name: str, value: object) -> tuple[str, ...]:
    # A list in pyproject.toml; a comma-separated string from a flag or FARM_ variable.
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not all(isinstance(i, str) for i in items):
        raise SettingsError(f"setting {name} must be a list of file patterns, got {value!r}")
    patterns = tuple(i.strip() for i in items if i.strip())
    for pattern in patterns:
        if pattern.startswith("/") or ".." in Path(pattern).parts:
            raise SettingsError(f"setting {name}: {pattern!r} must be relative to the project")
    return patterns


_PARSERS: dict[str, Callable[[str, object], Any]] = {
    "broker_url": _optional_url,
    "database_url": _optional_url,
    "state_dir": _path,
    "workers": _positive_int,
    "strategy": _text,
    "project": _text,
    "queue": _text,
    "key_prefix": _text,
    "run_ttl_s": _positive_int,
    "broker_timeout_s": _positive_float,
    "result_limit_bytes": _positive_int,
    "progress_interval_s": _positive_float,
    "worker_start_timeout_s": _positive_float,
    "shard_overhead_s": _positive_float,
    "snapshot": _snapshot_mode,
    "artifacts": _artifacts,
    "snapshot_max_bytes": _positive_int,
    "setup_command": _text,
    "setup_files": _globs,
    "setup_timeout_s": _positive_float,
    "cache_dir": _path,
    "cache_max_bytes": _positive_int,
    "lease_s": _positive_float,
    "heartbeat_s": _positive_float,
    "test_timeout_s": _positive_float,
    "test_memory_limit_bytes": _non_negative_int,
    "stall_timeout_s": _positive_float,
    "worker_max_failures": _positive_int,
    "run_deadline_s": _positive_float,
    "redis_outage_s": _positive_float,
    "retries": _non_negative_int,
    "retry_budget": _fraction,
    "flaky": _flaky_policy,
    "new_tests_repeat": _non_negative_int,
    "quarantine_flaky_runs": _positive_int,
    "quarantine_window_runs": _positive_int,
    "quarantine_clean_runs": _positive_int,
    "test_user": _text,
    "dashboard_url": _text,
}


def find_pyproject(start: Path) -> Path | None:
    """The nearest ``pyproject.toml`` at or above ``start``."""
    for folder in (start, *start.parents):
        candidate = folder / "pyproject.toml"
        if candidate.is_file():
            return candidate
    return None


def read_pyproject_table(path: Path) -> dict[str, object]:
    """The ``[tool.farm]`` table of a pyproject.toml, keys normalised to field names."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise SettingsError(f"cannot read {path}: {e}") from e
    table = data.get("tool", {}).get("farm", {})
    if not isinstance(table, dict):
        raise SettingsError(f"{path}: [tool.farm] must be a table")
    return {str(key).replace("-", "_"): value for key, value in table.items()}


def load_settings(
    flags: Mapping[str, object | None],
    env: Mapping[str, str],
    project_dir: Path,
) -> Settings:
    """Merge the three sources over the defaults; flags whose value is None are unset."""
    merged: dict[str, object] = {}
    pyproject = find_pyproject(project_dir)
    if pyproject is not None:
        for key, value in read_pyproject_table(pyproject).items():
            if key not in _PARSERS:
                raise SettingsError(f"{pyproject}: unknown key {key!r} in [tool.farm]")
            merged[key] = value
        if "state_dir" in merged:
            # A relative state_dir in pyproject.toml is relative to that file, not to cwd.
            merged["state_dir"] = str(pyproject.parent / _path("state_dir", merged["state_dir"]))
    for key in _PARSERS:
        env_value = env.get(ENV_PREFIX + key.upper())
        if env_value is not None:
            merged[key] = env_value
    for key, value in flags.items():
        if key not in _PARSERS:
            raise SettingsError(f"unknown setting {key!r}")
        if value is not None:
            merged[key] = value
    parsed = {key: _PARSERS[key](key, value) for key, value in merged.items()}
    settings = Settings(**parsed)
    if settings.heartbeat_s * 2 > settings.lease_s:
        # One late heartbeat must not cost a healthy worker its shard.
        raise SettingsError(
            f"setting heartbeat_s ({settings.heartbeat_s:g}) must be at most half of "
            f"lease_s ({settings.lease_s:g})"
        )
    if settings.quarantine_flaky_runs > settings.quarantine_window_runs:
        raise SettingsError(
            f"setting quarantine_flaky_runs ({settings.quarantine_flaky_runs}) must be at most "
            f"quarantine_window_runs ({settings.quarantine_window_runs})"
        )
    return settings
