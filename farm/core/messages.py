"""Wire messages between scheduler and workers, as JSON (never pickle).

A :class:`ShardTask` is the argument of the Celery task ``farm.run_shard``. Workers
answer on the run's events stream (see :mod:`farm.core.keys`) with one JSON object per
entry, told apart by ``type``:

- ``shard_start``: ``{type, run_id, shard_id, lease, worker, at, machine}`` (workers
  before ``machine`` was named so sent it as ``host``, still read)
- ``result``: a :class:`farm.core.domain.TestResult` as a dict (``outcome`` as its value,
  ``tally`` as an object of counts; ``modules_before``, a list of module paths, only
  when recorded: a failing result, or an attempt after the first, with
  ``modules_after`` when its process held modules whose tests ran after it;
  ``detail``, what pytest's end-of-run sections show of it, only when there is
  some: see
  :mod:`farm.core.pytest_report`)
- ``heartbeat``: ``{type, run_id, shard_id, lease, worker, at}``, every ``heartbeat_s``
  while a shard runs: it renews the shard's lease
- ``shard_end``: ``{type, run_id, shard_id, lease, worker, at, exit_code, message, fatal,
  retry, declined}``; ``retry`` means this worker could not run the shard for a reason of its own
  (it is stopping, its disk is full, a fetch failed): the scheduler sends it elsewhere;
  ``fatal`` means the worker could not run the shard at all for a reason no other
  worker would escape (a refused snapshot, a failing setup command): the run ends
  with an error verdict instead of waiting for results that will never come;
  ``declined`` (with ``retry``) means the shard is a follow-up this slot or machine
  must avoid (see :attr:`ShardTask.avoid_workers`), so it was not run here
- ``collected``: ``{type, run_id, shard_id, lease, module, node_ids, deselected}``:
  every test pytest collected (and kept, after ``-k``/``-m``) from one module on the
  worker, in order, and how many it left out; it verifies a run started from a
  cached collection
- ``collect_error``: ``{type, run_id, shard_id, lease, where, longrepr}``
- ``coverage``: ``{type, run_id, shard_id, lease, worker, root, parts, platforms,
  missing}``, once per shard of a run that measures coverage, just before its
  ``shard_end``: see :class:`ShardCoverage`

:func:`decode_event` validates a message read from the network and raises
:class:`MessageError` for anything malformed, so ingestion can log it and go on.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, TypeVar

from farm.core import defaults
from farm.core.domain import Outcome, Tally, TestResult
from farm.core.errors import FarmError
from farm.core.pytest_report import ResultDetail

T = TypeVar("T")

TASK_NAME = "farm.run_shard"


class MessageError(FarmError):
    """Raised when a message from the network is malformed."""


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
                run_id=_str(data, "run_id"),
                shard_id=_int(data, "shard_id"),
                lease=_int(data, "lease"),
                rootdir=_str(data, "rootdir"),
                node_ids=tuple(_str_list(data, "node_ids")),
                pytest_args=tuple(_str_list(data, "pytest_args")),
                inifile=str(data.get("inifile", "")),
                result_limit_bytes=_int(data, "result_limit_bytes"),
                snapshot=_optional(data, "snapshot", _str, ""),
                artifacts=_optional(data, "artifacts", _str, ""),
                snapshot_max_bytes=_optional(
                    data, "snapshot_max_bytes", _int, defaults.SNAPSHOT_MAX_BYTES
                ),
                setup_command=_optional(data, "setup_command", _str, ""),
                setup_files=tuple(_optional(data, "setup_files", _str_list, [])),
                heartbeat_s=_optional(data, "heartbeat_s", _float, defaults.HEARTBEAT_S),
                test_timeout_s=_optional(data, "test_timeout_s", _float, defaults.TEST_TIMEOUT_S),
                memory_limit_bytes=_optional(
                    data, "memory_limit_bytes", _int, defaults.TEST_MEMORY_LIMIT_BYTES
                ),
                attempt=_optional(data, "attempt", _int, 1),
                avoid_workers=tuple(_optional(data, "avoid_workers", _str_list, [])),
                avoid_machines=tuple(_optional(data, "avoid_machines", _str_list, [])),
                pytest_timeout_s=_optional(data, "pytest_timeout_s", _float_or_none, None),
                coverage=data.get("coverage") is True,
            )
        except KeyError as e:
            raise MessageError(f"shard task lacks field {e}") from None
        return task


@dataclass(frozen=True)
class ShardStart:
    """A worker began a shard; ``worker`` is the slot (``name:pid``) on ``machine``."""

    run_id: str
    shard_id: int
    lease: int
    worker: str
    at: float
    machine: str = ""


@dataclass(frozen=True)
class ShardEnd:
    """A worker finished a shard; ``exit_code`` is pytest's, ``message`` why it failed."""

    run_id: str
    shard_id: int
    lease: int
    worker: str
    at: float
    exit_code: int
    message: str = ""
    fatal: bool = False
    retry: bool = False
    declined: bool = False  # with retry: this slot is one the shard must avoid


@dataclass(frozen=True)
class Heartbeat:
    """A worker still runs the shard under this lease."""

    run_id: str
    shard_id: int
    lease: int
    worker: str
    at: float


@dataclass(frozen=True)
class ModuleCollected:
    """What a worker's pytest collected from one module, in collection order."""

    run_id: str
    shard_id: int
    lease: int
    module: str
    node_ids: tuple[str, ...]
    deselected: int = 0  # tests of the module that -k, -m or --deselect left out


@dataclass(frozen=True)
class CollectFailed:
    """A module failed to collect on a worker (syntax error, import error)."""

    run_id: str
    shard_id: int
    lease: int
    where: str
    longrepr: str


@dataclass(frozen=True)
class ShardCoverage:
    """What a shard's test processes measured under pytest-cov, under one lease.

    ``parts`` holds one test process's data each, as coverage.py's
    ``CoverageData.dumps`` wrote it, in base64; the paths in them name files under
    ``root``, the absolute folder of the tree the shard ran in on its worker.
    ``platforms`` are the processes' ``platform ..., python ...`` lines, as
    pytest-cov heads its report; ``missing`` says why some process's data is not
    there (it crashed, a test timed out, the data was too large), "" when none is.
    """

    run_id: str
    shard_id: int
    lease: int
    worker: str
    root: str
    parts: tuple[str, ...] = ()
    platforms: tuple[str, ...] = ()
    missing: str = ""


Event = (
    ShardStart | ShardEnd | Heartbeat | TestResult | ModuleCollected | CollectFailed | ShardCoverage
)
_KINDS: dict[type, str] = {
    ShardStart: "shard_start",
    Heartbeat: "heartbeat",
    ShardEnd: "shard_end",
    ModuleCollected: "collected",
    CollectFailed: "collect_error",
    ShardCoverage: "coverage",
}


def encode_event(event: Event) -> str:
    if isinstance(event, TestResult):
        data = _result_json(event)
    else:
        data = {"type": _KINDS[type(event)], **asdict(event)}
    return json.dumps(data, separators=(",", ":"))


def _result_json(result: TestResult) -> dict[str, Any]:
    """A result event as the JSON object :func:`decode_event` reads back.

    Spelled out rather than built by :func:`dataclasses.asdict`, which copies every
    field deeply: a test process encodes one per test, so this is on the hot path.
    """
    data: dict[str, Any] = {
        "type": "result",
        "run_id": result.run_id,
        "shard_id": result.shard_id,
        "lease": result.lease,
        "node_id": result.node_id,
        "outcome": result.outcome.value,
        "duration_s": result.duration_s,
        "module_setup_s": result.module_setup_s,
        "worker": result.worker,
        "attempt": result.attempt,
        "longrepr": result.longrepr,
        "output": result.output,
        "started_at": result.started_at,
        "finished_at": result.finished_at,
        "tally": dict(result.tally),
        "machine": result.machine,
    }
    if result.modules_before is not None:
        data["modules_before"] = list(result.modules_before)
        if result.modules_after:
            data["modules_after"] = list(result.modules_after)
    if result.detail is not None:
        data["detail"] = result.detail.to_json()
    return data


def decode_event(raw: str | bytes) -> Event:
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise MessageError(f"event is not JSON: {e}") from None
    if not isinstance(data, dict):
        raise MessageError("event is not a JSON object")
    kind = data.get("type")
    try:
        if kind == "result":
            return _decode_result(data)
        if kind == "shard_start":
            return ShardStart(
                *_shard_fields(data),
                _str(data, "worker"),
                _float(data, "at"),
                str(data.get("machine", data.get("host", ""))),
            )
        if kind == "shard_end":
            return ShardEnd(
                *_shard_fields(data),
                _str(data, "worker"),
                _float(data, "at"),
                _int(data, "exit_code"),
                str(data.get("message", "")),
                data.get("fatal") is True,
                data.get("retry") is True,
                data.get("declined") is True,
            )
        if kind == "heartbeat":
            return Heartbeat(
                *_shard_fields(data),
                _str(data, "worker"),
                _float(data, "at"),
            )
        if kind == "collected":
            return ModuleCollected(
                *_shard_fields(data),
                _str(data, "module"),
                tuple(_str_list(data, "node_ids")),
                _optional(data, "deselected", _int, 0),
            )
        if kind == "collect_error":
            return CollectFailed(
                *_shard_fields(data),
                _str(data, "where"),
                _str(data, "longrepr"),
            )
        if kind == "coverage":
            return ShardCoverage(
                *_shard_fields(data),
                _str(data, "worker"),
                _str(data, "root"),
                tuple(_str_list(data, "parts")),
                tuple(_str_list(data, "platforms")),
                _str(data, "missing"),
            )
    except KeyError as e:
        raise MessageError(f"{kind} event lacks field {e}") from None
    raise MessageError(f"unknown event type {kind!r}")


def _decode_result(data: dict[str, Any]) -> TestResult:
    try:
        outcome = Outcome(data["outcome"])
    except ValueError:
        raise MessageError(f"unknown outcome {data['outcome']!r}") from None
    return TestResult(
        run_id=_str(data, "run_id"),
        shard_id=_int(data, "shard_id"),
        lease=_int(data, "lease"),
        node_id=_str(data, "node_id"),
        outcome=outcome,
        duration_s=_float(data, "duration_s"),
        module_setup_s=_float(data, "module_setup_s"),
        worker=_str(data, "worker"),
        attempt=_int(data, "attempt"),
        longrepr=_str(data, "longrepr"),
        output=_str(data, "output"),
        started_at=_float(data, "started_at"),
        finished_at=_float(data, "finished_at"),
        tally=_optional(data, "tally", _tally, ()),
        machine=_optional(data, "machine", _str, ""),
        modules_before=_modules_before(data),
        modules_after=tuple(_optional(data, "modules_after", _str_list, [])),
        detail=_detail(data),
    )


def _detail(data: dict[str, Any]) -> ResultDetail | None:
    if data.get("detail") is None:
        return None
    try:
        return ResultDetail.from_json(data["detail"])
    except ValueError as e:
        raise MessageError(f"field 'detail': {e}") from None


def _modules_before(data: dict[str, Any]) -> tuple[str, ...] | None:
    if data.get("modules_before") is None:
        return None
    return tuple(_str_list(data, "modules_before"))


def _tally(data: dict[str, Any], key: str) -> Tally:
    value = data[key]
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(n, int) and not isinstance(n, bool) and n >= 0
        for k, n in value.items()
    ):
        raise MessageError(f"field {key!r} must map summary categories to counts")
    return tuple(sorted(value.items()))


def _shard_fields(data: dict[str, Any]) -> tuple[str, int, int]:
    """``run_id``, ``shard_id`` and ``lease``: the fields every event but a result starts with."""
    return _str(data, "run_id"), _int(data, "shard_id"), _int(data, "lease")


def _optional(
    data: dict[str, Any], key: str, parse: Callable[[dict[str, Any], str], T], default: T
) -> T:
    """``parse(data, key)`` if the field is there (older senders omit it), else ``default``."""
    return parse(data, key) if key in data else default


def _str(data: dict[str, Any], key: str) -> str:
    value = data[key]
    if not isinstance(value, str):
        raise MessageError(f"field {key!r} must be a string")
    return value


def _int(data: dict[str, Any], key: str) -> int:
    value = data[key]
    if not isinstance(value, int) or isinstance(value, bool):
        raise MessageError(f"field {key!r} must be an integer")
    return value


def _float(data: dict[str, Any], key: str) -> float:
    value = data[key]
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        raise MessageError(f"field {key!r} must be a finite number")
    return float(value)


def _float_or_none(data: dict[str, Any], key: str) -> float | None:
    return None if data[key] is None else _float(data, key)


def _str_list(data: dict[str, Any], key: str) -> list[str]:
    value = data[key]
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise MessageError(f"field {key!r} must be a list of strings")
    return value
