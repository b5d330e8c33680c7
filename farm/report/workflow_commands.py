"""GitHub Actions workflow commands for a run's failures: one ``::error`` line per
failing test, which GitHub shows as an annotation on the line that failed.

The format is ``::error file=PATH,line=N,title=TITLE::MESSAGE``. GitHub reads
``%25``, ``%0D`` and ``%0A`` back as ``%``, CR and LF in both the message and the
properties, and ``%3A`` and ``%2C`` as ``:`` and ``,`` in the properties, so a
message of many lines stays one command line and nothing a test printed ends a
property early. GitHub shows at most 10 error annotations per step: the first
``limit`` failures get a line, and one ``::notice`` counts the rest.

Everything a run prints between :func:`stop_commands` and :func:`resume_commands`
is not read as a command: tests' output, shown in the summary, cannot issue one.
"""

from __future__ import annotations

import posixpath
from collections.abc import Sequence

from farm.core import defaults
from farm.core.domain import RunSummary, TestResult
from farm.report.failure_location import failure_location

# How much of a failure's error an annotation carries: GitHub cuts longer ones.
MESSAGE_LINES = 30
MESSAGE_CHARS = 4000


def escape_data(text: str) -> str:
    """``text`` as a command's message."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """``text`` as a command's property value."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def command(name: str, message: str, properties: Sequence[tuple[str, str]] = ()) -> str:
    """One workflow command line, ``::name k=v,k=v::message``, escaped."""
    given = ",".join(f"{key}={escape_property(value)}" for key, value in properties)
    return f"::{name}{' ' + given if given else ''}::{escape_data(message)}"


def stop_commands(token: str) -> str:
    """The line after which GitHub reads no command until :func:`resume_commands`."""
    return f"::stop-commands::{token}"


def resume_commands(token: str) -> str:
    return f"::{token}::"


def failure_commands(
    summary: RunSummary, *, path_prefix: str = "", limit: int = defaults.CI_ERROR_ANNOTATIONS
) -> list[str]:
    """``::error`` lines for the run's failures that count against it (quarantined
    ones do not), then lost tests, at most ``limit`` of them, then a ``::notice``
    counting the others. ``path_prefix`` is the rootdir's folder in the repository
    ("" when they are one), as GitHub wants paths from the repository's top."""
    quarantined = set(summary.quarantined_failures)
    failing = [r for r in summary.results if r.outcome.is_failure and r.node_id not in quarantined]
    lines: list[str] = []
    for result in failing[:limit]:
        path, line = failure_location(result.node_id, result.longrepr)
        properties = [("file", _joined(path_prefix, path))]
        if line is not None:
            properties.append(("line", str(line)))
        properties.append(("title", result.node_id))
        lines.append(command("error", failure_message(result), properties))
    room = max(limit - len(lines), 0)
    for node_id in summary.missing[:room]:
        properties = [("file", _joined(path_prefix, node_id.split("::", 1)[0]))]
        properties.append(("title", node_id))
        lines.append(command("error", "lost: no result came back for this test", properties))
    more = len(failing) + len(summary.missing) - len(lines)
    if more > 0:
        shown = f"{len(lines)} failing tests are annotated"
        lines.append(command("notice", f"{shown}; {more} more failed: see the log and the summary",
                             [("title", "farm")]))  # fmt: skip
    return lines


def failure_message(result: TestResult) -> str:
    """What an annotation says of a failure: pytest's ``E`` lines (the error and its
    explanation), else the last lines of the report, else the outcome."""
    lines = result.longrepr.splitlines()
    marked = [line[1:] for line in lines if line == "E" or line.startswith(("E ", "E\t"))]
    if marked:
        indent = min((len(s) - len(s.lstrip()) for s in marked if s.strip()), default=0)
        chosen = [line[indent:].rstrip() for line in marked]
    else:
        chosen = [line.rstrip() for line in lines if line.strip()][-MESSAGE_LINES:]
    text = "\n".join(chosen[:MESSAGE_LINES]).strip()
    if len(text) > MESSAGE_CHARS:
        text = text[:MESSAGE_CHARS] + "..."
    return text or f"{result.outcome.value}"


def _joined(prefix: str, path: str) -> str:
    return posixpath.join(prefix, path) if prefix else path


__all__ = [
    "command",
    "escape_data",
    "escape_property",
    "failure_commands",
    "failure_message",
    "resume_commands",
    "stop_commands",
]
