"""What farm tells a forge about a change, as plain data, and the forges' limits on it.

A :class:`StatusReport` is forge-neutral: a :class:`StatusState`, a one-line
description, a link to the run and, for check runs, a markdown summary and
:class:`Annotation` s (one per failed test, on the line that failed). The clients in
:mod:`farm.forge.github` and :mod:`farm.forge.gitlab` map it to their forge's
words and cut it to their forge's limits with the helpers here.

Pure: no HTTP, no clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from urllib.parse import quote

from farm.core.domain import Verdict
from farm.core.errors import SettingsError

# GitHub's limits (GitLab's are wider, so one cut serves both).
DESCRIPTION_LIMIT = 140  # characters of a commit status's description
ANNOTATIONS_PER_REQUEST = 50  # annotations in one check-run request
ANNOTATION_MESSAGE_LIMIT_BYTES = 64 * 1024
ANNOTATION_TITLE_LIMIT = 255
SUMMARY_LIMIT = 65535  # characters of a check run's summary
ELLIPSIS = "…"


class StatusState(str, Enum):
    """A change's state as forges show it next to the commit."""

    PENDING = "pending"  # the run is under way
    SUCCESS = "success"
    FAILURE = "failure"  # tests failed: the change broke something
    ERROR = "error"  # no trustworthy answer: the farm, not the change, failed


@dataclass(frozen=True)
class Annotation:
    """A failure shown on a line of a file: ``path`` relative to the repository's root,
    ``line`` 1-based (None: the file as a whole), ``title`` its node id, ``message``
    the failure's text."""

    path: str
    line: int | None
    title: str
    message: str


@dataclass(frozen=True)
class StatusReport:
    """What one change's status says; ``target_url`` "" links nowhere."""

    state: StatusState
    description: str
    target_url: str
    summary_markdown: str = ""  # check runs only: the page behind the status
    annotations: tuple[Annotation, ...] = ()  # check runs only


# Every verdict named, so a new one is a decision rather than a default.
_VERDICT_STATES: dict[Verdict, StatusState] = {
    Verdict.PASSED: StatusState.SUCCESS,
    Verdict.FLAKY: StatusState.SUCCESS,  # the flaky policy already chose: failed if "fail"
    Verdict.FAILED: StatusState.FAILURE,
    Verdict.ERROR: StatusState.ERROR,
    # pytest exits non-zero with no test; a gate must not pass a change that tested nothing.
    Verdict.NO_TESTS: StatusState.ERROR,
    Verdict.INTERRUPTED: StatusState.ERROR,  # stopped before answering
}


def state_for_verdict(verdict: Verdict) -> StatusState:
    """The state a change with this verdict shows."""
    return _VERDICT_STATES[verdict]


def short_description(text: str, limit: int = DESCRIPTION_LIMIT) -> str:
    """``text`` on one line and at most ``limit`` characters, "…" marking a cut."""
    line = " ".join(text.split())
    if len(line) <= limit:
        return line
    return line[: limit - len(ELLIPSIS)].rstrip() + ELLIPSIS


def error_description(state: StatusState, description: str) -> str:
    """The description for a forge with no "error" state: it says error itself."""
    text = description
    if state is StatusState.ERROR and not text.lower().startswith("error"):
        text = f"error: {text}" if text else "error"
    return short_description(text)


def cut_bytes(text: str, limit_bytes: int) -> str:
    """``text`` cut to at most ``limit_bytes`` bytes of UTF-8, on a character boundary.

    A lone surrogate (undecodable output kept by ``surrogateescape``) becomes "?".
    """
    data = text.encode("utf-8", "replace")
    if len(data) <= limit_bytes:
        return data.decode("utf-8")
    marker = ELLIPSIS.encode("utf-8")
    # Cutting inside a character leaves a partial sequence, which "ignore" drops.
    return data[: limit_bytes - len(marker)].decode("utf-8", "ignore") + ELLIPSIS


def cut_text(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, "…" marking a cut."""
    return text if len(text) <= limit else text[: limit - len(ELLIPSIS)] + ELLIPSIS


def annotation_batches(
    annotations: Sequence[Annotation], size: int = ANNOTATIONS_PER_REQUEST
) -> tuple[tuple[Annotation, ...], ...]:
    """``annotations`` in order, in runs of at most ``size``: one per request."""
    return tuple(tuple(annotations[i : i + size]) for i in range(0, len(annotations), size))


def split_annotations(
    annotations: Sequence[Annotation], limit: int
) -> tuple[tuple[Annotation, ...], tuple[Annotation, ...]]:
    """``(annotated, listed)``: the first ``limit`` annotations that name a file, and
    the rest, which the summary lists (GitHub refuses an annotation without a path)."""
    placeable = [a for a in annotations if a.path]
    unplaced = [a for a in annotations if not a.path]
    return tuple(placeable[:limit]), tuple(placeable[limit:] + unplaced)


def summary_with_listed(summary: str, listed: Sequence[Annotation]) -> str:
    """``summary`` followed by one line per failure not annotated, cut to GitHub's limit."""
    if not listed:
        return cut_text(summary, SUMMARY_LIMIT)
    lines = [f"{len(listed)} more not annotated on their lines:", ""]
    for a in listed:
        where = f"{a.path}:{a.line}" if a.path and a.line else a.path
        title = " ".join(a.title.split())
        lines.append(f"- `{where}` {title}" if where else f"- {title}")
    head = f"{summary}\n\n" if summary else ""
    return cut_text(head + "\n".join(lines), SUMMARY_LIMIT)


def repository_path(name: str, *, parts: int | None = None) -> str:
    """The project path of a repository named ``host/path``: what follows the host.

    ``parts`` is the number of segments the forge wants (GitHub: owner and repo);
    None accepts any number (GitLab's nested groups).
    """
    host, _, path = name.partition("/")
    segments = path.split("/")
    if (
        not host
        or not path
        or any(s in ("", ".", "..") for s in segments)
        or (parts is not None and len(segments) != parts)
    ):
        shape = "host/owner/repo" if parts == 2 else "host/group/project"
        raise SettingsError(f"repository {name!r} is not named {shape}: no forge can take it")
    return path


def quote_segment(text: str) -> str:
    """``text`` as one URL path segment: every "/" and "%" escaped."""
    return quote(text, safe="")


__all__ = [
    "ANNOTATIONS_PER_REQUEST",
    "DESCRIPTION_LIMIT",
    "Annotation",
    "StatusReport",
    "StatusState",
    "annotation_batches",
    "cut_bytes",
    "cut_text",
    "error_description",
    "quote_segment",
    "repository_path",
    "short_description",
    "split_annotations",
    "state_for_verdict",
    "summary_with_listed",
]
