"""Narrowing an order-dependent test down to the module whose earlier run changes it.

Pure: the trials go through an injected *probe*, "run these modules, then the
test, in one fresh process; the test's outcome" (:mod:`farm.run.isolate` runs it
as a pytest subprocess). :func:`bisect` runs the test alone, then after every
module that ran before it; if both end alike (failing or not) the order does not
change the outcome. Otherwise it halves the modules, keeping their order, and
follows the half whose run changes the outcome as the whole list did, so a
single culprit among n modules costs about log2(n) + 3 trials. A half that
changes nothing is not run again: the other is taken, and the module found last
is run alone to confirm it. When it does not change the outcome on its own, the
modules act only together (or the test is flaky).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from farm.core.domain import Outcome

Probe = Callable[[Sequence[str]], Outcome]
"""Runs the given modules in order, then the test, in a fresh process: its outcome."""


class Finding(str, enum.Enum):
    """What the trials showed."""

    CULPRIT = "culprit"  # one module's earlier run changes the test's outcome
    TOGETHER = "together"  # all of them change it, none of them alone
    NOT_ORDER = "not_order"  # same outcome alone and after them


@dataclass(frozen=True)
class Trial:
    """One run of the test after ``modules`` (none: alone) and its outcome."""

    modules: tuple[str, ...]
    outcome: Outcome


@dataclass(frozen=True)
class Bisection:
    """The trials, in the order they ran, and what they showed."""

    finding: Finding
    trials: tuple[Trial, ...]
    culprit: str = ""  # the module, for CULPRIT

    @property
    def alone(self) -> Outcome:
        return self.trials[0].outcome

    @property
    def after_all(self) -> Outcome:
        return self.trials[1].outcome


def bisect(
    modules: Sequence[str], probe: Probe, on_trial: Callable[[Trial], None] = lambda _: None
) -> Bisection:
    """Find the module of ``modules`` (in the order they ran) whose earlier run
    changes the test's outcome; ``on_trial`` hears of each trial as it ends."""
    if not modules:
        raise ValueError("bisect needs the modules that ran before the test")
    trials: list[Trial] = []

    def run(subset: Sequence[str]) -> Outcome:
        trial = Trial(tuple(subset), probe(subset))
        trials.append(trial)
        on_trial(trial)
        return trial.outcome

    alone_fails = run(()).is_failure
    if run(modules).is_failure == alone_fails:
        return Bisection(Finding.NOT_ORDER, tuple(trials))
    candidates, changes = list(modules), True  # known to change the outcome
    while len(candidates) > 1:
        half = len(candidates) // 2
        if run(candidates[:half]).is_failure != alone_fails:
            candidates, changes = candidates[:half], True
        else:
            candidates, changes = candidates[half:], False
    if not changes and run(candidates).is_failure == alone_fails:
        return Bisection(Finding.TOGETHER, tuple(trials))
    return Bisection(Finding.CULPRIT, tuple(trials), candidates[0])


def diagnosis(
    result: Bisection, node_id: str, where: str, imported_only: frozenset[str] = frozenset()
) -> str:
    """One paragraph saying what the trials showed. ``where`` says where the modules
    ran before the test, e.g. ``on worker w:12 (host-a)`` or ``given with --after``;
    ``imported_only`` are those its process imported but ran after it."""
    alone, after_all = result.alone, result.after_all
    modules = result.trials[1].modules
    them = "the module" if len(modules) == 1 else f"the {len(modules)} modules"
    if imported_only.isdisjoint(modules):
        them = f"after {them} that ran before it"
    else:
        them = f"with {them} its process ran"
    if result.finding is Finding.NOT_ORDER:
        return (
            f"{node_id} {_verb(alone)} alone and {_verb(after_all)} {them} ({where}): "
            "same outcome alone and after them: not order-dependent (flaky?)"
        )
    if result.finding is Finding.TOGETHER:
        return (
            f"{node_id} {_verb(alone)} alone and {_verb(after_all)} {them} ({where}), but "
            "after none of them alone: it depends on several of them together (or it is "
            "flaky)"
        )
    after = next(t.outcome for t in reversed(result.trials) if t.modules == (result.culprit,))
    if result.culprit in imported_only:
        return (
            f"{node_id} {_verb(alone)} alone, {_verb(after)} with {result.culprit} imported "
            f"first (its process imported it before the test ran and ran its tests later, "
            f"{where}): it depends on what importing that module does"
        )
    if alone.is_failure:
        return (
            f"{node_id} {_verb(alone)} alone, {_verb(after)} after {result.culprit} (which ran "
            f"before it {where}): it depends on an import or state of that module"
        )
    return (
        f"{node_id} {_verb(alone)} alone, {_verb(after)} after {result.culprit} (which ran "
        f"before it {where}): it depends on state that module leaves"
    )


def _verb(outcome: Outcome) -> str:
    """``passes``, ``fails``, or those with pytest's own word where it says more."""
    if outcome is Outcome.PASSED:
        return "passes"
    if outcome is Outcome.FAILED:
        return "fails"
    verb = "fails" if outcome.is_failure else "passes"
    return f"{verb} ({outcome.value})"
