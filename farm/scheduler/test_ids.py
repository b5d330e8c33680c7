"""Reading a test ids file for ``farm plan --tests``: one node id a line.

A *test ids file* holds one node id per line, as ``pytest --collect-only -q``
prints them. (Durations files are read by :mod:`farm.report.history_io`.) Every problem
is reported as one line naming the file and what is wrong with it.
"""

from __future__ import annotations

from pathlib import Path

from farm.core.errors import UsageError


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
