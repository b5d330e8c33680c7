"""What a test process tells the submitter so that it can print pytest's own sections.

pytest's end-of-run text (the FAILURES and ERRORS sections, the warnings summary,
the slowest durations, the short test summary) is made from its reports, which
live in the test process. A result therefore carries a :class:`ResultDetail`:
each report those sections show, already rendered where pytest renders it with the
user's options (``--tb``, ``--show-capture``), each warning as pytest formats it,
and the durations of its phases. The submitter only lays them out (rules, order,
folding), at its own terminal's width.

A detail is optional on the wire and in the store: a result without one (sent by
an older worker, made by farm itself, read back from the database) is reported as
farm reported it before. The test process sends only what the run's options will
show: warnings under the summary's ``w``, durations under ``--durations``,
passed tests' output under ``-rP``.

Paths in texts that name the suite's files are sent relative to the rootdir
(:class:`Place`), since a worker running a snapshot has the tree elsewhere.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")

Sections = tuple[tuple[str, str], ...]
"""Captured output as pytest shows it after a report: ``(title, content)`` pairs,
such as ``("Captured stdout call", "hello\\n")``."""


@dataclass(frozen=True)
class Place:
    """A line of text that starts at a file and line, as ``path:lineno: text``.

    ``path`` is relative to the rootdir when the file is in the suite's tree, else
    absolute; "" when the text names no file (then it is all in ``text``).
    ``lineno`` is None when pytest names no line (a skip mark, folded per file).
    """

    path: str
    lineno: int | None
    text: str


@dataclass(frozen=True)
class PytestReport:
    """One report of a test that pytest's end-of-run sections show.

    ``category`` is the key pytest's terminal reporter files it under (``failed``,
    ``error``, ``skipped``, ``xfailed``, ``xpassed``, ``passed``); ``word`` its
    verbose word (``FAILED``, ``SUBFAILED(i=1)``, ``XFAIL``); ``head_line`` the title
    of its entry (``TestA.test_b[1]``). ``message`` is what the short summary adds
    after the node id (the crash message, the xfail reason, the skip reason; None
    for none). ``text`` is the report as pytest prints it in its section, ""
    when the options show none; ``sections`` the captured output printed after it,
    ``teardown`` the output of the test's teardown printed after that. ``crash`` is
    the crash line ``--tb=line`` prints; ``skip`` where a skip happened and why, as
    the short summary folds skips.
    """

    category: str
    when: str
    word: str
    head_line: str = ""
    message: str | None = None
    text: str = ""
    sections: Sections = ()
    teardown: Sections = ()
    crash: Place | None = None
    skip: Place | None = None


@dataclass(frozen=True)
class ResultDetail:
    """What one result carries for pytest's sections: its shown reports, its
    warnings (each a :class:`Place`: pytest's message of it), and ``(phase,
    seconds)`` for each of its reports under ``--durations``."""

    reports: tuple[PytestReport, ...] = ()
    warnings: tuple[Place, ...] = ()
    durations: tuple[tuple[str, float], ...] = ()

    def to_json(self) -> dict[str, Any]:
        """The detail as a JSON object; empty parts are left out."""
        data: dict[str, Any] = {}
        if self.reports:
            data["reports"] = [_report_json(r) for r in self.reports]
        if self.warnings:
            data["warnings"] = [_place_json(w) for w in self.warnings]
        if self.durations:
            data["durations"] = [[when, s] for when, s in self.durations]
        return data

    @classmethod
    def from_json(cls, data: object) -> ResultDetail:
        """The detail of ``data``; raises ValueError if it is malformed."""
        if not isinstance(data, dict):
            raise ValueError("a result's detail must be a JSON object")
        return cls(
            reports=tuple(_report(r) for r in _list(data, "reports")),
            warnings=tuple(_place(w) for w in _list(data, "warnings")),
            durations=tuple(_duration(d) for d in _list(data, "durations")),
        )


def _report_json(report: PytestReport) -> dict[str, Any]:
    data: dict[str, Any] = {"category": report.category, "when": report.when, "word": report.word}
    if report.head_line:
        data["head_line"] = report.head_line
    if report.message is not None:
        data["message"] = report.message
    if report.text:
        data["text"] = report.text
    if report.sections:
        data["sections"] = [list(s) for s in report.sections]
    if report.teardown:
        data["teardown"] = [list(s) for s in report.teardown]
    if report.crash is not None:
        data["crash"] = _place_json(report.crash)
    if report.skip is not None:
        data["skip"] = _place_json(report.skip)
    return data


def _report(data: object) -> PytestReport:
    if not isinstance(data, dict):
        raise ValueError("a shown report must be a JSON object")
    message = data.get("message")
    if message is not None and not isinstance(message, str):
        raise ValueError("a shown report's message must be a string")
    return PytestReport(
        category=_str(data, "category"),
        when=_str(data, "when"),
        word=_str(data, "word"),
        head_line=_optional(data, "head_line", _str, ""),
        message=message,
        text=_optional(data, "text", _str, ""),
        sections=_optional(data, "sections", _sections, ()),
        teardown=_optional(data, "teardown", _sections, ()),
        crash=_place(data["crash"]) if data.get("crash") is not None else None,
        skip=_place(data["skip"]) if data.get("skip") is not None else None,
    )


def _place_json(place: Place) -> list[Any]:
    return [place.path, place.lineno, place.text]


def _place(data: object) -> Place:
    if not (isinstance(data, list) and len(data) == 3):
        raise ValueError("a place must be [path, line, text]")
    path, lineno, text = data
    line_ok = lineno is None or (isinstance(lineno, int) and not isinstance(lineno, bool))
    if not (isinstance(path, str) and line_ok and isinstance(text, str)):
        raise ValueError("a place must be [path, line, text]")
    return Place(path, lineno, text)


def _duration(data: object) -> tuple[str, float]:
    if isinstance(data, list) and len(data) == 2 and isinstance(data[0], str):
        seconds = data[1]
        number = isinstance(seconds, int | float) and not isinstance(seconds, bool)
        if number and math.isfinite(seconds):
            return data[0], float(seconds)
    raise ValueError("a duration must be [phase, seconds]")


def _sections(data: dict[str, Any], key: str) -> Sections:
    value = data[key]
    if isinstance(value, list) and all(
        isinstance(s, list) and len(s) == 2 and all(isinstance(p, str) for p in s) for s in value
    ):
        return tuple((title, content) for title, content in value)
    raise ValueError(f"{key!r} must be a list of [title, content]")


def _list(data: dict[str, Any], key: str) -> list[Any]:
    value = data.get(key, [])
    if not isinstance(value, list):
        raise ValueError(f"{key!r} must be a list")
    return value


def _str(data: dict[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str):
        raise ValueError(f"{key!r} must be a string")
    return value


def _optional(
    data: dict[str, Any], key: str, parse: Callable[[dict[str, Any], str], T], default: T
) -> T:
    return parse(data, key) if key in data else default


__all__ = ["Place", "PytestReport", "ResultDetail", "Sections"]
