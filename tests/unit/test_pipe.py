"""The report pipe's codec: what the plugin writes, the runner reads back the same."""

from __future__ import annotations

import subprocess
import sys

import pytest

from farm.core.domain import Outcome, TestResult
from farm.core.messages import decode_event
from farm.worker import pipe
from farm.worker.pipe import Kind, PipeError, UnknownKind, decode_line


def result(**overrides: object) -> TestResult:
    fields: dict[str, object] = dict(
        run_id="r", shard_id=2, lease=3, node_id="t.py::a[\x00<b>é\udcff]", outcome=Outcome.FAILED,
        duration_s=1.5, module_setup_s=0.25, worker="h:1", attempt=1, longrepr="E boom\nE  x",
        output="\x1b[2J\n", started_at=10.0, finished_at=11.5,
        tally=(("failed", 1), ("warnings", 2)),
    )  # fmt: skip
    fields.update(overrides)
    return TestResult(**fields)  # type: ignore[arg-type]


ROUND_TRIPS: list[tuple[Kind, bytes, pipe.Line]] = [
    (Kind.ORDER, pipe.encode_order(["a.py", "a.py::t[\n]"]),
     pipe.OrderLine(["a.py", "a.py::t[\n]"])),
    (Kind.ORDER, pipe.encode_order([]), pipe.OrderLine([])),
    (Kind.COLLECT_ERROR, pipe.encode_collect_error("b.py", "E  SyntaxError\n  ^"),
     pipe.CollectErrorLine("b.py", "E  SyntaxError\n  ^")),
    (Kind.MODULE, pipe.encode_module("m.py", ("m.py::a", "m.py::b"), 2),
     pipe.ModuleLine("m.py", ["m.py::a", "m.py::b"], 2)),
    (Kind.FINISHED, pipe.encode_finished(1), pipe.FinishedLine(1)),
    (Kind.TIMEOUTS, pipe.encode_timeouts({0: 2.5, 7: 1}), pipe.TimeoutsLine({0: 2.5, 7: 1.0})),
    (Kind.TIMEOUTS, pipe.encode_timeouts({}, armed=True), pipe.TimeoutsLine({}, armed=True)),
    (Kind.ARMED, pipe.encode_armed(4, 1.5, True), pipe.ArmedLine(4, 1.5, True)),
    (Kind.ARMED, pipe.encode_armed(0, None, False), pipe.ArmedLine(0, None, False)),
    (Kind.CAPTURES, pipe.encode_captures({"stdout": 5, "stderr": 6}),
     pipe.CapturesLine({"stdout": 5, "stderr": 6})),
    (Kind.OUTPUT, pipe.encode_output(3, "--- Captured stdout call ---\nhi\n"),
     pipe.OutputLine(3, "--- Captured stdout call ---\nhi\n")),
    (Kind.OUTPUT, pipe.encode_output(-1, None), pipe.OutputLine(-1, None)),
]  # fmt: skip


@pytest.mark.parametrize(("kind", "encoded", "decoded"), ROUND_TRIPS)
def test_every_line_decodes_to_what_was_encoded(
    kind: Kind, encoded: bytes, decoded: pipe.Line
) -> None:
    assert encoded.startswith(kind.value.encode())
    assert encoded.endswith(b"\n") and encoded.count(b"\n") == 1  # one line, whatever the text
    assert encoded.isascii()
    assert decode_line(encoded[:-1]) == decoded


def test_every_kind_has_a_round_trip() -> None:
    assert {kind for kind, _, _ in ROUND_TRIPS} | {Kind.RESULT} == set(Kind)


@pytest.mark.parametrize("index", [0, 41, -1])
def test_a_result_line_carries_the_event_the_stream_decodes(index: int) -> None:
    sent = result()
    encoded = pipe.encode_result(index, sent)
    assert encoded.endswith(b"\n") and encoded.count(b"\n") == 1 and encoded.isascii()
    line = decode_line(encoded[:-1])
    assert isinstance(line, pipe.ResultLine)
    assert line.index == index
    assert decode_event(line.payload) == sent


def test_a_result_without_a_tally_round_trips() -> None:
    sent = result(outcome=Outcome.PASSED, tally=(), longrepr="", output="")
    line = decode_line(pipe.encode_result(0, sent)[:-1])
    assert isinstance(line, pipe.ResultLine)
    assert decode_event(line.payload) == sent


def test_the_wire_bytes_are_those_the_runner_always_read() -> None:
    assert pipe.encode_order(["a.py::t"]) == b'O["a.py::t"]\n'
    assert pipe.encode_finished(0) == b"F0\n"
    assert pipe.encode_timeouts({3: 1.5}) == b'T{"limits":{"3":1.5},"armed":false}\n'
    assert pipe.encode_armed(2, 1.0, True) == b'A{"index":2,"limit_s":1.0,"in_process":true}\n'
    assert pipe.encode_captures({"stdout": 9}) == b'K{"stdout":9}\n'
    assert pipe.encode_output(2, None) == b'P{"index":2,"output":null}\n'
    assert pipe.encode_collect_error("x.py", "E") == b'C{"where":"x.py","longrepr":"E"}\n'
    assert pipe.encode_module("x.py", ["x.py::t"], 0) == (
        b'M{"module":"x.py","node_ids":["x.py::t"],"deselected":0}\n'
    )
    assert pipe.encode_result(4, result()).startswith(b'R4\t{"type":"result",')


def test_a_module_line_without_deselected_left_out_none() -> None:
    assert decode_line(b'M{"module":"m.py","node_ids":[]}') == pipe.ModuleLine("m.py", [], 0)


@pytest.mark.parametrize("line", [b"", b"X[]", b"hello from a test", b"o[]", b"\xff\xfe"])
def test_a_line_of_no_kind_is_an_unknown_kind(line: bytes) -> None:
    with pytest.raises(UnknownKind, match="not a line of the report pipe"):
        decode_line(line)


@pytest.mark.parametrize(
    "line",
    [
        # Not JSON.
        b"O",
        b"O[",
        b"F",
        b"Fzero",
        b'C{"where":"x.py",',
        b"M\xff",
        # Missing fields.
        b'C{"where":"x.py"}',
        b'C{"longrepr":"E"}',
        b'M{"node_ids":[]}',
        b'M{"module":"m.py"}',
        b'P{"index":1}',
        b'P{"output":null}',
        # Fields of the wrong type, or the wrong shape altogether.
        b'O{"a":1}',
        b"O[1]",
        b'O"a.py::t"',
        b"F1.5",
        b"Ftrue",
        b'F"0"',
        b"Fnull",
        b"C[]",
        b'C{"where":1,"longrepr":"E"}',
        b'M{"module":"m.py","node_ids":"m.py::a"}',
        b'M{"module":"m.py","node_ids":[],"deselected":"2"}',
        b"T[]",
        b'T{"a":1}',
        b'T{"limits":{"a":1}}',
        b'T{"limits":{"1":"2"}}',
        b'T{"limits":{"1":true}}',
        b'T{"limits":{"1":NaN}}',  # a limit that would never run out
        b'T{"limits":{},"armed":1}',
        b'A{"index":1,"limit_s":1}',
        b'A{"index":1,"limit_s":Infinity,"in_process":true}',
        b'A{"index":"1","limit_s":1,"in_process":true}',
        b'A{"index":1,"limit_s":"1","in_process":true}',
        b'A{"index":1,"limit_s":1,"in_process":"yes"}',
        b'K{"stdout":"5"}',
        b'K{"stdout":5.0}',
        b"K[5]",
        b'P{"index":"1","output":null}',
        b'P{"index":1,"output":3}',
        b"P[]",
        # A result line without its index or its tab.
        b"R",
        b'R{"type":"result"}',
        b'R\t{"type":"result"}',
        b'Rx\t{"type":"result"}',
        b'R1.5\t{"type":"result"}',
    ],
)
def test_a_malformed_line_of_a_kind_raises_the_codecs_error(line: bytes) -> None:
    with pytest.raises(PipeError) as raised:
        decode_line(line)
    assert not isinstance(raised.value, UnknownKind)
    assert repr(line[:10])[:-1] in str(raised.value)  # says which line


def test_the_error_names_the_missing_field() -> None:
    with pytest.raises(PipeError, match="C line lacks field 'longrepr'"):
        decode_line(b'C{"where":"x.py"}')


def test_a_long_malformed_line_is_cut_in_the_error() -> None:
    with pytest.raises(PipeError) as raised:
        decode_line(b"O[" + b"1," * 10_000)
    assert len(str(raised.value)) < 400


def _imported_after(setup: str, module: str) -> list[str]:
    """Top-level modules a fresh interpreter loads for ``module`` beyond ``setup``'s."""
    code = (
        f"import sys; {setup}; before = set(sys.modules); import {module}; "
        "print('\\n'.join(sorted({m.split('.')[0] for m in set(sys.modules) - before})))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    return done.stdout.split()


@pytest.mark.parametrize(
    ("setup", "module"),
    [
        ("pass", "farm.worker.pipe"),
        # The plugin runs in the tests' own environment, which may hold pytest alone.
        ("import pytest", "farm.worker.plugin"),
    ],
)
def test_the_test_process_side_imports_nothing_but_the_standard_library(
    setup: str, module: str
) -> None:
    loaded = _imported_after(setup, module)
    assert "farm" in loaded
    assert [m for m in loaded if m != "farm" and m not in sys.stdlib_module_names] == []
