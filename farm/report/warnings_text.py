"""pytest's warnings summary: every warning of the run, grouped by message.

The warnings raised while collecting come first (the collection counted them on
the submitter, or the last full collection did for a warm run), then each test's,
tests in collection order. As pytest does, a group lists where its warning came
from (a node id, or ``path:line`` for a warning raised outside a test), or, from ten
places on, how many came from each file; then the message, indented under them.
"""

from __future__ import annotations

from collections import Counter

from farm.core.domain import RunSummary
from farm.report.text import YELLOW, Paint, Where, rule, terminal_safe

DOCS = "-- Docs: https://docs.pytest.org/en/stable/how-to/capture-warnings.html"
_MAX_LOCATIONS = 10  # from this many places on, pytest counts them by file


def warnings_lines(summary: RunSummary, paint: Paint, width: int) -> list[str]:
    """The warnings summary, or nothing when it is off or there was no warning."""
    if "w" not in summary.options.reportchars:
        return []
    where = Where(summary.rootdir, summary.invocation_dir)
    grouped: dict[str, list[str]] = {}
    for warning in summary.collection_warnings:
        grouped.setdefault(warning.message, []).append(warning.location)
    for result in summary.results:
        if result.detail is not None:
            for place in result.detail.warnings:
                grouped.setdefault(where.place(place), []).append(result.node_id)
    if not grouped:
        return []
    lines = [paint(rule("warnings summary", "=", width), YELLOW)]
    for message, locations in grouped.items():
        shown = _locations([loc for loc in locations if loc])
        if shown:
            lines += [terminal_safe(loc) for loc in shown]
            text = "\n".join("  " + line for line in message.splitlines()).rstrip()
        else:
            text = message.rstrip()
        lines += terminal_safe(text).split("\n")
        lines.append("")
    lines.append(DOCS)
    return lines


def _locations(locations: list[str]) -> list[str]:
    if len(locations) < _MAX_LOCATIONS:
        return locations
    by_file = Counter(location.split("::", 1)[0] for location in locations)
    return [f"{name}: {n} warning{'s' if n > 1 else ''}" for name, n in by_file.items()]


__all__ = ["DOCS", "warnings_lines"]
