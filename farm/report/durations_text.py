"""How long tests took: pytest's ``slowest N durations`` under ``--durations``, or
else farm's own table of the slowest tests beside the plan's estimates.

pytest lists every phase (setup, call, teardown) of every test, slowest first, and
hides those under ``--durations-min`` (0.005 s unless ``-vv``), saying how many it
hid. The test process sends each phase's duration under ``--durations``; a result
farm made itself (a timeout, a crash) counts as one call of its whole duration.
farm's table, one line per test with the estimate it was planned on, is printed
only when ``--durations`` is not given (with it, the user asked for pytest's) and
not under ``-q``.
"""

from __future__ import annotations

from collections.abc import Mapping

from farm.core.domain import RunSummary
from farm.report.text import plural, rule, terminal_safe


def pytest_durations_lines(summary: RunSummary, width: int) -> list[str]:
    """pytest's ``slowest N durations`` section; nothing without ``--durations``."""
    options = summary.options
    count = options.durations
    if count is None:
        return []
    asked_min = options.durations_min
    minimum = asked_min if asked_min is not None else (0.005 if options.verbose < 2 else 0.0)
    phases: list[tuple[float, str, str]] = []
    for result in summary.results:
        if result.detail is not None:
            phases += [(s, when, result.node_id) for when, s in result.detail.durations]
        elif not result.tally:
            phases.append((result.duration_s, "call", result.node_id))
    if not phases:
        return []
    phases.sort(key=lambda phase: phase[0], reverse=True)  # stable: ties keep their order
    if count:
        lines = [rule(f"slowest {count} durations", "=", width)]
        phases = phases[:count]
    else:
        lines = [rule("slowest durations", "=", width)]
    for i, (seconds, when, node_id) in enumerate(phases):
        if seconds < minimum:
            hidden = f"({len(phases) - i} durations < {minimum:g}s hidden."
            if asked_min is None:
                hidden += "  Use -vv to show these durations."
            lines += ["", hidden + ")"]
            break
        lines.append(f"{seconds:02.2f}s {when:<8} {terminal_safe(node_id)}")
    return lines


def farm_slowest_lines(
    summary: RunSummary, estimates: Mapping[str, float], slowest: int, width: int
) -> list[str]:
    """farm's ``slowest N tests``: actual and estimated duration of the slowest tests;
    nothing under ``--durations``, which asks for pytest's section instead, nor
    under ``-q``."""
    if summary.options.durations is not None or summary.options.verbose < 0:
        return []
    timed = sorted(
        (r for r in summary.results if r.duration_s > 0),
        key=lambda r: r.duration_s,
        reverse=True,
    )[: max(slowest, 0)]
    if not timed:
        return []
    lines = [rule(f"slowest {plural(len(timed), 'test')}", "=", width)]
    lines.append(f"{'actual':>10}  {'estimate':>10}  test")
    for result in timed:
        estimate = estimates.get(result.node_id)
        shown = f"{estimate:.2f}s" if estimate is not None else "-"
        lines.append(f"{result.duration_s:>9.2f}s  {shown:>10}  {terminal_safe(result.node_id)}")
    return lines


__all__ = ["farm_slowest_lines", "pytest_durations_lines"]
