"""Wire messages from workers to the scheduler, as JSON (never pickle).

A worker is handed a shard as a :class:`farm.core.shard_task.ShardTask`. It answers on
the run's events stream (see :mod:`farm.core.keys`) with one JSON object per entry,
told apart by ``type``:

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
  must avoid (see :attr:`farm.core.shard_task.ShardTask.avoid_workers`), so it was not run here
- ``collected``: ``{type, run_id, shard_id, lease, module, node_ids, deselected}``:
  every test pytest collected (and kept, after ``-k``/``-m``) from one module on the
  worker, in order, and how many it left out; it verifies a run started from a
  cached collection
- ``collect_error``: ``{type, run_id, shard_id, lease, where, longrepr}``
- ``coverage``: ``{type, run_id, shard_id, lease, worker, root, parts, platforms,
  missing}``, once per shard of a run that measures coverage, just before its
  ``shard_end``: see :class:`ShardCoverage`

:func:`decode_event` validates a message read from the network and raises
:class:`farm.core.wire_fields.MessageError` for anything malformed, so ingestion can
log it and go on.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from farm.core.domain import Outcome, Tally, TestResult
from farm.core.pytest_report import ResultDetail
from farm.core.wire_fields import (
    MessageError,
    float_field,
    int_field,
    optional_field,
    str_field,
    str_list_field,
)


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
                str_field(data, "worker"),
                float_field(data, "at"),
                str(data.get("machine", data.get("host", ""))),
            )
        if kind == "shard_end":
            return ShardEnd(
                *_shard_fields(data),
                str_field(data, "worker"),
                float_field(data, "at"),
                int_field(data, "exit_code"),
                str(data.get("message", "")),
                data.get("fatal") is True,
                data.get("retry") is True,
                data.get("declined") is True,
            )
        if kind == "heartbeat":
            return Heartbeat(
                *_shard_fields(data),
                str_field(data, "worker"),
                float_field(data, "at"),
            )
        if kind == "collected":
            return ModuleCollected(
                *_shard_fields(data),
                str_field(data, "module"),
                tuple(str_list_field(data, "node_ids")),
                optional_field(data, "deselected", int_field, 0),
            )
        if kind == "collect_error":
            return CollectFailed(
                *_shard_fields(data),
                str_field(data, "where"),
                str_field(data, "longrepr"),
            )
        if kind == "coverage":
            return ShardCoverage(
                *_shard_fields(data),
                str_field(data, "worker"),
                str_field(data, "root"),
                tuple(str_list_field(data, "parts")),
                tuple(str_list_field(data, "platforms")),
                str_field(data, "missing"),
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
        run_id=str_field(data, "run_id"),
        shard_id=int_field(data, "shard_id"),
        lease=int_field(data, "lease"),
        node_id=str_field(data, "node_id"),
        outcome=outcome,
        duration_s=float_field(data, "duration_s"),
        module_setup_s=float_field(data, "module_setup_s"),
        worker=str_field(data, "worker"),
        attempt=int_field(data, "attempt"),
        longrepr=str_field(data, "longrepr"),
        output=str_field(data, "output"),
        started_at=float_field(data, "started_at"),
        finished_at=float_field(data, "finished_at"),
        tally=optional_field(data, "tally", _tally, ()),
        machine=optional_field(data, "machine", str_field, ""),
        modules_before=_modules_before(data),
        modules_after=tuple(optional_field(data, "modules_after", str_list_field, [])),
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
    return tuple(str_list_field(data, "modules_before"))


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
    return str_field(data, "run_id"), int_field(data, "shard_id"), int_field(data, "lease")
