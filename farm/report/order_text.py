"""The summary's words on tests that may depend on order: which modules ran before
each of their attempts, in its test process.

A test that passes under plain pytest and fails under farm (or the other way round)
may depend on an earlier module's import side effects or on state a test left:
farm runs a module in a process that has not run every other module first. The
run found such tests (:mod:`farm.core.order`); this names, for each, every attempt
with the modules that ran before it, and how to narrow them down to one
(``farm run --isolate``). The text is raw: :mod:`farm.report.summary` makes it safe
for a terminal.
"""

from __future__ import annotations

from farm.core.domain import AttemptOrder, OrderSign, OrderSuspect, RunSummary

TITLE = "tests that may depend on order"
MAX_SUSPECTS = 20  # named here; the JSON report has every one
MAX_MODULES = 5  # named per attempt, the nearest ones: the others are counted

_WHY = {
    OrderSign.FLAKY: "its outcome changed with the modules that ran before it",
    OrderSign.REGRESSED: "it failed here and passed in run {run} of this change",
}


def order_lines(summary: RunSummary) -> list[str]:
    """The lines of the section: for each suspect, why, then one line per attempt."""
    lines: list[str] = []
    for suspect in summary.order_suspects[:MAX_SUSPECTS]:
        lines.extend(suspect_lines(suspect, summary.run_id))
    more = len(summary.order_suspects) - MAX_SUSPECTS
    if more > 0:
        lines.append(f"... and {more} more (the JSON report has them all)")
    return lines


def suspect_lines(suspect: OrderSuspect, run_id: str) -> list[str]:
    """``t.py::test_x may depend on order: ...``, its attempts, and the command that
    finds the module it depends on."""
    earlier_run = next((a.run_id for a in suspect.attempts if a.run_id != run_id), "")
    why = _WHY[suspect.sign].format(run=earlier_run[:12])
    lines = [f"{suspect.node_id}: {why}"]
    lines.extend(f"  {attempt_line(a, run_id)}" for a in suspect.attempts)
    lines.append(f"  to find the module: farm run --isolate {suspect.node_id}")
    return lines


def attempt_line(attempt: AttemptOrder, run_id: str) -> str:
    """``attempt 1 failed on w:12 (host-a) after tests/test_a.py, tests/test_c.py``."""
    which = f"attempt {attempt.attempt}"
    if attempt.run_id != run_id:
        which = f"run {attempt.run_id[:12]} {which}"
    return f"{which} {attempt.outcome.value} on {_place(attempt)} {modules_text(attempt)}"


def modules_text(attempt: AttemptOrder) -> str:
    """What ran before an attempt in its process, in the order it ran, and what the
    process imported but ran after it (pytest imports every module before any test)."""
    modules = attempt.modules_before
    if modules is None:
        return "(the modules of its process were not recorded)"
    if not modules:
        text = "first in its process"
    elif len(modules) <= MAX_MODULES:
        text = f"after {', '.join(modules)}"
    else:
        nearest = ", ".join(modules[-MAX_MODULES:])
        text = f"after {len(modules)} modules, the last {MAX_MODULES}: {nearest}"
    after = attempt.modules_after
    if after:
        named = ", ".join(after[:MAX_MODULES])
        if len(after) > MAX_MODULES:
            named += f" and {len(after) - MAX_MODULES} more"
        text += f"; imported, run later: {named}"
    return text + (" (as its shard was planned)" if attempt.planned else "")


def _place(attempt: AttemptOrder) -> str:
    if attempt.worker and attempt.machine:
        return f"{attempt.worker} ({attempt.machine})"
    return attempt.worker or attempt.machine or "an unknown worker"


__all__ = ["TITLE", "attempt_line", "modules_text", "order_lines", "suspect_lines"]
