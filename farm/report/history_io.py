"""Reading and writing durations files: pytest-split's ``.test_durations`` and JUnit XML.

A *durations* mapping is node id -> seconds the test took (setup + call + teardown).
Node ids are relative to the suite's pytest rootdir, as both formats below write
them, and that rootdir names the project they are imported into (:mod:`farm.core.project`),
so a file is taken as it is, never rebased onto another folder.
Two file formats are read, told apart by content, not by name:

- pytest-split's ``.test_durations``: a JSON object ``{"tests/test_a.py::test_x": 0.12}``,
  or its older form, a list of ``[node id, seconds]`` pairs;
- JUnit XML as pytest's ``--junitxml`` writes it: each ``<testcase>`` gives a node id
  from its ``file`` (pytest's xunit1 family) or else its dotted ``classname``, plus its
  ``name``, and ``time`` is its seconds. A node id met more than once (reruns) gets the
  sum of its times; skipped test cases are left out, their time says nothing of the test.

Every problem is raised as :class:`farm.core.errors.DurationsFileError` in one line naming
the file: ``history.json: duration of 'a.py::t' is negative (-1.0)``.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from pathlib import Path

from farm.core.errors import DurationsFileError

PathLike = str | os.PathLike[str]

_JSON_SHAPE = "expected a JSON object of node id to seconds, or a list of [node id, seconds]"


def read_history_file(path: PathLike) -> dict[str, float]:
    """The durations in a ``.test_durations`` JSON or JUnit XML file."""
    name = os.fspath(path)
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise DurationsFileError(f"{name}: cannot read: {e.strerror or e}") from e
    start = data.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    if not start:
        raise DurationsFileError(f"{name}: file is empty")
    if start == b"<":
        return _read_junit_xml(name, data)
    return _read_json(name, data)


def write_test_durations(path: PathLike, durations: Mapping[str, float]) -> None:
    """Write ``durations`` as pytest-split does: a JSON object, keys sorted, 4-space indent.

    The file is replaced atomically, so a reader never sees half of it.
    """
    name = os.fspath(path)
    checked = {node_id: _duration(name, node_id, seconds) for node_id, seconds in durations.items()}
    target = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(checked, f, sort_keys=True, indent=4)
                f.write("\n")
            os.replace(tmp, target)
        except BaseException:
            os.unlink(tmp)
            raise
    except OSError as e:
        raise DurationsFileError(f"{name}: cannot write: {e.strerror or e}") from e


def _read_json(name: str, data: bytes) -> dict[str, float]:
    try:
        parsed = json.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError as e:
        raise DurationsFileError(f"{name}: not UTF-8 text ({e.reason} at byte {e.start})") from e
    except json.JSONDecodeError as e:
        raise DurationsFileError(
            f"{name}: neither JSON nor JUnit XML: {e.msg} at line {e.lineno} column {e.colno}"
        ) from e
    if isinstance(parsed, dict):
        pairs = list(parsed.items())
    elif isinstance(parsed, list):
        pairs = [_pair(name, index, item) for index, item in enumerate(parsed)]
    else:
        raise DurationsFileError(f"{name}: {_JSON_SHAPE}, got {_json_kind(parsed)}")
    # In the list form a repeated id overrides, as pytest-split's own conversion did.
    return {_node_id(name, node_id): _duration(name, node_id, value) for node_id, value in pairs}


def _pair(name: str, index: int, item: object) -> tuple[object, object]:
    if isinstance(item, list) and len(item) == 2:
        return item[0], item[1]
    raise DurationsFileError(f"{name}: item {index} is not a [node id, seconds] pair: {item!r:.80}")


def _read_junit_xml(name: str, data: bytes) -> dict[str, float]:
    # JUnit files never need a DTD; refusing one rules out entity-expansion bombs.
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise DurationsFileError(f"{name}: XML with a DOCTYPE is not accepted as JUnit XML")
    try:
        root = ET.fromstring(data)
    except ET.ParseError as e:
        raise DurationsFileError(f"{name}: not valid XML ({e})") from e
    if root.tag not in ("testsuites", "testsuite"):
        raise DurationsFileError(
            f"{name}: not JUnit XML: root element is <{root.tag}>, not <testsuites>"
        )
    durations: dict[str, float] = {}
    for index, case in enumerate(root.iter("testcase")):
        test_name = case.get("name")
        if not test_name:
            raise DurationsFileError(f"{name}: testcase {index} has no name")
        node_id = junit_node_id(case.get("classname", ""), test_name, case.get("file"))
        time_text = case.get("time")
        if time_text is None:
            raise DurationsFileError(f"{name}: testcase {node_id!r} has no time")
        try:
            seconds: object = float(time_text)
        except ValueError:
            seconds = time_text
        duration_s = _duration(name, node_id, seconds)
        if case.find("skipped") is None:
            durations[node_id] = durations.get(node_id, 0.0) + duration_s
    return durations


def junit_node_id(classname: str, name: str, file: str | None = None) -> str:
    """The pytest node id a JUnit ``<testcase>`` stands for.

    pytest writes ``classname`` as the test file's path with ``/`` turned to ``.`` and
    ``.py`` dropped, then any class names (``tests.test_x.TestA``), and ``name`` as the
    function with its parameters (``test_b[1]``). With ``file`` the module is known;
    without it, the module is the dotted parts before the first capitalised one (pytest
    collects classes named ``Test*``), a guess that fails only for capitalised packages.
    """
    parts = [part for part in classname.split(".") if part]
    split = next((i for i, part in enumerate(parts) if part[:1].isupper()), len(parts))
    if file:
        module = file.replace("\\", "/")
        dotted = module.removesuffix(".py").replace("/", ".").split(".")
        if parts[: len(dotted)] == dotted:
            split = len(dotted)
    else:
        module = "/".join(parts[:split]) + ".py" if split else ""
    classes = parts[split:]
    return "::".join([module, *classes, name]) if module else "::".join([*classes, name])


def _node_id(name: str, node_id: object) -> str:
    if not isinstance(node_id, str) or not node_id:
        raise DurationsFileError(f"{name}: node id {node_id!r:.80} is not a non-empty string")
    return node_id


def _duration(name: str, node_id: object, value: object) -> float:
    # bool is an int to Python, but true is no duration.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise DurationsFileError(f"{name}: duration of {node_id!r} is not a number ({value!r:.40})")
    if not math.isfinite(value):
        raise DurationsFileError(f"{name}: duration of {node_id!r} is not finite ({value!r})")
    if value < 0:
        raise DurationsFileError(f"{name}: duration of {node_id!r} is negative ({value!r})")
    return float(value)


def _json_kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    return "a string" if isinstance(value, str) else type(value).__name__
