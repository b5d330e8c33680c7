"""The shard task: what the scheduler hands a worker to run, as JSON (never pickle).

A :class:`ShardTask` is the one argument of the Celery task :data:`TASK_NAME`, which
the scheduler sends (:mod:`farm.scheduler.dispatch`) and workers register
(:mod:`farm.worker.app`). Workers answer with the events of :mod:`farm.core.messages`.
:meth:`ShardTask.from_json` validates a task read from the network and raises
:class:`farm.core.wire_fields.MessageError` for anything malformed; fields added
after the first release have defaults, so a task from an older scheduler still reads.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from farm.core import defaults
from farm.core.wire_fields import (
    MessageError,
    float_field,
    float_or_none_field,
    int_field,
    optional_field,
    str_field,
    str_list_field,
)

TASK_NAME = "farm.run_shard"


@dataclass(frozen=True)
class ShardTask:
    """One shard to run: which tests, where, with which pytest options.

    ``node_ids`` are relative to ``rootdir``, in the order to run them;
    ``pytest_args`` are options passed through to pytest (never paths).

    Without ``snapshot``, ``rootdir`` and ``inifile`` are paths on a filesystem the
    worker shares with the submitter. With it, the code to test is the archive of
    that sha256 digest in the artifact store ``artifacts`` (a location without
    credentials: see :mod:`farm.artifacts`), and ``rootdir`` and ``inifile`` are
    relative to the archive's root. ``setup_command``, when set, builds the
    environment the tests run in, keyed by the files ``setup_files`` match.
    """

    run_id: str
    shard_id: int
    lease: int
    rootdir: str
    node_ids: tuple[str, ...]
    pytest_args: tuple[str, ...] = ()
    inifile: str = ""
    result_limit_bytes: int = defaults.RESULT_LIMIT_BYTES
    snapshot: str = ""
    artifacts: str = ""
    snapshot_max_bytes: int = defaults.SNAPSHOT_MAX_BYTES
    setup_command: str = ""
    setup_files: tuple[str, ...] = ()
    heartbeat_s: float = defaults.HEARTBEAT_S
    test_timeout_s: float = defaults.TEST_TIMEOUT_S
    memory_limit_bytes: int = defaults.TEST_MEMORY_LIMIT_BYTES
    # A follow-up of tests that already ran in this run (a retry, a repeat of a new
    # test): the attempt number its results carry, and the slots (``name:pid``) and
    # machines it must not run on. A slot it must avoid declines it.
    attempt: int = 1
    avoid_workers: tuple[str, ...] = ()
    avoid_machines: tuple[str, ...] = ()
    # pytest-timeout's per-test limit as the submitter resolved it (None: unset, or no
    # plugin; 0: none): see farm.worker.deadline.
    pytest_timeout_s: float | None = None
    # The run measures coverage (pytest-cov): the worker keeps each test process's
    # data apart and sends it in a ``coverage`` event (see farm.worker.coverage_relay).
    coverage: bool = False

    def declined_by(self, worker: str, machine: str) -> bool:
        """Whether the slot ``worker`` on ``machine`` must leave this shard to another."""
        return worker in self.avoid_workers or machine in self.avoid_machines

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["node_ids"] = list(self.node_ids)
        data["pytest_args"] = list(self.pytest_args)
        data["setup_files"] = list(self.setup_files)
        data["avoid_workers"] = list(self.avoid_workers)
        data["avoid_machines"] = list(self.avoid_machines)
        return data

    @classmethod
    def from_json(cls, data: object) -> ShardTask:
        if not isinstance(data, dict):
            raise MessageError("shard task must be a JSON object")
        try:
            task = cls(
                run_id=str_field(data, "run_id"),
                shard_id=int_field(data, "shard_id"),
                lease=int_field(data, "lease"),
                rootdir=str_field(data, "rootdir"),
                node_ids=tuple(str_list_field(data, "node_ids")),
                pytest_args=tuple(str_list_field(data, "pytest_args")),
                inifile=str(data.get("inifile", "")),
                result_limit_bytes=int_field(data, "result_limit_bytes"),
                snapshot=optional_field(data, "snapshot", str_field, ""),
                artifacts=optional_field(data, "artifacts", str_field, ""),
                snapshot_max_bytes=optional_field(
                    data, "snapshot_max_bytes", int_field, defaults.SNAPSHOT_MAX_BYTES
                ),
                setup_command=optional_field(data, "setup_command", str_field, ""),
                setup_files=tuple(optional_field(data, "setup_files", str_list_field, [])),
                heartbeat_s=optional_field(data, "heartbeat_s", float_field, defaults.HEARTBEAT_S),
                test_timeout_s=optional_field(
                    data, "test_timeout_s", float_field, defaults.TEST_TIMEOUT_S
                ),
                memory_limit_bytes=optional_field(
                    data, "memory_limit_bytes", int_field, defaults.TEST_MEMORY_LIMIT_BYTES
                ),
                attempt=optional_field(data, "attempt", int_field, 1),
                avoid_workers=tuple(optional_field(data, "avoid_workers", str_list_field, [])),
                avoid_machines=tuple(optional_field(data, "avoid_machines", str_list_field, [])),
                pytest_timeout_s=optional_field(
                    data, "pytest_timeout_s", float_or_none_field, None
                ),
                coverage=data.get("coverage") is True,
            )
        except KeyError as e:
            raise MessageError(f"shard task lacks field {e}") from None
        return task
