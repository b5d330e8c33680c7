"""pytest-cov in a test process of a shard: it measures, farm reports.

Loaded with ``-p farm.worker.coverage_capture`` into the test process of a run that
measures coverage. Each such process has ``COVERAGE_FILE`` pointing into a folder
of its own (see :mod:`farm.worker.spawn`), so pytest-cov's data never lands in the
tree, where the processes of other shards would overwrite it.

- Before pytest-cov makes its plugin (in ``pytest_load_initial_conftests``, before
  any conftest or test module is imported, so measuring starts as early as under
  pytest), this plugin's wrapper of that hook tells it to print no report and to
  apply no ``--cov-fail-under``: those are the submitter's, over every shard's data.
- pytest-cov stops and saves its data when the run loop ends. In
  ``pytest_sessionfinish``, before the ``F`` line, :func:`save` (called by
  :mod:`farm.worker.plugin`) merges the data files of the process's folder with
  coverage.py's API and writes them to the file the shard names, with a one-line
  header (:func:`write_capture`); the runner reads it back with :func:`read_capture`.

This module imports only the standard library and pytest at import: coverage.py is
imported when there is data to merge.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import sys
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

DATA_FILE_ENV = "COVERAGE_FILE"
# Taken when ``-p`` loads this plugin, before any test code could change it.
_DATA_FILE = os.environ.get(DATA_FILE_ENV, "")
_HEADER_LIMIT_BYTES = 64 * 1024
_SQLITE_SIDE_FILES = ("-journal", "-wal", "-shm")


class CaptureError(Exception):
    """A capture file the runner cannot use (missing, not a file, too large, malformed)."""


@pytest.hookimpl(wrapper=True)
def pytest_load_initial_conftests(
    early_config: pytest.Config, parser: pytest.Parser, args: list[str]
) -> Generator[None, None, None]:
    options = early_config.known_args_namespace
    if hasattr(options, "cov_report"):
        # pytest-cov reads these early options when it makes its plugin, inside this
        # hook: no report at all ({"": None}), and a fail-under of 0 is no check.
        options.cov_report = {"": None}
        options.cov_fail_under = 0
    return (yield)


def save(out: str, config: pytest.Config) -> None:
    """Merge this process's coverage data and write it to ``out`` with its header."""
    header: dict[str, Any] = {"platform": _platform(), "error": ""}
    data = b""
    try:
        if config.pluginmanager.get_plugin("_cov") is None:
            header["error"] = "pytest-cov did not measure the test process (is it installed?)"
        else:
            data = _merged(Path(_DATA_FILE))
    except Exception as e:  # the data is the user's environment's: never fail the shard
        header["error"] = f"cannot read the test process's coverage data: {type(e).__name__}: {e}"
    write_capture(out, header, data)


def _merged(data_file: Path) -> bytes:
    """The data of ``data_file`` and of its suffixed siblings (a configuration with
    ``parallel``, subprocesses measured), merged, as ``CoverageData.dumps`` makes it."""
    from coverage import CoverageData

    combined = CoverageData(no_disk=True)
    for path in sorted(data_file.parent.iterdir()):
        name = path.name
        ours = name == data_file.name or name.startswith(data_file.name + ".")
        if ours and not name.endswith(_SQLITE_SIDE_FILES):
            part = CoverageData(basename=str(path))
            part.read()
            combined.update(part)
    return combined.dumps()


def _platform() -> str:
    """``platform linux, python 3.11.7-final-0``: how pytest-cov names a test process."""
    version = "{}.{}.{}-{}-{}".format(*sys.version_info[:5])
    return f"platform {sys.platform}, python {version}"


def write_capture(out: str, header: dict[str, Any], data: bytes) -> None:
    with open(out, "wb") as f:
        f.write(json.dumps(header).encode("utf-8") + b"\n" + data)


def read_capture(path: str, limit_bytes: int) -> tuple[dict[str, Any], bytes]:
    """The header and the data of the capture file at ``path``.

    The file was written by untrusted test code: a link is not followed, a file
    that is not regular (a FIFO would block) or larger than ``limit_bytes`` is
    refused, each with :class:`CaptureError`.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        raise CaptureError("the test process wrote no coverage data") from None
    except OSError as e:
        raise CaptureError(f"cannot open the coverage data: {e}") from None
    with contextlib.closing(os.fdopen(fd, "rb")) as f:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise CaptureError("the coverage data is not a regular file")
        if info.st_size > limit_bytes + _HEADER_LIMIT_BYTES:
            raise CaptureError(
                f"the coverage data of {info.st_size} bytes is over the limit of "
                f"{limit_bytes} bytes"
            )
        content = f.read(limit_bytes + _HEADER_LIMIT_BYTES + 1)
    line, newline, data = content.partition(b"\n")
    try:
        header = json.loads(line) if newline else None
    except ValueError:
        header = None
    if not isinstance(header, dict):
        raise CaptureError("the coverage data has no header")
    if len(data) > limit_bytes:
        raise CaptureError(
            f"the coverage data of {len(data)} bytes is over the limit of {limit_bytes} bytes"
        )
    return header, data
