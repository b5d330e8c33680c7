"""The coverage part of the end-of-run summary, in pytest-cov's words and layout.

pytest-cov writes, after pytest's warnings summary and before its short test
summary: a ``tests coverage`` rule, a ``coverage: platform ..., python ...`` rule
(one ``coverage`` rule and a line per platform when the test processes differed),
the table, one line per report file written, and ``Required test coverage of N%
reached. Total coverage: X.XX%`` (``FAIL ... not reached``) under a fail-under.
When the total misses the fail-under it also writes ``ERROR: Coverage failure:
...`` as the run loop ends, above pytest's other summary sections: here it heads the
part. A run whose coverage is incomplete shows one line saying why, and no figure.
"""

from __future__ import annotations

from farm.core.coverage_result import CoverageResult


def coverage_lines(coverage: CoverageResult | None, width: int) -> list[str]:
    """The lines of the coverage part; none for a run without coverage."""
    if coverage is None or coverage.skipped:
        return []
    heading = _sep("=", "tests coverage", width)
    if coverage.incomplete:
        return [heading, f"coverage incomplete: {coverage.incomplete}; no total is shown"]
    if coverage.total is None:
        return []  # nothing asked for: pytest-cov reports nothing
    lines: list[str] = []
    if coverage.below:
        lines += ["", f"ERROR: {coverage.failure}"]
    if coverage.error:
        lines += ["", f"WARNING: {coverage.error.rstrip()}", ""]
    lines.append(heading)
    lines += _platform_lines(coverage.platforms, width)
    lines += coverage.report.splitlines()
    if coverage.requires and coverage.fail_under is not None:
        failed = coverage.total < coverage.fail_under
        lines.append(
            f"{'FAIL ' if failed else ''}Required test coverage of {coverage.fail_under}% "
            f"{'not reached' if failed else 'reached'}. Total coverage: {coverage.total:.2f}%"
        )
    return lines


def _platform_lines(platforms: tuple[str, ...], width: int) -> list[str]:
    """pytest-cov's header: each rule is followed by an empty line."""
    if len(platforms) == 1:
        return [_sep("_", f"coverage: {platforms[0]}", width), ""]
    lines = [_sep("_", "coverage", width), ""]
    for platform in sorted(platforms):
        lines += [_sep(" ", platform, width), ""]
    return lines


def _sep(fill: str, title: str, width: int) -> str:
    """``title`` between runs of ``fill``, as pytest's terminal writer draws a rule."""
    count = max((width - len(title) - 2) // 2, 1)
    line = f"{fill * count} {title} {fill * count}"
    if len(line) + len(fill.rstrip()) <= width:
        line += fill.rstrip()
    return line
