"""The report pipe between a test process and its runner: every line, defined once.

The pytest plugin (:mod:`farm.worker.plugin`, in the untrusted test process) writes
its lines with the ``encode_*`` functions; the trusted runner
(:mod:`farm.worker.runner`) reads each back with :func:`decode_line`. A line is one
ASCII letter, its :class:`Kind`, then its payload, then ``\\n``; every payload is
ASCII JSON, but an ``R`` line's index before its tab.

:func:`decode_line` raises :class:`PipeError` on a line the plugin would not write:
:class:`UnknownKind` for one that is not of a kind (which the runner skips), a plain
:class:`PipeError` for a line of a kind whose payload is malformed.

The test process may run in a virtualenv that holds only pytest: this module imports
nothing but the standard library and farm modules that do the same.
"""

from __future__ import annotations

import enum
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from farm.core.domain import TestResult
from farm.core.errors import FarmError
from farm.core.messages import encode_event

# The runner's answer to a ``K`` line, on the process's command pipe, and how long
# the plugin waits for it before it goes on without (a runner that never answers).
CAPTURES_KEPT = b"captures-kept"
CAPTURES_KEPT_WAIT_S = 10.0


class Kind(str, enum.Enum):
    """The kind of a line, its first letter; the payload that follows it:

    - ``O`` (ORDER) + JSON list: the node ids this process will run, in order, once
      after collection. Tests run and report in this order, so the runner knows
      which test was running when a process dies without a line per test start.
    - ``R`` (RESULT) + index in that list (-1: not in it) + tab + one test's result,
      already in the wire format of :func:`farm.core.messages.encode_event`, so the
      runner forwards it as is, never decoding it.
    - ``C`` (COLLECT_ERROR) + JSON ``{"where", "longrepr"}``: a module that failed to
      collect.
    - ``M`` (MODULE) + JSON ``{"module", "node_ids", "deselected"}``, once per module
      after collection: every test pytest kept from that module, whether or not this
      shard runs it, and how many ``-k``, ``-m`` or ``--deselect`` left out.
    - ``F`` (FINISHED) + JSON exit status, when the session ends normally: a process
      that stops without it died (a crash, a kill).
    - ``T`` (TIMEOUTS) + JSON ``{"limits": {index: seconds}, "armed": bool}``, once
      after collection, just before ``O``, if any test of the order has a
      ``timeout`` marker (its own time limit, 0 for none) or pytest-timeout is
      active in the process (``armed``: it times the tests, and says so in ``A``
      lines; see :mod:`farm.worker.deadline`).
    - ``A`` (ARMED) + JSON ``{"index", "limit_s", "in_process"}``: pytest-timeout
      started the timer of the test at ``index`` of the order just now, for
      ``limit_s`` seconds (null: it cancelled it); ``in_process``: pytest-timeout
      stops the test itself (its signal method), else farm does.
    - ``K`` (CAPTURES) + JSON ``{"stdout": fd, "stderr": fd}``: the descriptors of
      the files pytest captures output in, either or both, which the runner opens
      through ``/proc`` so that what a test printed survives a crash. The plugin
      then waits, before it collects, for the runner's :data:`CAPTURES_KEPT` line on
      its command pipe (at most :data:`CAPTURES_KEPT_WAIT_S`): a process may only
      run a test once its capture files are open on the runner's side.
    - ``P`` (OUTPUT) + JSON ``{"index", "output"}``, only when the runner asks: what
      the test in flight (index in the order, -1 for none) printed so far, null if
      output is not captured.
    """

    ORDER = "O"
    RESULT = "R"
    COLLECT_ERROR = "C"
    MODULE = "M"
    FINISHED = "F"
    TIMEOUTS = "T"
    ARMED = "A"
    CAPTURES = "K"
    OUTPUT = "P"


class PipeError(FarmError):
    """Raised when a line read from the report pipe is malformed."""


class UnknownKind(PipeError):
    """Raised when a line starts with no kind's letter (an empty line included)."""


@dataclass(frozen=True, slots=True)
class OrderLine:
    node_ids: list[str]


@dataclass(frozen=True, slots=True)
class ResultLine:
    index: int
    payload: bytes  # an event for the stream, encoded


@dataclass(frozen=True, slots=True)
class CollectErrorLine:
    where: str
    longrepr: str


@dataclass(frozen=True, slots=True)
class ModuleLine:
    module: str
    node_ids: list[str]
    deselected: int


@dataclass(frozen=True, slots=True)
class FinishedLine:
    exit_status: int


@dataclass(frozen=True, slots=True)
class TimeoutsLine:
    limits_s: dict[int, float]  # by index in the order
    armed: bool = False  # pytest-timeout times the tests: A lines follow


@dataclass(frozen=True, slots=True)
class ArmedLine:
    index: int
    limit_s: float | None  # None: the timer was cancelled
    in_process: bool


@dataclass(frozen=True, slots=True)
class CapturesLine:
    fds: dict[str, int]  # by stream name


@dataclass(frozen=True, slots=True)
class OutputLine:
    index: int
    output: str | None


Line = (
    OrderLine
    | ResultLine
    | CollectErrorLine
    | ModuleLine
    | FinishedLine
    | TimeoutsLine
    | ArmedLine
    | CapturesLine
    | OutputLine
)


def _json_line(kind: Kind, data: object) -> bytes:
    # ensure_ascii (json's default) makes the line ASCII, lone surrogates included.
    return (kind.value + json.dumps(data, separators=(",", ":")) + "\n").encode()


def encode_order(node_ids: Sequence[str]) -> bytes:
    return _json_line(Kind.ORDER, list(node_ids))


def encode_result(index: int, result: TestResult) -> bytes:
    return f"R{index}\t{encode_event(result)}\n".encode()  # one per test: Kind.RESULT, inlined


def encode_collect_error(where: str, longrepr: str) -> bytes:
    return _json_line(Kind.COLLECT_ERROR, {"where": where, "longrepr": longrepr})


def encode_module(module: str, node_ids: Sequence[str], deselected: int) -> bytes:
    data = {"module": module, "node_ids": list(node_ids), "deselected": deselected}
    return _json_line(Kind.MODULE, data)


def encode_finished(exit_status: int) -> bytes:
    return _json_line(Kind.FINISHED, exit_status)


def encode_timeouts(limits_s: Mapping[int, float], *, armed: bool = False) -> bytes:
    limits = {str(index): s for index, s in limits_s.items()}
    return _json_line(Kind.TIMEOUTS, {"limits": limits, "armed": armed})


def encode_armed(index: int, limit_s: float | None, in_process: bool) -> bytes:
    return _json_line(Kind.ARMED, {"index": index, "limit_s": limit_s, "in_process": in_process})


def encode_captures(fds: Mapping[str, int]) -> bytes:
    return _json_line(Kind.CAPTURES, dict(fds))


def encode_output(index: int, output: str | None) -> bytes:
    return _json_line(Kind.OUTPUT, {"index": index, "output": output})


def decode_line(line: bytes) -> Line:
    """The line ``line`` (without its ``\\n``) holds; :class:`PipeError` if malformed."""
    kind, rest = line[:1], line[1:]
    if kind == b"R":  # one per test: kept to a split and an int
        index, tab, payload = rest.partition(b"\t")
        try:
            if tab:
                return ResultLine(int(index), payload)
        except ValueError:
            pass
        raise PipeError(f"malformed R line: {_start(line)}")
    decode = _DECODERS.get(kind)
    if decode is None:
        raise UnknownKind(f"not a line of the report pipe: {_start(line)}")
    try:
        data = json.loads(rest)
    except ValueError as e:  # UnicodeDecodeError included
        raise PipeError(f"{kind.decode()} line is not JSON: {e}: {_start(line)}") from None
    try:
        return decode(data)
    except KeyError as e:
        raise PipeError(f"{kind.decode()} line lacks field {e}: {_start(line)}") from None
    except (TypeError, ValueError) as e:
        raise PipeError(f"malformed {kind.decode()} line ({e}): {_start(line)}") from None


def _start(line: bytes) -> str:
    return repr(line[:80]) + ("..." if len(line) > 80 else "")


def _order(data: object) -> OrderLine:
    return OrderLine(_strs(data))


def _collect_error(data: object) -> CollectErrorLine:
    fields = _object(data)
    return CollectErrorLine(_str(fields["where"]), _str(fields["longrepr"]))


def _module(data: object) -> ModuleLine:
    fields = _object(data)
    deselected = _int(fields.get("deselected", 0))
    return ModuleLine(_str(fields["module"]), _strs(fields["node_ids"]), deselected)


def _finished(data: object) -> FinishedLine:
    return FinishedLine(_int(data))


def _timeouts(data: object) -> TimeoutsLine:
    fields = _object(data)
    limits = {int(i): _number(s) for i, s in _object(fields["limits"]).items()}
    return TimeoutsLine(limits, _bool(fields.get("armed", False)))


def _armed(data: object) -> ArmedLine:
    fields = _object(data)
    limit_s = fields["limit_s"]
    return ArmedLine(
        _int(fields["index"]),
        None if limit_s is None else _number(limit_s),
        _bool(fields["in_process"]),
    )


def _captures(data: object) -> CapturesLine:
    return CapturesLine({name: _int(fd) for name, fd in _object(data).items()})


def _output(data: object) -> OutputLine:
    fields = _object(data)
    output = fields["output"]
    return OutputLine(_int(fields["index"]), None if output is None else _str(output))


def _object(value: object) -> dict[str, object]:
    if not isinstance(value, dict):
        raise TypeError(f"not an object: {value!r:.40}")
    return value


def _str(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"not a string: {value!r:.40}")
    return value


def _strs(value: object) -> list[str]:
    if not isinstance(value, list):
        raise TypeError(f"not a list: {value!r:.40}")
    return [_str(item) for item in value]


def _int(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"not an integer: {value!r:.40}")
    return value


def _bool(value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"not a boolean: {value!r:.40}")
    return value


def _number(value: object) -> float:
    # A limit of NaN or infinity would never run out: refused, as a line the plugin
    # would not write.
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        raise TypeError(f"not a finite number: {value!r:.40}")
    return float(value)


_DECODERS: dict[bytes, Callable[[object], Line]] = {
    Kind.ORDER.value.encode(): _order,
    Kind.COLLECT_ERROR.value.encode(): _collect_error,
    Kind.MODULE.value.encode(): _module,
    Kind.FINISHED.value.encode(): _finished,
    Kind.TIMEOUTS.value.encode(): _timeouts,
    Kind.ARMED.value.encode(): _armed,
    Kind.CAPTURES.value.encode(): _captures,
    Kind.OUTPUT.value.encode(): _output,
}
