"""pytest's end-of-run text cut into its sections, for comparing farm's with pytest's.

A section starts at a rule of ``=`` (or ``!``) around its title and runs to the next
such rule; the last line of counts ends the text. What changes from run to run is
masked: times, object addresses, the percentage at the end of ``-v`` lines. The
slowest durations are compared as a set: their order is the order of the times.
Sections only farm prints (its slowest tests, lost tests, findings) and the lines it
adds after the short summary are left out of farm's side.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_RULE = re.compile(r"^(?P<fill>[=!])+ (?P<title>.+?) (?P=fill)+$")
_COUNTS = re.compile(r"^(?:=+ )?(?:\d+ [a-z][a-z ]*?(?:, \d+ [a-z][a-z ]*?)*|no tests ran) in \d")
_ADDRESS = re.compile(r"0x[0-9a-f]{6,}")
_PHASE_TIME = re.compile(r"^\d+\.\d+s (?=(setup|call|teardown) )")
_PERCENT = re.compile(r"\s+\[\s*\d+%\]$")
_VERBOSE = re.compile(r"^\S+ (PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS)\b")
# The lines farm adds after pytest's short summary (its verdict's message, its footer).
_FARM_LINE = re.compile(
    r"^((passed|failed|flaky|error|no_tests|interrupted): |first failure after "
    r"|retry budget of |change [0-9a-f]|snapshot [0-9a-f])"
)
_XML = re.compile(r"^-+ generated xml file: .* -+$")

# The titles of pytest's own sections; farm's own sections have other titles.
PYTEST_TITLES = re.compile(
    r"^(ERRORS|FAILURES|XFAILURES|warnings summary|PASSES|XPASSES|short test summary info"
    r"|slowest( \d+)? durations|Interrupted: .*|stopping after \d+ failures)$"
)


@dataclass(frozen=True)
class Text:
    """One run's end-of-run text: its ``-v`` lines and pytest's sections in order."""

    verbose: frozenset[str]
    sections: tuple[tuple[str, tuple[str, ...]], ...]


def cut(output: str) -> Text:
    """The ``-v`` lines and pytest's sections of ``output``, masked."""
    lines = [_ADDRESS.sub("0xADDR", line) for line in _ANSI.sub("", output).splitlines()]
    lines = [line for line in lines if not _XML.match(line)]
    verbose = frozenset(_PERCENT.sub("", line) for line in lines if _VERBOSE.match(line))
    sections: list[tuple[str, list[str]]] = []
    for line in lines:
        if _COUNTS.match(line) or line.startswith("farm: verdict"):
            break
        found = _RULE.match(line)
        if found:
            sections.append((found.group("title"), []))
        elif sections:
            sections[-1][1].append(line)
    kept = []
    for title, body in sections:
        if not PYTEST_TITLES.match(title):
            continue
        if title == "short test summary info" or title.startswith(("Interrupted", "stopping")):
            body = _before_farm_lines(body)
        elif title.startswith("slowest"):
            body = sorted(_PHASE_TIME.sub("T.TTs ", line) for line in body)
        kept.append((title, tuple(body)))
    return Text(verbose, tuple(kept))


def _before_farm_lines(body: list[str]) -> list[str]:
    """The lines of ``body`` before farm's own, which follow pytest's short summary."""
    for i, line in enumerate(body):
        if _FARM_LINE.match(line):
            return body[:i]
    return body


def differences(pytest_text: Text, farm_text: Text) -> list[str]:
    """Where farm's text differs from pytest's, one sentence each."""
    found: list[str] = []
    if pytest_text.verbose != farm_text.verbose:
        found.append(
            f"-v lines: only pytest {sorted(pytest_text.verbose - farm_text.verbose)}, "
            f"only farm {sorted(farm_text.verbose - pytest_text.verbose)}"
        )
    titles = [title for title, _ in pytest_text.sections]
    farm_titles = [title for title, _ in farm_text.sections]
    if titles != farm_titles:
        found.append(f"sections: pytest {titles}, farm {farm_titles}")
    farm_sections = dict(farm_text.sections)
    for title, body in pytest_text.sections:
        got = farm_sections.get(title)
        if got is not None and got != body:
            first = next(
                (i for i, pair in enumerate(zip(body, got, strict=False)) if pair[0] != pair[1]),
                min(len(body), len(got)),
            )
            found.append(
                f"section {title!r} differs at line {first + 1}:\n"
                f"  pytest: {body[first : first + 3]}\n  farm:   {got[first : first + 3]}"
            )
    return found
