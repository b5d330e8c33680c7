"""What a run found beyond pytest's own report: retries, flaky tests, quarantined
failures, new tests that disagree with themselves, suspect machines, tests that may
depend on order, the change tested.

Shared by the three reports. :func:`earlier_by_test` groups a run's earlier attempts
by test for the JUnit and JSON reports; :func:`finding_sections` and
:func:`footer_lines` are the summary's extra text. That text is raw: node ids,
worker and machine names come from the tests and the farm, and
:mod:`farm.report.summary` makes every line safe for a terminal and colours it.

Each section is there only when it has something to say, so a run without retries,
flaky tests, quarantine, suspects or a change adds nothing to pytest's report.
"""

from __future__ import annotations

from dataclasses import dataclass

from farm.core.domain import RunSummary, TestResult
from farm.report import order_text

# Lists of tests are cut here, as the summary's list of lost tests is: a broken
# farm can make thousands of tests flaky, and the JSON report has them all.
MAX_NAMED = 50
_DENIED_NAMED = 5  # the budget line names a few, the JSON report every one


@dataclass(frozen=True)
class Section:
    """A block of the end-of-run summary: the title of its rule ("" for bare lines)
    and its lines."""

    title: str
    lines: tuple[str, ...]


def earlier_by_test(summary: RunSummary) -> dict[str, list[TestResult]]:
    """Each test's attempts before its final result, oldest first (by attempt number,
    then in the order they finished); tests with none are left out."""
    by_test: dict[str, list[TestResult]] = {}
    for attempt in summary.earlier_attempts:
        by_test.setdefault(attempt.node_id, []).append(attempt)
    for attempts in by_test.values():
        attempts.sort(key=lambda a: a.attempt)  # stable: ties keep finishing order
    return by_test


def finding_sections(summary: RunSummary) -> list[Section]:
    """The summary's sections after pytest's short summary, in this order: flaky
    tests, quarantined failures, new flaky tests, the retry budget, suspect machines,
    tests that may depend on order (:mod:`farm.report.order_text`)."""
    sections: list[Section] = []
    if not (
        summary.flaky
        or summary.quarantined_failures
        or summary.new_flaky
        or summary.retries.exhausted
        or summary.suspects
        or summary.order_suspects
    ):
        return sections
    earlier = earlier_by_test(summary)
    finals = {r.node_id: r for r in summary.results}
    if summary.flaky:
        lines = [_flaky_line(n, earlier.get(n, []), finals.get(n)) for n in summary.flaky]
        sections.append(Section(_counted(len(lines), "flaky test"), _capped(lines)))
    if summary.quarantined_failures:
        sections.append(
            Section(
                "quarantined failures, not held against the verdict",
                _capped(list(summary.quarantined_failures)),
            )
        )
    if summary.new_flaky:
        lines = [_new_flaky_line(n, earlier.get(n, []), finals.get(n)) for n in summary.new_flaky]
        sections.append(Section("new tests that are flaky", _capped(lines)))
    if summary.retries.exhausted:
        sections.append(Section("", (_budget_line(summary),)))
    if summary.suspects:
        lines = [suspect.sentence() for suspect in summary.suspects]
        sections.append(Section("machines suspected", _capped(lines)))
    if summary.order_suspects:
        sections.append(Section(order_text.TITLE, tuple(order_text.order_lines(summary))))
    return sections


def footer_lines(summary: RunSummary) -> list[str]:
    """The lines just above the summary's last: when the first failure came (only
    when retries were on, so that ``--retries 0`` reads exactly as pytest's), and the
    change the run tested."""
    lines: list[str] = []
    if summary.retries.allowed > 0 and summary.first_failure_s is not None:
        lines.append(f"first failure after {summary.first_failure_s:.1f}s")
    change = summary.change
    if change is not None:
        line = f"change {change.commit_sha[:12]}"
        if change.branch:
            line += f" on {change.branch}"
        line += f" ({change.repository})"
        if change.pull_request:
            line += f", pull request {change.pull_request}"
        lines.append(line)
    return lines


def _budget_line(summary: RunSummary) -> str:
    """``retry budget of 20 ran out: 3 failed tests were not retried (a, b, c)``."""
    retries = summary.retries
    denied = retries.denied
    verb = "was" if len(denied) == 1 else "were"
    named = ", ".join(denied[:_DENIED_NAMED])
    if len(denied) > _DENIED_NAMED:
        named += f" and {len(denied) - _DENIED_NAMED} more"
    return (
        f"retry budget of {retries.budget} ran out: "
        f"{_counted(len(denied), 'failed test')} {verb} not retried ({named})"
    )


def _flaky_line(node_id: str, earlier: list[TestResult], final: TestResult | None) -> str:
    """``t.py::test_x: 2 attempts, failed on a:11 (host-a), passed on b:7 (host-b)``."""
    runs = [*earlier, *([final] if final is not None else [])]
    where = ", ".join(f"{run.outcome.value} on {_place(run)}" for run in runs)
    return f"{node_id}: {_counted(len(runs), 'attempt')}, {where}"


def _new_flaky_line(node_id: str, earlier: list[TestResult], final: TestResult | None) -> str:
    """``t.py::test_new: 3 runs: passed, failed, passed``."""
    runs = [*earlier, *([final] if final is not None else [])]
    return f"{node_id}: {_counted(len(runs), 'run')}: {', '.join(r.outcome.value for r in runs)}"


def _place(result: TestResult) -> str:
    """Where an attempt ran: ``a:11 (host-a)``, or what of that is known."""
    if result.worker and result.machine:
        return f"{result.worker} ({result.machine})"
    return result.worker or result.machine or "an unknown worker"


def _capped(lines: list[str]) -> tuple[str, ...]:
    if len(lines) <= MAX_NAMED:
        return tuple(lines)
    return (*lines[:MAX_NAMED], f"... and {len(lines) - MAX_NAMED} more")


def _counted(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


__all__ = ["MAX_NAMED", "Section", "earlier_by_test", "finding_sections", "footer_lines"]
