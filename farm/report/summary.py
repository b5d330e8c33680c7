"""What a person sees in the terminal after a run: pytest's end-of-run sections, as
pytest would print them for the same run, with what farm adds in between.

The sections, in order (each only when it has something to say):

0. header lines: what the run was started with that changes its results
1. pytest's ERRORS, FAILURES and XFAILURES (:mod:`farm.report.failures_text`);
   farm's LOST TESTS
2. pytest's warnings summary (:mod:`farm.report.warnings_text`)
3. pytest's PASSES and XPASSES
4. what plugins add in pytest's terminal summary: tests coverage (pytest-cov's
   place), then pytest's ``slowest N durations`` under ``--durations``, else farm's
   ``slowest N tests`` beside the plan's estimates (:mod:`farm.report.durations_text`)
5. pytest's short test summary info (:mod:`farm.report.short_summary`), then its
   ``!!! stopping after N failures !!!`` or ``Interrupted`` rule
6. what farm found beyond pytest (:mod:`farm.report.findings`): flaky tests,
   quarantine, new flaky tests, the retry budget, suspect machines, tests that may
   depend on order; the machines that ran a farm elsewhere; the first failure's
   time and the change; the verdict's message
7. the last line: pytest's counts and time, then farm's plan estimate, workers and
   verdict, between rules of ``=`` (no rules under ``-q``; under ``-qq``, where
   pytest prints no such line, only farm's verdict)

pytest's ``--no-summary`` drops its own sections (1, 2, 3, 5) as pytest does.
Nothing here reads the terminal size: the caller passes ``width`` (columns).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

from farm.core.domain import Outcome, RunSummary, Verdict
from farm.core.seeds import seed_lines
from farm.report.coverage_text import coverage_lines
from farm.report.durations_text import farm_slowest_lines, pytest_durations_lines
from farm.report.failures_text import ReportSections
from farm.report.findings import finding_sections, footer_lines
from farm.report.short_summary import ShortSummary
from farm.report.text import (
    BOLD,
    GREEN,
    RED,
    YELLOW,
    Paint,
    format_duration,
    plural,
    rule,
    terminal_safe,
)
from farm.report.warnings_text import warnings_lines

_VERDICT_COLOR = {
    Verdict.PASSED: GREEN,
    Verdict.FLAKY: YELLOW,
    Verdict.NO_TESTS: YELLOW,
    Verdict.FAILED: RED,
    Verdict.ERROR: RED,
    Verdict.INTERRUPTED: RED,
}

# The word pytest's summary line uses for a result farm made itself (no tally): a
# timeout or crash is a failure to pytest's readers, and the failure section tells
# them apart.
_FALLBACK_WORD = {
    Outcome.FAILED: "failed",
    Outcome.TIMEOUT: "failed",
    Outcome.CRASHED: "failed",
    Outcome.PASSED: "passed",
    Outcome.SKIPPED: "skipped",
    Outcome.XFAILED: "xfailed",
    Outcome.XPASSED: "xpassed",
    Outcome.ERROR: "error",
}
# pytest's order of the summary line; categories plugins add follow in the order seen.
_SUMMARY_ORDER = (
    "failed", "passed", "skipped", "deselected", "xfailed", "xpassed", "warnings", "error",
    "subtests passed", "subtests failed", "subtests skipped",
)  # fmt: skip


def summary_counts(summary: RunSummary) -> str:
    """The counts part of the last line, as pytest would print it for the same run.

    ``3 failed, 1997 passed, 2 skipped``. Each result adds its tally (pytest's own
    category of each of its reports: a failure and a teardown error are both
    counted, as are subtests); a result farm made itself counts once, by outcome.
    Zero counts are left out, ``error`` and ``warning`` take pytest's plurals, and
    tests without a result end the list as ``N lost``, and tests that passed on a
    retry as ``N flaky`` (so a run without flaky tests reads exactly as pytest's).
    ``no tests ran`` when there is nothing to count.
    """
    counts: Counter[str] = Counter()
    for result in summary.results:
        if result.tally:
            counts.update(dict(result.tally))
        else:
            counts[_FALLBACK_WORD[result.outcome]] += 1
    counts["deselected"] += summary.deselected
    counts["warnings"] += summary.collect_warnings
    extra = [key for key in counts if key not in _SUMMARY_ORDER]
    parts = [_counted(counts[key], key) for key in (*_SUMMARY_ORDER, *extra) if counts[key] > 0]
    if summary.missing:
        parts.append(f"{len(summary.missing)} lost")
    if summary.flaky:
        parts.append(f"{len(summary.flaky)} flaky")
    return ", ".join(parts) if parts else "no tests ran"


def _counted(n: int, key: str) -> str:
    """``n`` and pytest's word for ``key``: only error and warning take a plural."""
    if key in ("error", "warnings"):
        noun = key.rstrip("s")
        return f"{n} {noun}s" if n != 1 else f"{n} {noun}"
    return f"{n} {key}"


def format_summary(
    summary: RunSummary,
    *,
    estimates: Mapping[str, float],
    slowest: int = 10,
    color: bool,
    width: int = 80,
    max_output_lines: int = 40,
    ci: bool = False,
) -> str:
    """The end-of-run report (see the module's docstring for its sections).

    ``estimates`` maps node id to the plan's estimate, shown beside the actual
    duration of the slowest tests. Captured output of a result farm made itself is
    cut to ``max_output_lines`` (tracebacks to a larger budget) with a note saying
    how much was cut; pytest's own entries are printed whole, as pytest prints them.
    ``ci``: running on CI (pytest then prints short summary messages whole).
    The last line reads like pytest's, e.g. ``==== 3 failed, 1997 passed in 24.10s
    (plan estimate 22.80s, 16 workers), verdict FAILED ====``; with ``color`` it is
    colored as a whole, so the plain ``3 failed, 1997 passed`` stays contiguous.
    """
    paint = Paint(color)
    options = summary.options
    pytests = not options.no_summary  # pytest's own sections, off under --no-summary
    reports = ReportSections(summary, paint, width, max_output_lines)
    lines: list[str] = []
    # 0: header lines (the run's random seed) go first, here.
    lines += seed_lines(options)  # as the shuffling plugins print it in pytest's header

    # 1-3: the reports, the warnings, the output of passed tests.
    if pytests:
        lines += reports.lines()
    lines += reports.lost()
    if pytests:
        lines += warnings_lines(summary, paint, width)
        lines += reports.passes()

    # 4: plugins' sections. The tests coverage section goes first, here.
    lines += coverage_lines(summary.coverage, width)
    lines += pytest_durations_lines(summary, width)
    lines += farm_slowest_lines(summary, estimates, slowest, width)

    # 5: the short summary, just above the verdict: what a CI log shows when the
    # long sections scroll away.
    short = ShortSummary(summary, width, ci=ci).lines() if pytests else []
    if short:
        lines.append(rule("short test summary info", "=", width))
        lines += short
    if summary.collection_errors:
        interrupted = f"Interrupted: {plural(summary.collection_errors, 'error')} during collection"
        lines.append(rule(interrupted, "!", width))
    if summary.stop_reason:  # --sw stopped it, as pytest says it
        lines.append(rule(f"Interrupted: {summary.stop_reason}", "!", width))
    elif summary.stopped_after:
        lines.append(rule(f"stopping after {summary.stopped_after} failures", "!", width))

    # 6: what farm found.
    for section in finding_sections(summary):
        if section.title:
            lines.append(paint(rule(terminal_safe(section.title), "=", width), YELLOW + BOLD))
            lines.extend(terminal_safe(line) for line in section.lines)
        else:
            lines.extend(paint(terminal_safe(line), YELLOW) for line in section.lines)
    machines = _machines_line(summary)
    if machines:
        lines.append(machines)
    lines.extend(terminal_safe(line) for line in footer_lines(summary))
    if summary.message:
        lines.append(paint(f"{summary.verdict.value}: {terminal_safe(summary.message)}", BOLD))

    # 7: the last line.
    lines.append(paint(_last_line(summary, width), _VERDICT_COLOR[summary.verdict]))
    return "\n".join(lines)


def _last_line(summary: RunSummary, width: int) -> str:
    verdict = f"verdict {summary.verdict.value.upper()}"
    verbose = summary.options.verbose
    if verbose < -1:
        return f"farm: {verdict}"
    last = (
        f"{summary_counts(summary)} in {format_duration(summary.makespan_s)} "
        f"(plan estimate {format_duration(summary.estimated_makespan_s)}, "
        f"{summary.workers} workers), {verdict}"
    )
    return last if verbose < 0 else rule(last, "=", width)


def _machines_line(summary: RunSummary) -> str:
    """Which machines ran the run, and the snapshot they ran: only for a farm elsewhere."""
    if summary.code is None:
        return ""
    by_machine: dict[str, int] = {}
    for shard in summary.shards:
        if shard.machine:
            by_machine[shard.machine] = by_machine.get(shard.machine, 0) + shard.tests
    ran = ", ".join(f"{terminal_safe(m)} ({n})" for m, n in sorted(by_machine.items()))
    code = summary.code
    sent = f"uploaded {code.uploaded_bytes / 1024:.0f} KiB" if code.uploaded_bytes else "cached"
    return (
        f"snapshot {code.digest[:12]} ({code.size_bytes / 1024:.0f} KiB, {sent}); "
        f"tests by machine: {ran or 'none'}"
    )


__all__ = ["format_duration", "format_summary", "summary_counts", "terminal_safe"]
