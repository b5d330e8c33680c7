"""A failing test's *signature*: its exception and message with the run-to-run noise
taken out, so that the tests that failed for one reason fall into one group.

Where the exception is read from, in a traceback as farm stores it (a result's
``longrepr``):

* pytest's styles (long, short, auto) mark the lines of the error with ``E``
  (``E   ConnectionRefusedError: [Errno 111] Connection refused``); the long style
  ends with ``path:line: Type``, which names the type when the ``E`` lines only
  show the failing ``assert``;
* Python's own style (``--tb=native``, an exception group) ends with the
  exception's line (``json.decoder.JSONDecodeError: Expecting value: ...``); an
  exception group's first such line is the group's own;
* a chained exception (``During handling of the above exception...``, ``The above
  exception was the direct cause...``) counts by its last link, the one that
  failed the test;
* without one (farm's own reports of timeouts and crashes, a strict xpass) the
  outcome is the signature: ``timeout``, ``crashed: <first line>``.

The noise, in the message: numbers become ``<n>``, hex addresses ``<addr>``, file
paths (absolute, relative with an extension, Windows) ``<path>``, UUIDs ``<uuid>``,
hashes ``<hash>``, temporary names (``tmpa1b2c3d4``) ``<tmp>``, timestamps
``<time>``; blanks are collapsed and the whole bounded to SIGNATURE_MAX_CHARS.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

SIGNATURE_MAX_CHARS = 200  # a signature is a heading on the run page, not the traceback
_ELLIPSIS = "…"

# The lines that join the links of a chained exception, as Python and pytest print them.
_CHAIN_LINES = (
    "During handling of the above exception, another exception occurred:",
    "The above exception was the direct cause of the following exception:",
)
_GROUP_HEADER = "Exception Group Traceback"
# pytest's ``E`` marker, then the error's line (blanks after the marker are indentation).
_ERROR_LINE = re.compile(r"^E(?:\s+|$)(?P<text>.*)$")
# "Type" or "Type: message", a dotted name whose last part is capitalised, as classes are.
_EXCEPTION = re.compile(
    r"^(?P<type>(?:[A-Za-z_]\w*\.)*[A-Z]\w*)(?::(?:\s+(?P<message>.*)|\s*$)|\s*$)"
)
# pytest's long style ends each chain link with "path:line: Type".
_PLACE = re.compile(r"^(?![E>]\s)\S[^\n]*?:\d+: (?P<type>(?:[A-Za-z_]\w*\.)*[A-Z]\w*)\s*$")
# An exception group's lines carry "|" and "+-" margins.
_GROUP_MARGIN = re.compile(r"^[\s|+-]*(?:\|\s?)")

# The noise, in the order it is taken out: the longer and more specific first, so that
# a UUID is not read as numbers, nor a path's digits as a number.
_NOISE: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(
            r"\b[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}\b"
        ),
        "<uuid>",
    ),
    (
        re.compile(
            r"\b\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?)?"
            r"(?:Z|[+-]\d{2}:?\d{2}\b)?|\b\d{1,2}:\d{2}:\d{2}(?:[.,]\d+)?\b"
        ),
        "<time>",
    ),
    (re.compile(r"\b0[xX][0-9a-fA-F]+\b"), "<addr>"),
    # Windows: C:\dir\file, C:/dir/file, \\server\share\file (backslashes doubled in reprs).
    (
        re.compile(r"(?:\b[A-Za-z]:|\\\\[\w.$-]+)(?:[\\/]{1,2}[^\\/\s'\"<>|:*?,;()\[\]]+)+[\\/]?"),
        "<path>",
    ),
    # POSIX absolute, after a blank, a quote, a bracket or "=" ("file:///x" stays a URL).
    (
        re.compile(r"(?:(?<=^)|(?<=[\s'\"(\[=<]))~?(?:/[\w.@+~%-]+)+/?"),
        "<path>",
    ),
    # Relative: "./x", "../x", or dir/name.ext (a bare "and/or" is not a path).
    (
        re.compile(
            r"(?<![\w/.<])(?:\.{1,2}/(?:[\w.@+-]+/)*[\w.@+-]+"
            r"|(?:[\w@+-][\w.@+-]*/)+[\w@+-][\w@+-]*\.[A-Za-z]\w{0,7})\b/?"
        ),
        "<path>",
    ),
    (re.compile(r"\btmp[\w-]{4,}"), "<tmp>"),
    # A hash: hex digits with at least one digit and one letter among them.
    (
        re.compile(r"\b(?=[0-9a-fA-F]*\d)(?=[0-9a-fA-F]*[a-fA-F])[0-9a-fA-F]{7,}\b"),
        "<hash>",
    ),
    # Numbers, also after "_" or "-" ("user_12"), but not inside a name ("int32", "sha256").
    (re.compile(r"(?:(?<![\w.])|(?<=_))\d+(?:\.\d+)*(?:[eE][+-]?\d+)?"), "<n>"),
    (re.compile(r"\s+"), " "),
)


@dataclass(frozen=True)
class Signature:
    """What a failure is: ``text`` the signature groups are keyed by (``Type:
    normalised message``, or one from the outcome), ``exception_type`` as the
    traceback names it ("" when it names none), ``message`` as it was written (its
    first line, bounded)."""

    text: str
    exception_type: str
    message: str


class FailedTest(Protocol):
    """What grouping reads of a failure: :class:`farm.core.domain.TestResult` fits."""

    @property
    def node_id(self) -> str: ...

    @property
    def outcome(self) -> str: ...

    @property
    def longrepr(self) -> str: ...


@dataclass(frozen=True)
class FailureGroup:
    """The tests that failed with one signature: ``example_message`` is the first
    one's message as written; ``node_ids`` in the order they came, each once."""

    signature: str
    exception_type: str
    example_message: str
    node_ids: tuple[str, ...]

    @property
    def count(self) -> int:
        return len(self.node_ids)

    def headline(self) -> str:
        return group_headline(self.count, self.signature)


def group_headline(tests: int, signature: str) -> str:
    """``12 tests failed with ConnectionRefusedError: [Errno <n>] ...``."""
    return f"{'1 test' if tests == 1 else f'{tests} tests'} failed with {signature}"


def normalise(text: str) -> str:
    """``text`` with its noise replaced by placeholders, blanks collapsed, bounded."""
    for pattern, placeholder in _NOISE:
        text = pattern.sub(placeholder, text)
    return _bounded(text.strip())


def failure_signature(longrepr: str, outcome: str = "failed") -> Signature:
    """The signature of a failure whose traceback is ``longrepr``; ``outcome`` (a
    :class:`farm.core.domain.Outcome` value) names it when the traceback holds no
    exception, and always for ``timeout`` and ``crashed``: farm wrote those, and
    the process output they carry may quote any exception."""
    outcome = str(getattr(outcome, "value", outcome)) or "failed"
    found = None if outcome in ("timeout", "crashed") else _exception(longrepr)
    if found is None:
        return _from_outcome(longrepr, outcome)
    exception_type, message = found
    message = _bounded(message.strip())
    normalised = normalise(message)
    head = exception_type or outcome  # pytest's "E" lines without a type ("E  boom")
    text = f"{head}: {normalised}" if normalised else head
    return Signature(_bounded(text), exception_type, message)


def group_failures(failures: Iterable[FailedTest]) -> list[FailureGroup]:
    """The failures grouped by signature, the largest group first; groups of one size
    in the order their first failure came, so the page does not reshuffle."""
    groups: dict[str, tuple[Signature, list[str]]] = {}
    for failure in failures:
        signature = failure_signature(failure.longrepr, failure.outcome)
        _, node_ids = groups.setdefault(signature.text, (signature, []))
        if failure.node_id not in node_ids:
            node_ids.append(failure.node_id)
    made = [
        FailureGroup(key, first.exception_type, first.message, tuple(node_ids))
        for key, (first, node_ids) in groups.items()
    ]
    return sorted(made, key=lambda group: -group.count)  # sorted() is stable


def _exception(longrepr: str) -> tuple[str, str] | None:
    """``(type, message)`` of the exception that failed the test, None when none shows."""
    lines = _last_link(longrepr.splitlines())
    if any(_GROUP_HEADER in line for line in lines):
        return _group_exception(lines)
    placed = [m["type"] for m in map(_PLACE.match, lines) if m]
    named = placed[-1] if placed else None
    errors = [m["text"] for m in map(_ERROR_LINE.match, lines) if m]
    if errors:
        return _from_error_lines(errors, named)
    for line in reversed(lines):
        match = _EXCEPTION.match(line)
        if match and not line.startswith("Traceback"):
            return match["type"], match["message"] or ""
    return (named, "") if named else None


def _last_link(lines: list[str]) -> list[str]:
    """The lines after the last top-level chain line (an exception group's margins
    hold its members' chains)."""
    for index in range(len(lines) - 1, -1, -1):
        if lines[index].strip() in _CHAIN_LINES and not lines[index].lstrip().startswith("|"):
            return lines[index + 1 :]
    return lines


def _group_exception(lines: list[str]) -> tuple[str, str] | None:
    """The group's own line: the first exception line within the margins."""
    for line in lines:
        margin = _GROUP_MARGIN.match(line)
        inner = line[margin.end() :] if margin else line
        match = _EXCEPTION.match(inner.strip())
        if match and not inner.lstrip().startswith(("Traceback", "File ")):
            return match["type"], match["message"] or ""
    return None


def _from_error_lines(errors: list[str], named: str | None) -> tuple[str, str]:
    """From pytest's ``E`` lines: the first that names the type the place line names
    (or any type, without one); the failing ``assert`` when none does."""
    for text in errors:
        match = _EXCEPTION.match(text.strip())
        if match and (named is None or _same_type(match["type"], named)):
            return match["type"], match["message"] or ""
    first = next((text.strip() for text in errors if text.strip()), "")
    if named is None and first.startswith("assert"):
        named = "AssertionError"
    return (named or "", first)


def _same_type(written: str, named: str) -> bool:
    """pytest's place line names the class alone; the ``E`` line may qualify it."""
    return written == named or written.rsplit(".", 1)[-1] == named.rsplit(".", 1)[-1]


def _from_outcome(longrepr: str, outcome: str) -> Signature:
    first = next((line.strip() for line in longrepr.splitlines() if line.strip()), "")
    if outcome == "timeout":
        return Signature("timeout", "", _bounded(first))
    normalised = normalise(first)
    text = f"{outcome}: {normalised}" if normalised else outcome
    return Signature(_bounded(text), "", _bounded(first))


def _bounded(text: str) -> str:
    if len(text) <= SIGNATURE_MAX_CHARS:
        return text
    return text[: SIGNATURE_MAX_CHARS - len(_ELLIPSIS)] + _ELLIPSIS


__all__ = [
    "SIGNATURE_MAX_CHARS",
    "FailedTest",
    "FailureGroup",
    "Signature",
    "failure_signature",
    "group_failures",
    "group_headline",
    "normalise",
]
