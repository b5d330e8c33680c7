"""Reading the two plain files a user may hand to ``farm plan``: durations and test ids.

A *durations file* is one JSON object mapping node id to seconds, as
``bench/make_suite.py`` writes (``{"tests/test_a.py::test_x": 0.25, ...}``); it is
what history looks like before there is a results store. A *test ids file* holds one
node id per line, as ``pytest --collect-only -q`` prints them.

Every problem is reported as one line naming the file and what is wrong with it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from farm.errors import DurationsFileError, UsageError


def _read_text(path: Path, kind: str, error: type[UsageError]) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError as e:
        raise error(f"{path}: no such {kind} file") from e
    except IsADirectoryError as e:
        raise error(f"{path}: is a directory, not a {kind} file") from e
    except UnicodeDecodeError as e:
        raise error(f"{path}: not UTF-8 text (byte {e.start})") from e
    except OSError as e:
        raise error(f"{path}: cannot read {kind} file ({e.strerror})") from e


def load_durations(path: str | Path) -> dict[str, float]:
    """Node id -> seconds from a durations file; DurationsFileError if unusable.

    Values must be finite numbers >= 0 (``true``/``false`` are not numbers here).
    """
    path = Path(path)
    text = _read_text(path, "durations", DurationsFileError)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise DurationsFileError(
            f"{path}: not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})"
        ) from e
    if not isinstance(data, dict):
        raise DurationsFileError(
            f"{path}: expected a JSON object of node id -> seconds, got {type(data).__name__}"
        )
    durations: dict[str, float] = {}
    for node_id, seconds in data.items():
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
            raise DurationsFileError(
                f"{path}: duration of {node_id!r} is {seconds!r}, not a number of seconds"
            )
        if not math.isfinite(seconds) or seconds < 0:
            raise DurationsFileError(
                f"{path}: duration of {node_id!r} is {seconds!r}, must be finite and >= 0"
            )
        durations[node_id] = float(seconds)
    return durations


def load_test_ids(path: str | Path) -> list[str]:
    """Node ids from a test ids file, in file order; UsageError if unreadable.

    Surrounding whitespace is stripped; blank lines and lines starting with ``#`` are
    ignored. A node id listed twice is kept once, at its first place: lists are often
    assembled from several sources, and running one test twice in a run would give it
    two final results. The summary lines of ``pytest --collect-only -q`` ("3 tests
    collected in 0.1s") are not node ids and are rejected rather than guessed at.
    """
    path = Path(path)
    text = _read_text(path, "test ids", UsageError)
    seen: dict[str, None] = {}  # insertion-ordered set
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if " " in line and "::" not in line:
            raise UsageError(f"{path}: line {number} is not a node id: {line[:80]!r}")
        seen.setdefault(line, None)
    return list(seen)
